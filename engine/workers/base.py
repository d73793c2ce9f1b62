"""The worker loop: lease-held, pokeable, error-capturing background jobs on the injected clock.

A ``Worker`` does one bounded unit of work per ``run_once`` and says how long it may sleep. The
``WorkerRunner`` wraps it: it runs only while this process holds the worker's lease in the
database (renewed while alive, taken over by another process when it lapses), wakes early when
poked (a new payment, a "customer says paid" request), records every iteration's failure without
stopping, and on ``stop`` lets the iteration in hand finish before releasing the lease.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.clock import Clock
from engine.db import leases
from engine.db.storage import Storage

__all__ = ["Worker", "WorkerRunner", "WorkerStatus"]

log = logging.getLogger("engine.workers")


class Worker:
    """One background job. Subclasses set ``name`` (also the lease name) and implement ``run_once``."""

    name: str = "worker"

    async def run_once(self) -> float | None:
        """Do one unit of work; return seconds until the next run is wanted (None: the runner's tick)."""
        raise NotImplementedError

    async def on_lease_lost(self) -> None:
        """Called when another process took the lease; drop any per-holder state."""


@dataclass
class WorkerStatus:
    """What the console and the health endpoint show about a worker in this process."""

    name: str
    holding: bool = False
    iterations: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_run_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    holder: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


class WorkerRunner:
    """Run one worker under its lease until ``stop()``."""

    def __init__(
        self,
        worker: Worker,
        storage: Storage,
        *,
        clock: Clock,
        holder: str,
        tick_seconds: float = 1.0,
        lease_ttl: float = 30.0,
        error_backoff_seconds: float = 5.0,
    ) -> None:
        self.worker = worker
        self.storage = storage
        self.clock = clock
        self.holder = holder
        self.tick_seconds = tick_seconds
        self.lease_ttl = lease_ttl
        self.error_backoff_seconds = error_backoff_seconds
        self.status = WorkerStatus(worker.name, holder=None)
        self._wake = asyncio.Event()
        self._stopping = False
        self._lease_renewed_at: float | None = None
        #: While sleeping: when the sleep ends (on the clock)
        self._wake_at: datetime | None = None
        #: True while parked between iterations (tests wait for this before moving the clock).
        self.sleeping = False

    @property
    def name(self) -> str:
        return self.worker.name

    def poke(self, due: datetime | None = None) -> None:
        """Wake the worker now instead of at the end of its sleep; with ``due`` (when the new work
        is due), only if it sleeps past then: its next pass reads what is due, so work due after
        the end of its sleep needs no extra pass (one per created payment, under load)."""
        if due is not None and self.sleeping and self._wake_at is not None and due >= self._wake_at:
            return
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to end after the iteration in hand."""
        self._stopping = True
        self._wake.set()

    async def _hold_lease(self) -> bool:
        mono = self.clock.monotonic()
        if self.status.holding and self._lease_renewed_at is not None and mono - self._lease_renewed_at < self.lease_ttl / 3:
            return True
        try:
            async with self.storage.transaction(events=False) as tx:
                held = await leases.acquire(tx, self.worker.name, self.holder, ttl=self.lease_ttl)
        except Exception as exc:  # a database hiccup: keep what we believe, retry next loop
            self._record_failure(exc)
            return False
        if held:
            self._lease_renewed_at = mono
            if not self.status.holding:
                log.info("worker %s: lease acquired by %s", self.worker.name, self.holder)
        elif self.status.holding:
            log.warning("worker %s: lease lost to another process", self.worker.name)
            await self.worker.on_lease_lost()
        self.status.holding = held
        self.status.holder = self.holder if held else None
        return held

    def _record_failure(self, exc: BaseException) -> None:
        self.status.failures += 1
        self.status.consecutive_failures += 1
        self.status.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self.status.last_error_at = self.clock.now()
        log.error(
            "worker %s: iteration failed: %s\n%s",
            self.worker.name,
            self.status.last_error,
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=8)),
        )

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the clock, or until poked or stopped."""
        if self._wake.is_set() or seconds <= 0:
            self._wake.clear()
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        self._wake_at = self.clock.now() + timedelta(seconds=seconds)
        self.sleeping = True
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.sleeping = False
            self._wake_at = None
            for task in (sleeper, waker):
                if not task.done():
                    task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
        self._wake.clear()

    async def run(self) -> None:
        """The loop. Returns after ``stop()``, with the lease released."""
        try:
            while not self._stopping:
                if not await self._hold_lease():
                    await self._sleep(max(self.tick_seconds, self.lease_ttl / 3))
                    continue
                delay: float | None
                try:
                    delay = await self.worker.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._record_failure(exc)
                    delay = self.error_backoff_seconds
                else:
                    self.status.consecutive_failures = 0
                self.status.iterations += 1
                self.status.last_run_at = self.clock.now()
                if self._stopping:
                    break
                wait = self.tick_seconds if delay is None else min(max(delay, 0.0), self.lease_ttl / 3)
                await self._sleep(wait)
        finally:
            await self._release()

    async def _release(self) -> None:
        if not self.status.holding:
            return
        self.status.holding = False
        self.status.holder = None
        try:
            async with self.storage.transaction(events=False) as tx:
                await leases.release(tx, self.worker.name, self.holder)
        except Exception as exc:  # the lease lapses on its own
            log.warning("worker %s: could not release its lease: %s", self.worker.name, exc)
