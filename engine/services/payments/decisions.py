"""Status changes people decide: cancel (the KHQR stays watched until its expiry plus the late
watch), mark paid, and resolve a NEEDS_REVIEW or PAID_LATE payment; each one conditional
``engine.db.payments.transition``, audited with its reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from engine.config import Settings
from engine.db import payments as repo
from engine.db.storage import Storage, Tx
from engine.errors import Conflict, InvalidInput, InvalidTransition
from engine.records import Actor, Payment, PaymentStatus
from engine.services.schedule import Allowance, CheckSchedule

__all__ = ["PaymentDecisions"]


class PaymentDecisions:
    """The payment service's status changes decided by an operator or a backend."""

    storage: Storage
    settings: Settings
    schedule: CheckSchedule
    allowance: Callable[[], Allowance | None]

    async def cancel(self, payment_id: str, *, actor: Actor, reason: str = "cancelled") -> Payment:
        reason = (reason or "").strip() or "cancelled"
        async with self.storage.transaction() as tx:
            current = await repo.get(tx, payment_id)
            done = await self.cancel_in(tx, current, actor=actor, reason=reason)
            if done is None:
                raise InvalidTransition(f"payment {payment_id} is {current.status.value}: only a PENDING payment can be cancelled")
            return done

    async def cancel_in(self, tx: Tx, current: Payment, *, actor: Actor, reason: str) -> Payment | None:
        """Cancel a PENDING payment in the caller's transaction (None if it is not PENDING).

        Its KHQR can still be scanned and paid until it expires, so it stays watched until the
        expiry plus the late watch (``CheckSchedule``): a transfer found on it goes to NEEDS_REVIEW
        with an alert."""
        watch_until = current.expires_at + timedelta(minutes=self.settings.payments.late_watch_minutes)
        watched = replace(current, status=PaymentStatus.CANCELLED, late_watch_until=watch_until)
        return await repo.transition(
            tx,
            current.id,
            expected=[PaymentStatus.PENDING],
            to=PaymentStatus.CANCELLED,
            actor=actor,
            reason=reason,
            changes={
                "next_check_at": self.schedule.next_check_at(watched, tx.now, self.allowance()),
                "check_requested_at": None,
                "late_watch_until": watch_until,
            },
        )

    async def mark_paid(self, payment_id: str, *, actor: Actor, reason: str, bakong_hash: str | None = None) -> Payment:
        """An operator's decision that money arrived (e.g. seen in the bank app); audited with the reason."""
        reason = _require_reason(reason)
        changes: dict[str, Any] = {"next_check_at": None, "check_requested_at": None}
        async with self.storage.transaction() as tx:
            current = await repo.get(tx, payment_id)
            changes["paid_at"] = current.paid_at or tx.now
            if bakong_hash:
                changes["bakong_hash"] = bakong_hash.strip().lower()
            done = await repo.transition(
                tx,
                payment_id,
                expected=[PaymentStatus.PENDING, PaymentStatus.TIMEOUT],
                to=PaymentStatus.PAID,
                actor=actor,
                reason=reason,
                changes=changes,
                action="payment.mark_paid",
                event_extra={"manual": True},
            )
            if done is None:
                raise InvalidTransition(
                    f"payment {payment_id} is {current.status.value}: only PENDING or TIMEOUT can be marked paid"
                )
            return done

    async def resolve(self, payment_id: str, *, accept: bool, actor: Actor, reason: str) -> Payment:
        """Decide a NEEDS_REVIEW or PAID_LATE payment: accept (PAID) or reject (FAILED, refund outside)."""
        reason = _require_reason(reason)
        async with self.storage.transaction() as tx:
            current = await repo.get(tx, payment_id)
            changes: dict[str, Any] = {"next_check_at": None, "check_requested_at": None}
            found_hash = str((current.bakong_record or {}).get("hash") or "").lower()
            if accept and found_hash and not current.bakong_hash:
                # A payment put to review was not given its Bakong transaction (it might belong to
                # another payment): accepting it claims the transaction, once.
                other = await repo.find_by_hash(tx, found_hash)
                if other is not None and other.id != payment_id:
                    raise Conflict(
                        f"Bakong transaction {found_hash[:8]} already settled payment {other.id}: "
                        "accepting this one would count it twice; reject it instead"
                    )
                changes["bakong_hash"] = found_hash
            done = await repo.transition(
                tx,
                payment_id,
                expected=[PaymentStatus.NEEDS_REVIEW, PaymentStatus.PAID_LATE],
                to=PaymentStatus.PAID if accept else PaymentStatus.FAILED,
                actor=actor,
                reason=reason,
                changes=changes,
                action="payment.resolve",
                event_extra={"resolution": "accepted" if accept else "rejected"},
            )
            if done is None:
                raise InvalidTransition(
                    f"payment {payment_id} is {current.status.value}: only NEEDS_REVIEW or PAID_LATE can be resolved"
                )
            return done


def _require_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("a reason is required", field="reason")
    if len(text) > 500:
        raise InvalidInput("reason is longer than 500 characters", field="reason")
    return text
