"""The renewer's batch reads and its one batch write, each a bounded read through an index.

What the renewer (``engine/workers/renewer.py``) works through on each pass: invoices to give a
KHQR or to settle, subscriptions to bill ahead of period end, whose period ended, or in a status
to expire or remind. Renewal invoices are inserted many at once with ``ON CONFLICT DO NOTHING``,
so two renewers never bill a period twice.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from engine.db.models import PaymentRow, SubscriptionInvoiceRow, SubscriptionRow
from engine.db.storage import Tx
from engine.db.subscriptions.conversions import to_invoice, to_subscription
from engine.db.subscriptions.invoices import INVOICE_OPEN, INVOICE_PAID, KIND_RENEWAL
from engine.records import PaymentStatus, Subscription, SubscriptionInvoice, SubscriptionStatus

__all__ = [
    "PaidInvoice",
    "due_for_renewal",
    "in_status",
    "insert_renewal_invoices",
    "paid_open_invoices",
    "periods_ended",
    "renewal_invoices_at",
    "unissued_invoices",
]

#: A subscription whose current period is running (and is billed ahead of its end).
_RUNNING = SubscriptionRow.status.in_([SubscriptionStatus.ACTIVE.value, SubscriptionStatus.TRIALING.value])


@dataclass(frozen=True)
class PaidInvoice:
    """An OPEN invoice and the PAID payment that settles it."""

    invoice: SubscriptionInvoice
    payment_id: str
    paid_at: datetime | None
    amount_minor: int


async def paid_open_invoices(tx: Tx, limit: int) -> list[PaidInvoice]:
    """OPEN invoices one of whose payments is PAID (any of them, not only the current one): the
    payments the renewer has not acted on yet. Reads the OPEN invoices through their index."""
    rows = (
        await tx.session.execute(
            select(SubscriptionInvoiceRow, PaymentRow.id, PaymentRow.paid_at, PaymentRow.amount_minor)
            .join(PaymentRow, PaymentRow.invoice_id == SubscriptionInvoiceRow.id)
            .where(SubscriptionInvoiceRow.status == INVOICE_OPEN, PaymentRow.status == PaymentStatus.PAID.value)
            .order_by(SubscriptionInvoiceRow.created_at, SubscriptionInvoiceRow.id)
            .limit(limit)
        )
    ).all()
    out: list[PaidInvoice] = []
    seen: set[str] = set()
    for inv_row, payment_id, paid_at, amount in rows:
        if inv_row.id not in seen:
            seen.add(inv_row.id)
            out.append(PaidInvoice(to_invoice(inv_row), payment_id, paid_at, amount))
    return out


async def unissued_invoices(tx: Tx, limit: int) -> list[tuple[SubscriptionInvoice, str | None]]:
    """OPEN invoices that need a (fresh) KHQR: none was recorded (a crash after the invoice was
    committed) or the current one was cancelled (the invoice was repriced or reopened)."""
    rows = (
        await tx.session.execute(
            select(SubscriptionInvoiceRow, PaymentRow.status)
            .outerjoin(PaymentRow, PaymentRow.id == SubscriptionInvoiceRow.payment_id)
            .where(
                SubscriptionInvoiceRow.status == INVOICE_OPEN,
                or_(SubscriptionInvoiceRow.payment_id.is_(None), PaymentRow.status == PaymentStatus.CANCELLED.value),
            )
            .order_by(SubscriptionInvoiceRow.created_at)
            .limit(limit)
        )
    ).all()
    return [(to_invoice(inv), status) for inv, status in rows]


async def insert_renewal_invoices(tx: Tx, rows: Sequence[dict[str, Any]]) -> list[SubscriptionInvoice]:
    """Renewal invoices for many subscriptions in one statement; those whose period already has
    one are skipped (``ON CONFLICT DO NOTHING``), so two renewers never bill a period twice."""
    if not rows:
        return []
    values = [
        dict(
            id=tx.ids.new("inv"),
            kind=KIND_RENEWAL,
            status=INVOICE_OPEN,
            payment_id=None,
            created_at=tx.now,
            paid_at=None,
            **r,
        )
        for r in rows
    ]
    dialect = postgresql if tx.db.is_postgres else sqlite
    stmt = (
        dialect.insert(SubscriptionInvoiceRow)
        .values(values)
        .on_conflict_do_nothing(index_elements=["subscription_id", "kind", "period_start"])
        .returning(SubscriptionInvoiceRow.id)
    )
    created = set((await tx.session.scalars(stmt)).all())
    return [to_invoice(SubscriptionInvoiceRow(**v)) for v in values if v["id"] in created]


async def _subscriptions(tx: Tx, stmt: Select[Any]) -> list[Subscription]:
    return [to_subscription(r) for r in (await tx.session.scalars(stmt)).all()]


async def due_for_renewal(tx: Tx, horizon: datetime, limit: int) -> list[Subscription]:
    """TRIALING/ACTIVE subscriptions whose period ends by ``horizon``, not cancelling, without a
    renewal invoice for the next period yet (range read of the (status, period end) index)."""
    inv = SubscriptionInvoiceRow
    # A scalar subquery with LIMIT is never flattened into a join: PostgreSQL probes the unique
    # (subscription, kind, period start) index once per candidate instead of choosing, on stale
    # statistics after a billing burst, an anti-join that compares every pair.
    next_invoice = (
        select(inv.id)
        .where(
            inv.subscription_id == SubscriptionRow.id,
            inv.kind == KIND_RENEWAL,
            inv.period_start == SubscriptionRow.current_period_end,
        )
        .limit(1)
        .correlate(SubscriptionRow)
        .scalar_subquery()
    )
    return await _subscriptions(
        tx,
        select(SubscriptionRow)
        .where(
            _RUNNING,
            SubscriptionRow.current_period_end <= horizon,
            SubscriptionRow.cancel_at_period_end.is_(False),
            next_invoice.is_(None),
        )
        .order_by(SubscriptionRow.current_period_end, SubscriptionRow.id)
        .limit(limit),
    )


async def periods_ended(tx: Tx, now: datetime, limit: int) -> list[Subscription]:
    return await _subscriptions(
        tx,
        select(SubscriptionRow)
        .where(_RUNNING, SubscriptionRow.current_period_end <= now)
        .order_by(SubscriptionRow.current_period_end)
        .limit(limit),
    )


async def in_status(tx: Tx, status: SubscriptionStatus, limit: int, *conds: Any) -> list[Subscription]:
    """Subscriptions in one status (a prefix read of the (status, period end) index) and ``conds``."""
    return await _subscriptions(
        tx,
        select(SubscriptionRow)
        .where(SubscriptionRow.status == status.value, *conds)
        .order_by(SubscriptionRow.current_period_end)
        .limit(limit),
    )


async def renewal_invoices_at(
    tx: Tx, keys: Collection[tuple[str, datetime]]
) -> dict[tuple[str, datetime], tuple[SubscriptionInvoice, str | None]]:
    """The OPEN and PAID renewal invoices for these (subscription id, period start) pairs with
    their current payment's status (unique-index lookups)."""
    out: dict[tuple[str, datetime], tuple[SubscriptionInvoice, str | None]] = {}
    if not keys:
        return out
    inv = SubscriptionInvoiceRow
    rows = (
        await tx.session.execute(
            select(inv, PaymentRow.status)
            .outerjoin(PaymentRow, PaymentRow.id == inv.payment_id)
            .where(
                tuple_(inv.subscription_id, inv.kind, inv.period_start).in_([(sid, KIND_RENEWAL, at) for sid, at in keys]),
                inv.status.in_([INVOICE_OPEN, INVOICE_PAID]),
            )
        )
    ).all()
    for inv_row, payment_status in rows:
        invoice = to_invoice(inv_row)
        out[(invoice.subscription_id, invoice.period_start)] = (invoice, payment_status)
    return out
