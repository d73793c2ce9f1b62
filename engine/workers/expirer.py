"""The expirer: PENDING payments past their timeout become TIMEOUT, and their late watch ends.

A timed-out payment is still watched for ``late_watch_minutes`` (the poller checks it now and
then, and a find becomes PAID_LATE for an operator); a payment whose last answer was a failed
transfer becomes FAILED instead of TIMEOUT. When the watch ends the payment leaves the schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from engine.clock import Clock
from engine.config import Settings
from engine.db import payments as repo
from engine.db.storage import Storage
from engine.records import Actor, PaymentStatus
from engine.services.schedule import Allowance
from engine.services.settlement import TRANSFER_FAILED
from engine.workers.base import Worker

__all__ = ["Expirer"]

ACTOR = Actor.daemon("expirer")


class Expirer(Worker):
    name = "expirer"

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Clock,
        allowance: Callable[[], Allowance | None] = lambda: None,
        batch: int = 200,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.allowance = allowance
        self.batch = batch

    async def run_once(self) -> float | None:
        now = self.clock.now()
        late = timedelta(minutes=self.settings.payments.late_watch_minutes)
        async with self.storage.read() as tx:
            expired = await repo.expired_pending(tx, now, self.batch)
            finished = await repo.late_watch_finished(tx, now, self.batch)
        for payment in expired:
            async with self.storage.transaction() as tx:
                failed = payment.last_check_result == TRANSFER_FAILED
                allowance = self.allowance()
                # one look right at the timeout, then the late watch's own pace (none when scarce)
                watch = late.total_seconds() > 0 and not failed
                await repo.transition(
                    tx,
                    payment.id,
                    expected=[PaymentStatus.PENDING],
                    to=PaymentStatus.FAILED if failed else PaymentStatus.TIMEOUT,
                    actor=ACTOR,
                    reason="Bakong reported the transfer failed" if failed else "not paid before the KHQR expired",
                    changes={
                        "late_watch_until": tx.now + late if watch else None,
                        "next_check_at": (tx.now if (allowance is None or allowance.ample) else tx.now + late / 2)
                        if watch
                        else None,
                        "check_requested_at": None,
                    },
                )
        for payment_id in finished:
            async with self.storage.transaction(events=False) as tx:
                await repo.set_schedule(tx, payment_id, next_check_at=None)
        if len(expired) >= self.batch or len(finished) >= self.batch:
            return 0.0
        return await self._next_hint()

    async def _next_hint(self) -> float:
        async with self.storage.read() as tx:
            soonest = await repo.soonest_expiry(tx)
        if soonest is None:
            return 30.0
        return max(0.0, min(30.0, (soonest - self.clock.now()).total_seconds()))
