"""The deliverer: fans committed events out to webhook endpoints and sends what is due, signed.

Each pass first reads the event log after its durable cursor (``engine_state`` row
``deliverer.cursor``) and writes one PENDING delivery per (event, enabled endpoint that wants its
type), advancing the cursor in the same transaction. Then it sends due deliveries, up to
``webhooks.concurrency`` at once through one shared HTTP client: a delivery is claimed (its
``next_attempt_at`` pushed past the in-flight window) before it is sent, and its result is
recorded afterwards, so a process killed mid-flight leaves it to be sent again after the window
(at-least-once, same ``webhook-id``). A pass claims for at most ``WAVE_SECONDS``, hands back
what it claimed but did not start, and drains what is in flight (at most one attempt's timeout),
so the lease is renewed between passes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta
from typing import Any

from engine.clock import Clock
from engine.config import Settings
from engine.db import journal
from engine.db import state as engine_state
from engine.db import webhooks as repo
from engine.db.storage import Storage
from engine.webhooks.message import encode_body, in_flight_window
from engine.webhooks.sender import WebhookSender
from engine.workers.base import Worker

__all__ = ["CURSOR_STATE", "Deliverer"]

log = logging.getLogger("engine.deliverer")

CURSOR_STATE = "deliverer.cursor"
#: How long one pass keeps claiming new deliveries before it drains and returns.
WAVE_SECONDS = 5.0
#: A claim takes up to this many times the concurrency (a local queue; fewer, larger writes).
CLAIM_FACTOR = 4
#: Attempts in flight this long without an answer count as slow: database work goes ahead.
STALL_SECONDS = 0.05
FAN_OUT_BATCH = 500
#: Events written per fan-out transaction: between two, writers queued on SQLite's one write lock
#: (an API create) get their turn, instead of waiting behind a whole batch (issue 19.2).
FAN_OUT_CHUNK = 50
#: With no endpoint enabled, how often the cursor (moved in memory) is written down.
CURSOR_PERSIST_SECONDS = 30.0


class Deliverer(Worker):
    name = "deliverer"

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Clock,
        sender: WebhookSender,
        rng: random.Random | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.sender = sender
        self.rng = rng or random.Random()
        self.concurrency = max(1, settings.webhooks.concurrency)
        self.in_flight = in_flight_window(settings.webhooks.timeout_seconds)
        self._cursor: int | None = None
        #: Whether fan-out found an endpoint enabled in this pass (None: it did not look).
        self._any_enabled: bool | None = None
        self._stored = 0
        self._persisted_at = float("-inf")
        #: Counters the console and the bench read.
        self.sent = 0
        self.succeeded = 0

    async def on_lease_lost(self) -> None:
        self._cursor = None

    # --- fan-out ----------------------------------------------------------------------------------

    async def fan_out(self) -> int:
        """Turn newly committed events into deliveries; returns how many events were consumed.

        With no endpoint enabled the cursor only moves in memory and is written down now and then
        (every ``CURSOR_PERSIST_SECONDS``): an engine without webhooks adds no write to each change.
        """
        if self._cursor is None:
            async with self.storage.read() as tx:
                self._stored = self._cursor = int((await engine_state.get_state(tx, CURSOR_STATE) or {}).get("sequence", 0))
        total = 0
        self._any_enabled = None
        while True:
            async with self.storage.read() as tx:
                events = await journal.events_since(tx, self._cursor, limit=FAN_OUT_BATCH)
                endpoints = await repo.enabled_endpoints(tx) if events else []
            if events:
                self._any_enabled = bool(endpoints)
            if events and not endpoints:
                self._cursor = events[-1].sequence
                total += len(events)
                if len(events) == FAN_OUT_BATCH:
                    continue
            if not events or not endpoints:
                if self._cursor != self._stored and self.clock.monotonic() - self._persisted_at >= CURSOR_PERSIST_SECONDS:
                    await self._persist_cursor([], [])
                return total
            moved = True
            for start in range(0, len(events), FAN_OUT_CHUNK):
                chunk = events[start : start + FAN_OUT_CHUNK]
                if not await self._persist_cursor(chunk, endpoints):
                    moved = False
                    break
                total += len(chunk)
            if moved and len(events) < FAN_OUT_BATCH:
                return total

    async def _persist_cursor(self, events: list[Any], endpoints: list[Any]) -> bool:
        """Write the deliveries for ``events`` and move the stored cursor past them (or to the
        in-memory cursor), in one transaction; False if another process moved it meanwhile."""
        target = events[-1].sequence if events else self._cursor
        async with self.storage.transaction(events=False) as tx:
            stored = int((await engine_state.get_state(tx, CURSOR_STATE) or {}).get("sequence", 0))
            if stored != self._stored:  # someone else moved it (a lease change): start from theirs
                self._stored = self._cursor = stored
                return False
            if events:
                await repo.fan_out(tx, events, endpoints)
            await engine_state.set_state(tx, CURSOR_STATE, {"sequence": target})
        self._stored = self._cursor = target
        self._persisted_at = self.clock.monotonic()
        return True

    # --- sending ----------------------------------------------------------------------------------

    async def run_once(self) -> float | None:
        await self.fan_out()
        if self._any_enabled is False:
            # Fan-out has just read that no endpoint is enabled: there is nothing to send, and an
            # engine without webhooks pays one read per change here, not three.
            return None
        full = await self.deliver_due()
        if full:
            return 0.0
        return await self._next_hint()

    async def _claim(self, want: int, held: dict[str, int], per_endpoint: int | None) -> list[repo.ClaimedDelivery]:
        async with self.storage.read() as tx:
            candidates = await repo.due_candidates(tx, limit=want, per_endpoint=per_endpoint, held=held)
        if not candidates:
            return []
        async with self.storage.transaction(events=False) as tx:
            return await repo.claim(tx, candidates, in_flight=self.in_flight)

    async def deliver_due(self) -> bool:
        """Send due deliveries for up to one wave; True if it stopped claiming with work maybe left.

        Up to ``concurrency`` HTTP attempts run at once from a local queue of claimed deliveries.
        Database work (claiming the next batch, recording finished attempts in one transaction)
        happens when the pipeline runs low or the attempts in flight are slow: done while many
        answers are arriving it would only queue behind them for the interpreter.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAVE_SECONDS
        async with self.storage.read() as tx:
            endpoints = await repo.enabled_endpoints(tx)
        if not endpoints:
            return False
        slots = self.concurrency
        batch = CLAIM_FACTOR * slots
        low_water = slots // 4
        # With several endpoints none may take more than half the slots (a slow one cannot starve
        # the rest), nor hold more than half the queue.
        several = len(endpoints) > 1
        in_flight_cap = max(1, (slots + 1) // 2) if several else slots
        held_cap = max(1, batch // 2) if several else None
        queue: list[repo.ClaimedDelivery] = []
        sends: dict[asyncio.Future[Any], repo.ClaimedDelivery] = {}
        sending: dict[str, int] = {}
        held: dict[str, int] = {}
        finished: list[repo.RecordedAttempt] = []
        bodies: dict[int, bytes] = {}
        exhausted = timed_out = stalled = False
        try:
            while True:
                quiet = stalled or len(sends) <= low_water
                if finished and (quiet or len(finished) >= batch):
                    disabled = await self._record(finished)
                    finished = []
                    if disabled:  # 410 or days of failure: what is still queued for them stays unsent
                        queue = [item for item in queue if item.endpoint_id not in disabled]
                    # a success may have released the next event of the same subject: look again
                    exhausted = timed_out
                if loop.time() >= deadline:
                    exhausted = timed_out = True
                    if queue:  # hand back what was claimed but not started: the pass ends soon
                        await self._release(queue)
                        queue = []
                if not exhausted and len(queue) < slots and quiet:
                    want = batch - len(queue)
                    claimed = await self._claim(want, held, held_cap)
                    exhausted = len(claimed) < want
                    for item in claimed:
                        queue.append(item)
                        held[item.endpoint_id] = held.get(item.endpoint_id, 0) + 1
                index = 0
                while index < len(queue) and len(sends) < slots:
                    item = queue[index]
                    if sending.get(item.endpoint_id, 0) >= in_flight_cap:
                        index += 1
                        continue
                    queue.pop(index)
                    body = bodies.get(item.event_sequence)
                    if body is None:
                        body = bodies[item.event_sequence] = encode_body(item.event_type, item.occurred_at, item.payload)
                    sends[asyncio.ensure_future(self.sender.send(item.message(body)))] = item
                    sending[item.endpoint_id] = sending.get(item.endpoint_id, 0) + 1
                if not sends:
                    if finished or (queue and not exhausted):
                        continue
                    break
                done, _ = await asyncio.wait(sends, timeout=STALL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
                stalled = not done
                for fut in done:
                    item = sends.pop(fut)
                    sending[item.endpoint_id] -= 1
                    held[item.endpoint_id] -= 1
                    finished.append(repo.RecordedAttempt(fut.result(), item.attempt_count + 1))
        except BaseException:
            # Cancelled (shutdown, or the process is going away) or the database failed: abandon
            # what is in flight without recording it. The claims lapse and those deliveries are
            # sent again: at-least-once.
            for fut in sends:
                fut.cancel()
            await asyncio.gather(*sends, return_exceptions=True)
            raise
        return timed_out

    async def _release(self, items: list[repo.ClaimedDelivery]) -> None:
        async with self.storage.transaction(events=False) as tx:
            await repo.release(tx, [item.delivery_id for item in items])

    async def _record(self, done: list[repo.RecordedAttempt]) -> set[str]:
        """Write finished attempts down; returns the ids of endpoints that this disabled."""
        wh = self.settings.webhooks
        async with self.storage.transaction() as tx:
            disabled = await repo.record_results(
                tx, done, rng=self.rng, jitter=wh.jitter, disable_after=timedelta(days=wh.disable_after_days)
            )
        self.sent += len(done)
        self.succeeded += sum(1 for d in done if d.result.succeeded)
        for endpoint in disabled:
            log.warning("webhook endpoint %s (%s) disabled: %s", endpoint.id, endpoint.url, endpoint.disabled_reason)
        return {endpoint.id for endpoint in disabled}

    async def _next_hint(self) -> float | None:
        async with self.storage.read() as tx:
            due = await repo.next_due_at(tx)
        if due is None:
            return None
        return max(0.0, (due - self.clock.now()).total_seconds())
