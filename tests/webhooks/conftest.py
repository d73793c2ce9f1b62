"""Webhook fixtures: the whole engine (all workers, the deliverer included) on a clock near the real
now, and helpers to commit events and jump the clock. The loopback receiver is tests/conftest.py's.

The manual clock here starts at the real current second instead of the shared fixed date: the
reference ``standardwebhooks`` verifier checks message timestamps against the system clock, so
messages signed at the engine's "now" must be near the real now to pass it. Time still moves
only when a test advances it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from engine.clock import ManualClock
from engine.db import journal
from engine.records import Actor, ActorType, Event
from engine.runtime import Engine
from tests.support.engine import settle

OPERATOR = Actor(ActorType.CLI, "sokha")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


async def emit(engine: Engine, event_type: str, subject_id: str, data: dict | None = None, *, subject_type: str = "payment") -> Event:
    """Commit one event (as a payment or subscription change would), returning it."""
    async with engine.storage.transaction() as tx:
        await journal.append_event(tx, event_type, subject_type, subject_id, data or {"id": subject_id})
    (event,) = await journal.committed_events(engine.storage, tx)  # with its sequence (numbered at commit on PostgreSQL)
    return event


async def jump(engine: Engine, clock: ManualClock, when: datetime) -> None:
    """Move the clock to ``when`` (if later) in one step and let every worker finish its work."""
    if when > clock.now():
        clock.set(when)
    await asyncio.sleep(0)
    await settle(engine)
