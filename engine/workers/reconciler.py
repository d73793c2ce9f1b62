"""The nightly reconciliation: from ``reconcile.at`` (Phnom Penh time) for ``reconcile.spread_minutes``,
the paid payments of past days are re-checked with Bakong by their hash, oldest first, one
request at a time, the night's share of the budget spread evenly over that window.

The share is reconciliation's (``ReconciliationService.share``): what live polling left unused of
the previous day's budget, so the night never takes what today's payments will need. The pass
ends when the share is spent, nothing is left to re-check, or the window closes; then one
``alert.reconciliation_failed`` sums up the night's flags. The night's flags are kept in the
engine state (``reconcile.nightly``), so a process that takes the lease over mid-night carries
on without a second alert. A refusal (quota, token, Bakong down) waits ``RETRY_SECONDS``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from engine.clock import Clock
from engine.config import Settings, parse_backup_at
from engine.db import state as engine_state
from engine.db.storage import Storage
from engine.records import Actor
from engine.services.reconciliation import ReconcileRun, ReconciliationService, append_alert
from engine.workers.backup import last_due
from engine.workers.base import Worker

__all__ = ["ACTOR", "NIGHTLY_STATE", "NightlyReconciler"]

log = logging.getLogger("engine.reconcile")

ACTOR = Actor.daemon("reconciler")
NIGHTLY_STATE = "reconcile.nightly"


class NightlyReconciler(Worker):
    name = "reconciler"
    #: After a refusal, the next request waits this long (within the night's window).
    RETRY_SECONDS = 600.0

    def __init__(self, service: ReconciliationService, storage: Storage, settings: Settings, *, clock: Clock) -> None:
        at = parse_backup_at(settings.reconcile.at)
        if at is None:  # validated with the settings; kept for settings built in code
            raise ValueError(f"reconcile.at: not a time of day: {settings.reconcile.at!r}")
        self.service = service
        self.storage = storage
        self.clock = clock
        self.at = at
        self.window = timedelta(minutes=settings.reconcile.spread_minutes)
        #: the night this process knows is finished (saves a read per wake-up)
        self._finished: datetime | None = None
        #: no request before then (the runner wakes a worker more often than its pace)
        self._next_at: datetime | None = None

    async def on_lease_lost(self) -> None:
        self._finished = None
        self._next_at = None

    def _until(self, instant: datetime) -> float:
        return max(1.0, (instant - self.clock.now()).total_seconds())

    async def run_once(self) -> float | None:
        now = self.clock.now()
        night = last_due(now, self.at)
        tomorrow = night + timedelta(days=1)
        if self._finished is not None and self._finished >= night:
            return self._until(tomorrow)
        if self._next_at is not None and now < self._next_at:
            return self._until(self._next_at)
        state = await self._state(night)
        if state.get("finished"):
            self._finished = night
            return self._until(tomorrow)
        ends = night + self.window
        if now >= ends:
            await self._finish(night, state, "the night's window closed")
            return self._until(tomorrow)
        share = await self.service.share()
        if share.left <= 0:
            await self._finish(night, state, "the night's share of the budget is spent")
            return self._until(tomorrow)
        run = await self.service.reconcile(actor=ACTOR, max_requests=1, alert=False)
        state = await self._record(night, state, run)
        if run.requests == 0:
            await self._finish(night, state, "nothing left to re-check")
            return self._until(tomorrow)
        left = share.left - run.requests
        if run.stopped and left > 0:
            log.warning("nightly reconciliation: %s; next try in %.0f s", run.stopped, self.RETRY_SECONDS)
            return self._pace(min(self.RETRY_SECONDS, self._until(ends)))
        if left <= 0:
            await self._finish(night, state, "the night's share of the budget is spent")
            return self._until(tomorrow)
        # the rest of the share spread evenly over the rest of the window
        return self._pace(max(0.0, (ends - self.clock.now()).total_seconds() / (left + 1)))

    def _pace(self, seconds: float) -> float:
        self._next_at = self.clock.now() + timedelta(seconds=seconds)
        return seconds

    async def _state(self, night: datetime) -> dict[str, Any]:
        async with self.storage.read() as tx:
            state = await engine_state.get_state(tx, NIGHTLY_STATE) or {}
        if state.get("night") != night.isoformat():
            return {"night": night.isoformat(), "counts": {}, "payments": [], "requests": 0, "reconciled": 0}
        return state

    async def _record(self, night: datetime, state: dict[str, Any], run: ReconcileRun) -> dict[str, Any]:
        counts = dict(state.get("counts") or {})
        for kind, n in run.flag_counts.items():
            counts[kind] = int(counts.get(kind, 0)) + n
        payments = [*list(state.get("payments") or []), *(p.id for p in run.flagged)][:100]
        updated = {
            **state, "counts": counts, "payments": payments,
            "requests": int(state.get("requests") or 0) + run.requests,
            "reconciled": int(state.get("reconciled") or 0) + len(run.reconciled),
        }  # fmt: skip
        async with self.storage.transaction(events=False) as tx:
            await engine_state.set_state(tx, NIGHTLY_STATE, updated)
        return updated

    async def _finish(self, night: datetime, state: dict[str, Any], why: str) -> None:
        counts: dict[str, int] = dict(state.get("counts") or {})
        async with self.storage.transaction(events=bool(counts)) as tx:
            if counts:  # one alert for the night, committed with the night's end
                await append_alert(tx, counts, list(state.get("payments") or []), day=None)
            await engine_state.set_state(tx, NIGHTLY_STATE, {**state, "finished": why, "finished_at": tx.now.isoformat()})
        self._finished = night
        log.info(
            "nightly reconciliation done (%s): %s reconciled, %s flagged, %s request(s)",
            why, state.get("reconciled", 0), sum(counts.values()), state.get("requests", 0),
        )  # fmt: skip
