"""Webhook fixtures: a whole engine (all workers, the deliverer included) and a loopback receiver.

The manual clock here starts at the real current second instead of the shared fixed date: the
reference ``standardwebhooks`` verifier checks message timestamps against the system clock, so
messages signed at the engine's "now" must be near the real now to pass it. Time still moves
only when a test advances it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from engine.clock import ManualClock
from engine.config import Settings
from engine.records import Actor, ActorType
from engine.runtime import Engine
from tests.engine.conftest import make_settings, open_engine, settle
from tests.webhooks.receiver import Receiver

OPERATOR = Actor(ActorType.CLI, "sokha")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def open_webhook_engine(settings: Settings, clock: ManualClock, *, holder: str = "test-engine", seed: int = 7, run_workers: bool = True):  # noqa: ANN201
    return open_engine(settings, clock, holder=holder, seed=seed, run_workers=run_workers)


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
async def engine(engine_settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    async with open_webhook_engine(engine_settings, clock) as eng:
        await settle(eng)
        yield eng


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def emit(engine: Engine, event_type: str, subject_id: str, data: dict | None = None, *, subject_type: str = "payment"):  # noqa: ANN201
    """Commit one event (as a payment or subscription change would), returning it."""
    from engine.db import journal

    async with engine.storage.transaction() as tx:
        return await journal.append_event(tx, event_type, subject_type, subject_id, data or {"id": subject_id})


async def jump(engine: Engine, clock: ManualClock, when: datetime) -> None:
    """Move the clock to ``when`` (if later) in one step and let every worker finish its work."""
    import asyncio

    if when > clock.now():
        clock.set(when)
    await asyncio.sleep(0)
    await settle(engine)
