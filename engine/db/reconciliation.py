"""Reconciliation in the database: the paid payments still to re-check with Bakong, marking each
one reconciled or flagged, a day's counts, and the Bakong requests reconciliation spent.

Marking is one transaction: the payment's ``reconcile_status`` and ``reconciled_at``, an audit
row and, for a flag, a ``payment.reconciliation_failed`` event. The payment's status is not
touched: a flag is for a person to look at, the money's state stays as it was booked.
Reconciliation's requests are the request ledger's rows on the hash endpoints (the poller never
uses them), so its share of a day's budget is counted durably, by every process alike.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, update

from engine import events as ev
from engine.clock import PHNOM_PENH, utc
from engine.db.journal import append_event, audit
from engine.db.models import BakongRequestRow, PaymentRow
from engine.db.payments import to_record, payment_event_data
from engine.db.storage import Tx
from engine.records import Actor, DayReconciliation, Payment, PaymentStatus, ReconcileStatus

__all__ = [
    "PAID_STATUSES",
    "RECONCILE_ENDPOINTS",
    "count_day",
    "day_bounds",
    "flagged_on",
    "mark",
    "requests_on",
    "to_reconcile",
]

#: The statuses whose money is booked as received: what reconciliation re-checks.
PAID_STATUSES = (PaymentStatus.PAID.value, PaymentStatus.PAID_LATE.value)
#: The ledger's labels of the endpoints reconciliation uses (and nothing else does).
RECONCILE_ENDPOINTS = ("check_transaction_by_hash", "check_transaction_by_hash_list")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of a calendar day in Asia/Phnom_Penh."""
    start = datetime.combine(day, time(0), PHNOM_PENH)
    return utc(start), utc(start + timedelta(days=1))


async def to_reconcile(
    tx: Tx,
    *,
    paid_before: datetime,
    paid_from: datetime | None = None,
    limit: int,
    include_checked: bool = False,
) -> list[Payment]:
    """Paid payments with a Bakong hash, paid in [paid_from, paid_before), oldest paid first; only
    those not yet reconciled unless ``include_checked``."""
    stmt = select(PaymentRow).where(
        PaymentRow.status.in_(PAID_STATUSES),
        PaymentRow.bakong_hash.is_not(None),
        PaymentRow.paid_at < paid_before,
    )
    if paid_from is not None:
        stmt = stmt.where(PaymentRow.paid_at >= paid_from)
    if not include_checked:
        stmt = stmt.where(PaymentRow.reconcile_status.is_(None))
    rows = (await tx.session.scalars(stmt.order_by(PaymentRow.paid_at, PaymentRow.id).limit(limit))).all()
    return [to_record(tx, row) for row in rows]


async def mark(
    tx: Tx, payment: Payment, verdict: ReconcileStatus, *, actor: Actor, found: dict[str, Any]
) -> Payment | None:
    """Record what re-checking ``payment`` found (``found``: what Bakong answered, for the audit
    row and the event). None when the payment is no longer paid (an operator changed it)."""
    done = await tx.session.execute(
        update(PaymentRow)
        .where(PaymentRow.id == payment.id, PaymentRow.status.in_(PAID_STATUSES))
        .values(reconcile_status=verdict.value, reconciled_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        return None
    row = await tx.session.get(PaymentRow, payment.id, populate_existing=True)
    assert row is not None
    marked = to_record(tx, row)
    before = {"reconcile_status": payment.reconcile_status}
    after = {"reconcile_status": verdict.value, "found": found}
    await audit(tx, actor, "payment.reconcile", "payment", payment.id, before=before, after=after)
    if verdict.flagged:
        data = payment_event_data(marked)
        data.update(reconcile_status=verdict.value, reconciled_at=tx.now.isoformat().replace("+00:00", "Z"), found=found)
        await append_event(tx, ev.PAYMENT_RECONCILIATION_FAILED, "payment", payment.id, data)
    return marked


async def flagged_on(tx: Tx, day: date, *, limit: int) -> list[Payment]:
    """The day's flagged paid payments, oldest paid first."""
    start, end = day_bounds(day)
    stmt = (
        select(PaymentRow)
        .where(
            PaymentRow.status.in_(PAID_STATUSES), PaymentRow.paid_at >= start, PaymentRow.paid_at < end,
            PaymentRow.reconcile_status.is_not(None), PaymentRow.reconcile_status != ReconcileStatus.OK.value,
        )
        .order_by(PaymentRow.paid_at, PaymentRow.id)
        .limit(limit)
    )  # fmt: skip
    return [to_record(tx, row) for row in (await tx.session.scalars(stmt)).all()]


async def count_day(tx: Tx, day: date) -> DayReconciliation:
    """The day's paid payments (by ``paid_at``, Phnom Penh calendar day) by reconciliation result."""
    start, end = day_bounds(day)
    rows = (
        await tx.session.execute(
            select(PaymentRow.reconcile_status, func.count())
            .where(PaymentRow.status.in_(PAID_STATUSES), PaymentRow.paid_at >= start, PaymentRow.paid_at < end)
            .group_by(PaymentRow.reconcile_status)
        )
    ).all()
    by_status = {status: int(n) for status, n in rows}
    unchecked = by_status.pop(None, 0)
    reconciled = by_status.pop(ReconcileStatus.OK.value, 0)
    return DayReconciliation(
        day=day, paid=unchecked + reconciled + sum(by_status.values()), reconciled=reconciled,
        flagged=dict(sorted(by_status.items())), unchecked=unchecked,
    )  # fmt: skip


async def requests_on(tx: Tx, day: date) -> tuple[int, int]:
    """Bakong requests reserved on a Bakong day, every token: (all of them, reconciliation's)."""
    rows = (
        await tx.session.execute(
            select(BakongRequestRow.endpoint, func.count()).where(BakongRequestRow.day == day).group_by(BakongRequestRow.endpoint)
        )
    ).all()
    total = sum(int(n) for _, n in rows)
    ours = sum(int(n) for endpoint, n in rows if endpoint in RECONCILE_ENDPOINTS)
    return total, ours
