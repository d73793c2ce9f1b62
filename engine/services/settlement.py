"""What a Bakong answer does to a payment: verify the transfer, then one conditional transition.

Only a transfer whose amount, currency and receiving account all match what was issued completes a
payment: ``PAID`` when the transfer was made before the KHQR expired (by Bakong's own time for it,
even if the payment was timed out meanwhile: then the completion says ``corrected``), ``PAID_LATE``
when it was made after; anything else goes to ``NEEDS_REVIEW`` for a
person. A cancelled KHQR found paid goes to ``NEEDS_REVIEW`` with an alert (its QR could still be
scanned). A Bakong hash already recorded on another payment is never accepted twice. A static QR
is ``UNTRACKABLE``. A JSON "not found" only reschedules; every other refusal leaves the payment as
it was. Each of these is written in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine import events as ev
from engine.bakong.models import CheckOutcome, CheckStatus, Transaction
from engine.db import payments as repo
from engine.db.journal import append_event
from engine.db.storage import Tx
from engine.errors import Conflict
from engine.records import Actor, Payment, PaymentStatus

__all__ = ["apply_outcome", "changes_state", "check_result", "mismatches", "paid_in_time"]

TRANSFER_FAILED = "transfer_failed"


def mismatches(payment: Payment, transaction: Transaction) -> list[str]:
    """Why a found transfer does not settle this payment (empty: it does)."""
    problems: list[str] = []
    if transaction.currency.upper() != payment.currency:
        problems.append(f"currency {transaction.currency} instead of {payment.currency}")
    minor = transaction.amount_minor if transaction.currency.upper() == payment.currency else None
    if transaction.currency.upper() == payment.currency and minor != payment.amount_minor:
        problems.append(f"amount {transaction.amount} {transaction.currency} instead of {payment.amount} {payment.currency}")
    receiver = (transaction.to_account_id or "").strip().lower()
    if not receiver:
        problems.append("Bakong did not report the receiving account")
    elif receiver != payment.receiving_account.strip().lower():
        problems.append(f"paid to {transaction.to_account_id} instead of {payment.receiving_account}")
    return problems


def _paid_changes(transaction: Transaction, now: datetime) -> dict[str, Any]:
    return {
        "next_check_at": None,
        "check_requested_at": None,
        "paid_at": transaction.acknowledged_at or transaction.created_at or now,
        # the payer's account is kept only encrypted (payer_account_enc): the raw record keeps its
        # place, empty, and reads put it back (engine.db.payments)
        "bakong_record": ({**transaction.raw, "fromAccountId": None} if "fromAccountId" in transaction.raw else transaction.raw) or None,
        "last_checked_at": now,
        "last_check_result": "found",
        "check_count": repo.ONE_MORE_CHECK,
    }


async def apply_outcome(
    tx: Tx,
    payment: Payment,
    outcome: CheckOutcome,
    *,
    actor: Actor,
    next_check_at: datetime | None,
) -> Payment | None:
    """Apply one check's answer; returns the payment if its status changed, else None."""
    if outcome.status is CheckStatus.PAID and outcome.transaction is not None:
        return await _settle(tx, payment, outcome.transaction, actor=actor)
    if outcome.status is CheckStatus.STATIC_QR and payment.status is PaymentStatus.PENDING:
        return await repo.transition(
            tx,
            payment.id,
            expected=[PaymentStatus.PENDING],
            to=PaymentStatus.UNTRACKABLE,
            actor=actor,
            reason="Bakong cannot track a static KHQR",
            changes={
                "next_check_at": None,
                "check_requested_at": None,
                "last_checked_at": tx.now,
                "last_check_result": "static_qr",
                "check_count": repo.ONE_MORE_CHECK,
            },
        )
    await repo.record_check(tx, payment.id, result=check_result(outcome), next_check_at=next_check_at)
    return None


def changes_state(outcome: CheckOutcome, payment: Payment) -> bool:
    """Whether applying ``outcome`` may change the payment's status (else it is bookkeeping)."""
    if outcome.status is CheckStatus.PAID and outcome.transaction is not None:
        return True
    return outcome.status is CheckStatus.STATIC_QR and payment.status is PaymentStatus.PENDING


def check_result(outcome: CheckOutcome) -> str:
    """The payment's ``last_check_result`` for an answer that changes nothing."""
    if outcome.status is CheckStatus.NOT_FOUND:
        return "not_found"
    if outcome.status is CheckStatus.FAILED:
        return TRANSFER_FAILED  # the payer may try again with the same QR; decided at expiry
    if outcome.status is CheckStatus.STATIC_QR:
        return "static_qr"
    kind = getattr(outcome.error, "kind", "refused") if outcome.error else "refused"
    return f"refused:{kind}"


def paid_in_time(payment: Payment, transaction: Transaction) -> bool:
    """Whether the transfer was made before the KHQR expired, by the transfer's own time (when
    the payer made it; Bakong's acknowledgement when that is all it reports). Without either, the
    payment's status decides: found while PENDING is in time, found after the timeout is not."""
    made = transaction.created_at or transaction.acknowledged_at
    if made is None:
        return payment.status is PaymentStatus.PENDING
    return made <= payment.expires_at


async def _settle(tx: Tx, payment: Payment, transaction: Transaction, *, actor: Actor) -> Payment | None:
    if payment.status is PaymentStatus.CANCELLED:
        return await _paid_after_cancel(tx, payment, transaction, actor=actor)
    if payment.status not in (PaymentStatus.PENDING, PaymentStatus.TIMEOUT):
        return None
    in_time = paid_in_time(payment, transaction)
    target = PaymentStatus.PAID if in_time else PaymentStatus.PAID_LATE
    # timed out while the payer had paid in time (the daemon was down, or no check came between
    # the payment and the expiry): the completion corrects the timeout the backend was told of
    corrected = in_time and payment.status is PaymentStatus.TIMEOUT
    expected = [payment.status]
    problems = mismatches(payment, transaction)
    other = await repo.find_by_hash(tx, transaction.hash.lower())
    if other is not None and other.id != payment.id:
        problems.append(f"Bakong transaction {transaction.short_hash} already settled payment {other.id}")
    changes = _paid_changes(transaction, tx.now)
    payer = transaction.from_account_id
    if problems:
        return await repo.transition(
            tx,
            payment.id,
            expected=expected,
            to=PaymentStatus.NEEDS_REVIEW,
            actor=actor,
            reason="; ".join(problems),
            changes=changes,
            payer_account=payer,
            event_extra={"problems": problems, "found_amount": str(transaction.amount), "found_currency": transaction.currency},
        )
    try:
        return await repo.transition(
            tx,
            payment.id,
            expected=expected,
            to=target,
            actor=actor,
            reason=_found_reason(target, corrected),
            changes={**changes, "bakong_hash": transaction.hash.lower()},
            payer_account=payer,
            event_extra={"corrected": True} if corrected else None,
        )
    except Conflict:
        return await repo.transition(
            tx,
            payment.id,
            expected=expected,
            to=PaymentStatus.NEEDS_REVIEW,
            actor=actor,
            reason=f"Bakong transaction {transaction.short_hash} already settled another payment",
            changes=changes,
            payer_account=payer,
        )


def _found_reason(target: PaymentStatus, corrected: bool) -> str:
    if target is PaymentStatus.PAID_LATE:
        return "found on Bakong, paid after the KHQR expired"
    if corrected:
        return "found on Bakong, paid before the KHQR expired: the timeout is corrected"
    return "found on Bakong"


async def _paid_after_cancel(tx: Tx, payment: Payment, transaction: Transaction, *, actor: Actor) -> Payment | None:
    """A cancelled KHQR was paid anyway (it stays scannable until it expires): the money arrived
    for something nobody is selling any more. A person decides (accept, or refund outside), so it
    goes to NEEDS_REVIEW with an alert; its Bakong transaction is claimed only if accepted."""
    problems = ["paid after it was cancelled", *mismatches(payment, transaction)]
    other = await repo.find_by_hash(tx, transaction.hash.lower())
    if other is not None and other.id != payment.id:
        problems.append(f"Bakong transaction {transaction.short_hash} already settled payment {other.id}")
    reviewed = await repo.transition(
        tx,
        payment.id,
        expected=[PaymentStatus.CANCELLED],
        to=PaymentStatus.NEEDS_REVIEW,
        actor=actor,
        reason="; ".join(problems),
        changes={**_paid_changes(transaction, tx.now), "late_watch_until": None},
        payer_account=transaction.from_account_id,
        event_extra={"problems": problems, "found_amount": str(transaction.amount), "found_currency": transaction.currency},
    )
    if reviewed is not None:
        await append_event(
            tx,
            ev.ALERT_PAID_AFTER_CANCEL,
            "payment",
            payment.id,
            {
                # the payment as its other events carry it: a face that follows payments sees the
                # new state whichever of the two events it reads
                **repo.payment_event_data(reviewed),
                "previous_status": PaymentStatus.CANCELLED.value,
                "message": f"payment {payment.id} was cancelled but its KHQR was paid "
                f"({transaction.amount} {transaction.currency}, Bakong {transaction.short_hash}): decide it (accept or refund)",
                "found_hash": transaction.hash.lower(),
                "found_amount": str(transaction.amount),
                "found_currency": transaction.currency,
            },
        )
    return reviewed
