"""The expirer: PENDING payments past their timeout become TIMEOUT, and their late watch ends.

Before timing a payment out it asks Bakong once more (a final check, reserved in the request
ledger like every request; skipped when a check already came at or after the expiry, or while the
poller may not ask): a transfer made in time settles the payment instead of a timeout. Without
an answer (Bakong refused, the budget is spent, polling is paused) it times out as before, and the
late watch finds a payment made in time later and corrects the timeout (see settlement).

A timed-out payment is still watched for ``late_watch_minutes`` (the poller checks it now and
then, and a find becomes PAID_LATE for an operator, or PAID when the transfer was made in time);
a payment whose last answer was a failed transfer becomes FAILED instead of TIMEOUT. When the
watch ends the payment leaves the schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from engine.bakong.client import BakongClient
from engine.bakong.models import CheckOutcome, CheckStatus
from engine.clock import Clock
from engine.config import Settings
from engine.db import payments as repo
from engine.db.storage import Storage
from engine.errors import BakongError
from engine.records import Actor, Payment, PaymentStatus
from engine.services.schedule import Allowance
from engine.services.settlement import TRANSFER_FAILED, apply_outcome, changes_state, check_result
from engine.workers.base import Worker

__all__ = ["Expirer"]

log = logging.getLogger("engine.expirer")

ACTOR = Actor.daemon("expirer")


class Expirer(Worker):
    name = "expirer"

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Clock,
        client: BakongClient | None = None,
        allowance: Callable[[], Allowance | None] = lambda: None,
        may_ask: Callable[[], bool] = lambda: True,
        batch: int = 200,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.client = client
        self.allowance = allowance
        self.may_ask = may_ask
        self.batch = batch

    async def run_once(self) -> float | None:
        now = self.clock.now()
        async with self.storage.read() as tx:
            expired = await repo.expired_pending(tx, now, self.batch)
            finished = await repo.late_watch_finished(tx, now, self.batch)
        answers = await self._final_check(expired)
        for payment in expired:
            await self._expire(payment, answers.get(payment.md5))
        for payment_id in finished:
            async with self.storage.transaction(events=False) as tx:
                await repo.set_schedule(tx, payment_id, next_check_at=None)
        if len(expired) >= self.batch or len(finished) >= self.batch:
            return 0.0
        return await self._next_hint()

    async def _final_check(self, expired: list[Payment]) -> dict[str, CheckOutcome]:
        """Bakong's answers for the expired payments not checked since they expired ({} when none
        could be had: the timeout then stands until the late watch finds otherwise)."""
        unchecked = [p.md5 for p in expired if p.last_checked_at is None or p.last_checked_at < p.expires_at]
        if not unchecked or self.client is None or not self.may_ask():
            return {}
        try:
            if len(unchecked) == 1:
                # one MD5 costs the same on the single endpoint, and sends no probe of a bulk
                # endpoint that may answer 403 (a wasted request of a scarce day's budget)
                return {unchecked[0]: await self.client.check_payment(unchecked[0])}
            return await self.client.check_payments(unchecked)
        except BakongError as exc:
            log.warning("expirer: no final check of %d expiring payments: %s", len(unchecked), exc.message or exc.kind)
            return {}

    async def _expire(self, payment: Payment, outcome: CheckOutcome | None) -> None:
        late = timedelta(minutes=self.settings.payments.late_watch_minutes)
        answered = outcome is not None and outcome.status is not CheckStatus.REFUSED
        async with self.storage.transaction() as tx:
            current = await repo.get(tx, payment.id)
            if current.status is not PaymentStatus.PENDING:
                return  # the poller or a person got there first
            if outcome is not None and changes_state(outcome, current):
                if await apply_outcome(tx, current, outcome, actor=ACTOR, next_check_at=None) is not None:
                    return
            failed = (check_result(outcome) if answered and outcome is not None else current.last_check_result) == TRANSFER_FAILED
            allowance = self.allowance()
            ample = allowance is None or allowance.ample
            watch = late.total_seconds() > 0 and not failed
            changes: dict[str, Any] = {"late_watch_until": tx.now + late if watch else None, "check_requested_at": None}
            if not watch:
                changes["next_check_at"] = None
            elif answered:
                # the final check was the look at the timeout: then the late watch's own pace (its
                # one affordable look already spent when the budget is scarce)
                late_look = timedelta(seconds=self.settings.payments.late_interval_seconds)
                changes["next_check_at"] = min(tx.now + late_look, tx.now + late) if ample else None
            else:
                # one look right at the timeout, then the late watch's own pace (none when scarce)
                changes["next_check_at"] = tx.now if ample else tx.now + late / 2
            if answered and outcome is not None:
                changes.update(last_checked_at=tx.now, last_check_result=check_result(outcome), check_count=repo.ONE_MORE_CHECK)
            await repo.transition(
                tx,
                payment.id,
                expected=[PaymentStatus.PENDING],
                to=PaymentStatus.FAILED if failed else PaymentStatus.TIMEOUT,
                actor=ACTOR,
                reason="Bakong reported the transfer failed" if failed else "not paid before the KHQR expired",
                changes=changes,
            )

    async def _next_hint(self) -> float:
        async with self.storage.read() as tx:
            soonest = await repo.soonest_expiry(tx)
        if soonest is None:
            return 30.0
        return max(0.0, min(30.0, (soonest - self.clock.now()).total_seconds()))
