"""A whole engine for tests: opened on a real database with the built-in sandbox, the manual
clock and seeded randomness; waiting until its workers are parked; moving the clock while they
work; reading the events it committed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from engine.clock import ManualClock
from engine.config import Settings
from engine.db import journal
from engine.ids import IdFactory
from engine.records import Event
from engine.runtime import Engine


async def settle(*engines: Engine, timeout: float = 10.0) -> None:
    """Wait (in real time) until every worker and the bus of each engine are parked on the clock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    quiet = 0
    while loop.time() < deadline:
        parked = all(all(r.sleeping for r in e.runners.values()) and e.bus.sleeping for e in engines)
        quiet = quiet + 1 if parked else 0
        if quiet >= 3:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(
        "engine did not settle: " + ", ".join(f"{r.name}={r.sleeping}" for e in engines for r in e.runners.values())
    )


async def run_for(engine: Engine | list[Engine], clock: ManualClock, seconds: float, *, step: float = 1.0) -> None:
    """Move the manual clock forward in steps, letting the engine(s) finish each step's work."""
    engines = engine if isinstance(engine, list) else [engine]
    await settle(*engines)
    remaining = seconds
    while remaining > 1e-9:
        dt = min(step, remaining)
        clock.advance(dt)
        remaining -= dt
        await asyncio.sleep(0)
        await settle(*engines)


@asynccontextmanager
async def open_engine(
    settings: Settings, clock: ManualClock, *, holder: str = "test-engine", seed: int = 7, run_workers: bool = True,
    worker_failures_allowed: bool = False,
) -> AsyncIterator[Engine]:
    """``Engine.open`` with seeded randomness, for tests that need more than the ``engine`` fixture.

    A worker iteration that raised is a bug the runner hides by retrying: unless the test allows
    it, leaving the block with one recorded fails the test."""
    async with Engine.open(
        settings,
        clock=clock,
        run_workers=run_workers,
        migrate=True,
        rng=random.Random(seed),
        ids=IdFactory(clock, random.Random(seed + 4)),
        holder=holder,
    ) as engine:
        yield engine
        if not worker_failures_allowed:
            assert_no_worker_failures(engine)


def assert_no_worker_failures(engine: Engine) -> None:
    failed = {s.name: s.last_error for s in engine.worker_statuses() if s.failures}
    assert not failed, f"worker iterations failed: {failed}"


async def events_for(engine: Engine, subject_id: str) -> list[Event]:
    """Every event committed about one payment or subscription, oldest first."""
    async with engine.storage.read() as tx:
        return [e for e in await journal.events_since(tx, 0, limit=100_000) if e.subject_id == subject_id]
