"""Time, injected: the engine never calls ``datetime.now()`` or ``asyncio.sleep`` directly.

``SystemClock`` is the real one. ``ManualClock`` is for tests, snapshots and simulations: time
only moves when ``advance`` is called, and sleepers whose deadline has passed are woken, so
worker schedules can be driven deterministically without patching anything.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

__all__ = ["PHNOM_PENH", "Clock", "ManualClock", "SystemClock", "local_midnight_after", "utc"]

#: Cambodia: UTC+7 all year, no daylight saving.
PHNOM_PENH = timezone(timedelta(hours=7), "Asia/Phnom_Penh")


def utc(dt: datetime) -> datetime:
    """The same instant as an aware UTC datetime (naive input is taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def local_midnight_after(now: datetime) -> datetime:
    """The next midnight in Asia/Phnom_Penh after ``now``, as UTC (when Bakong's day resets)."""
    local = utc(now).astimezone(PHNOM_PENH)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations)."""

    async def sleep(self, seconds: float) -> None:
        """Wait this long on this clock."""


class SystemClock:
    """Wall-clock time and real sleeping."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to; ``sleep`` waits for ``advance`` to pass its deadline."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = utc(start or datetime(2026, 1, 15, 3, 0, tzinfo=UTC))
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._counter), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock (tests wait for workers to park)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_wakeup(self) -> float | None:
        """Seconds until the earliest waiting sleeper wakes (None: nobody waits); simulations
        jump straight there instead of ticking through idle time."""
        live = [deadline for deadline, _, fut in self._sleepers if not fut.done()]
        return max(0.0, min(live) - self._mono) if live else None

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (forward only), waking whoever should wake."""
        delta = (utc(when) - self._now).total_seconds()
        if delta < 0:
            raise ValueError("ManualClock cannot go back in time")
        self.advance(delta)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        if seconds < 0:
            raise ValueError("ManualClock cannot go back in time")
        self._mono += seconds
        self._now += timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def advance_and_settle(self, seconds: float, *, step: float | None = None) -> None:
        """Advance in steps, letting woken tasks run between steps."""
        remaining = seconds
        step = step or seconds
        while remaining > 1e-9:
            dt = min(step, remaining)
            self.advance(dt)
            remaining -= dt
            for _ in range(20):
                await asyncio.sleep(0)
