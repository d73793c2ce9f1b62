"""Hosted checkouts in the database: a payment's checkout, its links, and the "I have paid" limit.

A checkout row holds where the payer goes when the payment ends; each link row holds one token's
lookup prefix and the SHA-256 of the whole token (never the token). Opening a checkout is audited
in the caller's transaction; the links carry no state that changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from engine.db.journal import audit
from engine.db.models import CheckoutLinkRow, CheckoutRow, PaymentStatusHistoryRow
from engine.db.storage import Tx
from engine.errors import Conflict
from engine.records import Actor, PaymentStatus

__all__ = ["Checkout", "add_link", "claim_paid", "ended_at", "find_link", "get", "insert"]


@dataclass(frozen=True)
class Checkout:
    """A payment's checkout page: where it sends the payer, and the last "I have paid" acted on."""

    payment_id: str
    success_url: str | None
    cancel_url: str | None
    created_at: datetime
    paid_claimed_at: datetime | None


def _to_record(row: CheckoutRow) -> Checkout:
    return Checkout(row.payment_id, row.success_url, row.cancel_url, row.created_at, row.paid_claimed_at)


async def get(tx: Tx, payment_id: str) -> Checkout | None:
    row = await tx.session.get(CheckoutRow, payment_id)
    return None if row is None else _to_record(row)


async def insert(tx: Tx, payment_id: str, *, success_url: str | None, cancel_url: str | None, actor: Actor) -> Checkout:
    """The payment's checkout (audited); a payment has at most one."""
    row = CheckoutRow(payment_id=payment_id, success_url=success_url, cancel_url=cancel_url, created_at=tx.now, paid_claimed_at=None)
    try:
        async with tx.session.begin_nested():
            tx.session.add(row)
            await tx.session.flush()
    except IntegrityError:
        raise Conflict(f"payment {payment_id} already has a checkout") from None
    await audit(
        tx, actor, "checkout.open", "payment", payment_id,
        after={"success_url": success_url, "cancel_url": cancel_url},
    )  # fmt: skip
    return _to_record(row)


async def add_link(tx: Tx, payment_id: str, *, prefix: str, token_hash: str) -> None:
    """A new link to the payment's checkout; a prefix already taken is a Conflict (draw again)."""
    try:
        async with tx.session.begin_nested():
            tx.session.add(CheckoutLinkRow(prefix=prefix, token_hash=token_hash, payment_id=payment_id, created_at=tx.now))
            await tx.session.flush()
    except IntegrityError:
        raise Conflict("a checkout link with this prefix already exists") from None


async def find_link(tx: Tx, prefix: str) -> tuple[str, str] | None:
    """(payment id, stored token hash) of the link with this prefix; the caller compares the hash."""
    row = (
        await tx.session.execute(
            select(CheckoutLinkRow.payment_id, CheckoutLinkRow.token_hash).where(CheckoutLinkRow.prefix == prefix)
        )
    ).first()
    return None if row is None else (row.payment_id, row.token_hash)


async def ended_at(tx: Tx, payment_id: str) -> datetime | None:
    """When the payment first left PENDING (a later change, e.g. TIMEOUT then PAID_LATE, does not
    move it), or None while it never has."""
    return await tx.session.scalar(
        select(func.min(PaymentStatusHistoryRow.at)).where(
            PaymentStatusHistoryRow.payment_id == payment_id,
            PaymentStatusHistoryRow.from_status == PaymentStatus.PENDING.value,
        )
    )


async def claim_paid(tx: Tx, payment_id: str, *, interval_seconds: float) -> bool:
    """Take the payment's "I have paid" slot: False when one was taken less than
    ``interval_seconds`` ago (one conditional UPDATE, so two processes cannot both take it)."""
    cutoff = tx.now - timedelta(seconds=interval_seconds)
    result = await tx.session.execute(
        update(CheckoutRow)
        .where(
            CheckoutRow.payment_id == payment_id,
            or_(CheckoutRow.paid_claimed_at.is_(None), CheckoutRow.paid_claimed_at <= cutoff),
        )
        .values(paid_claimed_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
