"""Subscription invoices in the database and the KHQR payment recorded on each.

An invoice bills one thing — the first period (``initial``), the next period (``renewal``) or a
prorated upgrade (``upgrade``) — and is unique on ``(subscription_id, kind, period_start)``: a
second renewal invoice for the same period cannot exist, which is what makes the renewer
idempotent. It is OPEN until one of its payments is PAID (then PAID) or it is no longer wanted
(VOID). Every change here is a conditional UPDATE, so a decision taken on an invoice's status
cannot be applied twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Update, select, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.exc import IntegrityError

from engine.db.models import PaymentRow, SubscriptionInvoiceRow
from engine.db.storage import Tx
from engine.db.subscriptions.conversions import iso, to_invoice
from engine.errors import Conflict, NotFound
from engine.records import PaymentStatus, Subscription, SubscriptionInvoice

__all__ = [
    "INVOICE_OPEN",
    "INVOICE_PAID",
    "INVOICE_VOID",
    "KIND_INITIAL",
    "KIND_RENEWAL",
    "KIND_UPGRADE",
    "OpenInvoice",
    "get_invoice",
    "insert_invoice",
    "invoice_for_period",
    "invoices_of",
    "lock_invoice",
    "next_renewal_invoice",
    "open_invoices_of",
    "prepaid_next_period",
    "record_invoice_payment",
    "set_invoice_payment",
    "set_invoice_status",
    "settle_invoice",
    "update_invoice",
]

INVOICE_OPEN = "OPEN"
INVOICE_PAID = "PAID"
INVOICE_VOID = "VOID"

KIND_INITIAL = "initial"
KIND_RENEWAL = "renewal"
KIND_UPGRADE = "upgrade"


async def insert_invoice(
    tx: Tx,
    *,
    subscription_id: str,
    kind: str,
    period_start: datetime,
    period_end: datetime,
    plan_id: str,
    amount_minor: int,
    currency: str,
) -> SubscriptionInvoice:
    """One invoice; ``Conflict`` if this subscription already has one of this kind for this period."""
    values = dict(
        id=tx.ids.new("inv"),
        subscription_id=subscription_id,
        kind=kind,
        period_start=period_start,
        period_end=period_end,
        plan_id=plan_id,
        amount_minor=amount_minor,
        currency=currency,
        status=INVOICE_OPEN,
        payment_id=None,
        created_at=tx.now,
        paid_at=None,
    )
    try:
        async with tx.session.begin_nested():
            await tx.session.execute(sql_insert(SubscriptionInvoiceRow), values)
    except IntegrityError:
        raise Conflict(f"subscription {subscription_id} already has a {kind} invoice for the period from {iso(period_start)}") from None
    return to_invoice(SubscriptionInvoiceRow(**values))


# --- reads ------------------------------------------------------------------------------------------


async def get_invoice(tx: Tx, invoice_id: str) -> SubscriptionInvoice:
    row = await tx.session.get(SubscriptionInvoiceRow, invoice_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no invoice {invoice_id}")
    return to_invoice(row)


async def invoice_for_period(tx: Tx, sub_id: str, kind: str, period_start: datetime) -> SubscriptionInvoice | None:
    row = await tx.session.scalar(
        select(SubscriptionInvoiceRow).where(
            SubscriptionInvoiceRow.subscription_id == sub_id,
            SubscriptionInvoiceRow.kind == kind,
            SubscriptionInvoiceRow.period_start == period_start,
        )
    )
    return to_invoice(row) if row is not None else None


async def next_renewal_invoice(tx: Tx, sub: Subscription) -> SubscriptionInvoice | None:
    """The renewal invoice of the period after ``sub``'s current one (any status), if billed yet."""
    assert sub.current_period_end is not None
    return await invoice_for_period(tx, sub.id, KIND_RENEWAL, sub.current_period_end)


async def prepaid_next_period(tx: Tx, sub: Subscription) -> SubscriptionInvoice | None:
    """The next period's renewal invoice if it is PAID already (the next period is prepaid)."""
    inv = await next_renewal_invoice(tx, sub)
    return inv if inv is not None and inv.status == INVOICE_PAID else None


async def invoices_of(tx: Tx, sub_id: str) -> list[SubscriptionInvoice]:
    rows = (
        await tx.session.scalars(
            select(SubscriptionInvoiceRow)
            .where(SubscriptionInvoiceRow.subscription_id == sub_id)
            .order_by(SubscriptionInvoiceRow.created_at, SubscriptionInvoiceRow.id)
        )
    ).all()
    return [to_invoice(r) for r in rows]


@dataclass(frozen=True)
class OpenInvoice:
    """An OPEN invoice with the status and expiry of its current KHQR (None: none recorded)."""

    invoice: SubscriptionInvoice
    payment_status: str | None
    payment_expires_at: datetime | None

    def collecting(self, now: datetime) -> bool:
        """Its KHQR can still be paid, or was: wait for it rather than giving up on the invoice."""
        if self.payment_status == PaymentStatus.PAID.value:
            return True
        return self.payment_status == PaymentStatus.PENDING.value and (
            self.payment_expires_at is None or self.payment_expires_at > now
        )


async def open_invoices_of(tx: Tx, sub_ids: Collection[str], *, lock: bool = False) -> dict[str, list[OpenInvoice]]:
    """OPEN invoices of these subscriptions with their current KHQR's state, by subscription.
    ``lock`` takes their row locks on PostgreSQL (serialising with a concurrent settlement)."""
    out: dict[str, list[OpenInvoice]] = {}
    if not sub_ids:
        return out
    stmt = (
        select(SubscriptionInvoiceRow, PaymentRow.status, PaymentRow.expires_at)
        .outerjoin(PaymentRow, PaymentRow.id == SubscriptionInvoiceRow.payment_id)
        .where(
            SubscriptionInvoiceRow.subscription_id.in_(list(sub_ids)),
            SubscriptionInvoiceRow.status == INVOICE_OPEN,
        )
        .order_by(SubscriptionInvoiceRow.created_at, SubscriptionInvoiceRow.id)
    )
    if lock:
        stmt = stmt.with_for_update(of=SubscriptionInvoiceRow).execution_options(populate_existing=True)
    for inv_row, payment_status, expires_at in (await tx.session.execute(stmt)).all():
        out.setdefault(inv_row.subscription_id, []).append(OpenInvoice(to_invoice(inv_row), payment_status, expires_at))
    return out


async def lock_invoice(tx: Tx, invoice_id: str) -> SubscriptionInvoice:
    """Read an invoice holding its row lock (PostgreSQL; SQLite runs one writer at a time), so a
    decision taken on its status cannot race with the renewer settling it."""
    row = await tx.session.scalar(
        select(SubscriptionInvoiceRow)
        .where(SubscriptionInvoiceRow.id == invoice_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound(f"no invoice {invoice_id}")
    return to_invoice(row)


# --- changes ----------------------------------------------------------------------------------------


def _update(*where: Any, **values: Any) -> Update:
    """UPDATE the invoices matching ``where``; the session is not synchronised (rows are re-read
    with ``populate_existing`` where it matters)."""
    return (
        update(SubscriptionInvoiceRow)
        .where(*where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def _update_one(tx: Tx, *where: Any, **values: Any) -> SubscriptionInvoice | None:
    """The invoice as the UPDATE left it, or None when ``where`` matched nothing."""
    row = (await tx.session.execute(_update(*where, **values).returning(*SubscriptionInvoiceRow.__table__.c))).first()
    return to_invoice(row) if row is not None else None


def _still_on(previous: str | None) -> Any:
    """The invoice's current payment is still ``previous`` (None: none recorded yet)."""
    return SubscriptionInvoiceRow.payment_id.is_(None) if previous is None else SubscriptionInvoiceRow.payment_id == previous


async def set_invoice_payment(tx: Tx, invoice_id: str, payment_id: str, *, previous: str | None) -> bool:
    """Point an OPEN invoice at its (new) payment, if it still points at ``previous``."""
    result = await tx.session.execute(
        _update(
            SubscriptionInvoiceRow.id == invoice_id, SubscriptionInvoiceRow.status == INVOICE_OPEN, _still_on(previous),
            payment_id=payment_id,
        )  # fmt: skip
    )
    return result.rowcount == 1


async def record_invoice_payment(
    tx: Tx, invoice_id: str, payment_id: str, *, previous: str | None, amount_minor: int
) -> SubscriptionInvoice | None:
    """Point an OPEN invoice still at ``previous`` and priced ``amount_minor`` at its new payment,
    in one conditional UPDATE; the invoice as it is now, or None when a condition failed."""
    return await _update_one(
        tx,
        SubscriptionInvoiceRow.id == invoice_id,
        SubscriptionInvoiceRow.status == INVOICE_OPEN,
        SubscriptionInvoiceRow.amount_minor == amount_minor,
        _still_on(previous),
        payment_id=payment_id,
    )


async def settle_invoice(tx: Tx, invoice_id: str, *, payment_id: str, paid_at: datetime) -> SubscriptionInvoice | None:
    """OPEN -> PAID by ``payment_id`` in one conditional UPDATE; None if it was not OPEN any more."""
    return await _update_one(
        tx,
        SubscriptionInvoiceRow.id == invoice_id,
        SubscriptionInvoiceRow.status == INVOICE_OPEN,
        status=INVOICE_PAID,
        paid_at=paid_at,
        payment_id=payment_id,
    )


async def set_invoice_status(
    tx: Tx, invoice_id: str, *, expected: str, to: str, changes: dict[str, Any] | None = None
) -> bool:
    result = await tx.session.execute(
        _update(SubscriptionInvoiceRow.id == invoice_id, SubscriptionInvoiceRow.status == expected, status=to, **(changes or {}))
    )
    return result.rowcount == 1


async def update_invoice(tx: Tx, invoice_id: str, **changes: Any) -> None:
    await tx.session.execute(_update(SubscriptionInvoiceRow.id == invoice_id, **changes))
