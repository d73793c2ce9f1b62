"""The event bus: one ordered stream of committed events for everything in this process.

The stream is the ``events`` table itself (the outbox): the bus tails it by sequence, so events
written by another process (a daemon, a second API instance) reach the console as surely as our
own. After a local commit ``Storage.on_commit`` pokes the bus so our own changes arrive at once;
otherwise it polls every ``poll_seconds``. Subscribers get events in sequence order, each once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from engine.clock import Clock
from engine.db import journal
from engine.db.storage import Storage
from engine.records import Event

__all__ = ["EventBus", "Subscription"]

log = logging.getLogger("engine.bus")


class Subscription:
    """A subscriber's queue of events (optionally filtered by type prefix or subject)."""

    def __init__(self, bus: EventBus, predicate: Callable[[Event], bool] | None) -> None:
        self._bus = bus
        self._predicate = predicate
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def _offer(self, event: Event) -> None:
        if self._predicate is None or self._predicate(event):
            self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._bus._subscriptions.discard(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class EventBus:
    """Tail the event log and fan committed events out to subscribers and listeners."""

    def __init__(self, storage: Storage, *, clock: Clock, poll_seconds: float = 1.0, batch: int = 500) -> None:
        self.storage = storage
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.last_sequence = 0
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock = asyncio.Lock()
        #: True while waiting for the next commit or poll (tests wait for this).
        self.sleeping = False
        storage.on_commit(self._on_commit)

    def _on_commit(self) -> None:
        self._wake.set()

    async def start_from_now(self) -> None:
        """Start tailing after the newest event: subscribers see only what happens from now on."""
        async with self.storage.read() as tx:
            self.last_sequence = await journal.last_sequence(tx)

    def listen(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that stops it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def subscribe(self, predicate: Callable[[Event], bool] | None = None) -> Subscription:
        sub = Subscription(self, predicate)
        self._subscriptions.add(sub)
        return sub

    @asynccontextmanager
    async def subscription(self, predicate: Callable[[Event], bool] | None = None) -> AsyncIterator[Subscription]:
        sub = self.subscribe(predicate)
        try:
            yield sub
        finally:
            sub.close()

    def _dispatch(self, events: Iterable[Event]) -> None:
        for event in events:
            for sub in list(self._subscriptions):
                sub._offer(event)
            for callback in list(self._listeners):
                try:
                    callback(event)
                except Exception:  # a listener's bug must not stop the stream
                    log.exception("event listener failed on %s", event.type)

    async def pump(self) -> int:
        """Read and dispatch everything committed since the last read; returns how many events."""
        async with self._lock:
            total = 0
            while True:
                async with self.storage.read() as tx:
                    events = await journal.events_since(tx, self.last_sequence, limit=self.batch)
                if not events:
                    return total
                self.last_sequence = events[-1].sequence
                self._dispatch(events)
                total += len(events)
                if len(events) < self.batch:
                    return total

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Tail until ``stop()``: after every local commit, and every ``poll_seconds`` otherwise."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.pump()
            except Exception:
                log.exception("event bus: reading the event log failed; retrying")
            if self._stopping:
                break
            sleeper = asyncio.ensure_future(self.clock.sleep(self.poll_seconds))
            waker = asyncio.ensure_future(self._wake.wait())
            self.sleeping = not self._wake.is_set()
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.sleeping = False
                for task in (sleeper, waker):
                    task.cancel()
                await asyncio.gather(sleeper, waker, return_exceptions=True)
