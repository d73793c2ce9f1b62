"""Checking payments with Bakong on demand: "the customer says paid" (ahead of the schedule),
one check now, a bulk check by MD5, and waiting for a payment to leave PENDING (``monitor``).
Each answer is applied through ``engine.services.settlement.apply_outcome``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from engine.bakong import BULK_LIMIT, BakongClient
from engine.bakong.models import CheckOutcome
from engine.bus import EventBus
from engine.clock import Clock
from engine.config import Settings
from engine.db import journal
from engine.db import payments as repo
from engine.db.storage import Storage
from engine.errors import InvalidInput, InvalidTransition
from engine.records import Actor, Payment, PaymentStatus
from engine.services.payments.queries import normal_md5
from engine.services.schedule import Allowance, CheckSchedule
from engine.services.settlement import apply_outcome

__all__ = ["PaymentChecks"]


class PaymentChecks:
    """The payment service's checks with Bakong (it reads payments with ``PaymentQueries.get``)."""

    storage: Storage
    settings: Settings
    clock: Clock
    client: BakongClient
    bus: EventBus
    schedule: CheckSchedule
    allowance: Callable[[], Allowance | None]
    poke_poller: Callable[[Payment | None], None]

    async def request_check(self, payment_id: str, *, actor: Actor) -> Payment:
        """"The customer says they paid": check this payment ahead of the schedule."""
        async with self.storage.transaction() as tx:
            payment = await repo.get(tx, payment_id)
            if not await repo.request_check(tx, payment_id):
                raise InvalidTransition(f"payment {payment_id} is {payment.status.value}: it is no longer being checked")
            await journal.audit(tx, actor, "payment.request_check", "payment", payment_id)
        self.poke_poller(None)
        return await self.get(payment_id)

    async def check_now(self, payment_id: str, *, actor: Actor) -> tuple[Payment, CheckOutcome]:
        """One immediate Bakong check of one payment, applied; Bakong refusals raise."""
        payment = await self.get(payment_id)
        if payment.status not in (PaymentStatus.PENDING, PaymentStatus.TIMEOUT) and not self._still_payable(payment):
            raise InvalidTransition(f"payment {payment_id} is {payment.status.value}: there is nothing to check")
        outcome = (await self.client.check_payments([payment.md5]))[payment.md5]
        updated = await self._apply(payment, outcome, actor=actor)
        return updated, outcome

    async def bulk_check(self, md5s: Sequence[str], *, actor: Actor) -> dict[str, Payment | None]:
        """The current state of many payments by MD5; those still being watched are checked with
        Bakong first (batches of 50). Unknown MD5s map to None."""
        keys = list(dict.fromkeys(normal_md5(m) for m in md5s))
        if not keys:
            raise InvalidInput("give at least one MD5", field="md5s")
        async with self.storage.read() as tx:
            known = await repo.get_many_by_md5(tx, keys)
        watched = [
            p for p in known.values() if p.next_check_at and (p.status in (PaymentStatus.PENDING, PaymentStatus.TIMEOUT) or self._still_payable(p))
        ]
        for start in range(0, len(watched), BULK_LIMIT):
            chunk = watched[start : start + BULK_LIMIT]
            outcomes = await self.client.check_payments([p.md5 for p in chunk])
            for p in chunk:
                known[p.md5] = await self._apply(p, outcomes[p.md5], actor=actor)
        return {key: known.get(key) for key in keys}

    def _still_payable(self, payment: Payment) -> bool:
        """A cancelled payment whose KHQR can still be (or lately was) paid: it is still watched."""
        return (
            payment.status is PaymentStatus.CANCELLED
            and payment.late_watch_until is not None
            and self.clock.now() < payment.late_watch_until
        )

    async def _apply(self, payment: Payment, outcome: CheckOutcome, *, actor: Actor) -> Payment:
        async with self.storage.transaction() as tx:
            current = await repo.get(tx, payment.id)
            nxt = self.schedule.next_check_at(current, tx.now, self.allowance()) if current.next_check_at else None
            await apply_outcome(tx, current, outcome, actor=actor, next_check_at=nxt)
            return await repo.get(tx, payment.id)

    async def monitor(self, payment_id: str, *, timeout: float | None = None, priority: bool = False) -> Payment:
        """Wait until the payment leaves PENDING or ``timeout`` seconds pass; returns its state then.

        Driven by the poller's events, not a loop of requests; ``priority`` asks the poller to check
        it ahead of the schedule ("the customer says paid")."""
        limit = self.settings.payments.monitor_timeout_seconds if timeout is None else timeout
        if limit < 0:
            raise InvalidInput("timeout must not be negative", field="timeout")
        async with self.bus.subscription(lambda e: e.subject_id == payment_id) as sub:
            payment = await self.get(payment_id)
            if payment.status is not PaymentStatus.PENDING or limit == 0:
                return payment
            if priority:
                await self.request_check(payment_id, actor=Actor.daemon("monitor"))
            deadline = self.clock.monotonic() + limit
            while True:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    return await self.get(payment_id)
                getter = asyncio.ensure_future(sub.get())
                sleeper = asyncio.ensure_future(self.clock.sleep(min(left, 5.0)))
                try:
                    await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (getter, sleeper):
                        task.cancel()
                    await asyncio.gather(getter, sleeper, return_exceptions=True)
                payment = await self.get(payment_id)
                if payment.status is not PaymentStatus.PENDING:
                    return payment
