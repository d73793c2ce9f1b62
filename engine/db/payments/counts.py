"""Counts and totals over payments: today's paid totals per currency, payments created in a
window (the poller's demand forecast, the opening hours' check), payments per status."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from engine.db.models import PaymentRow
from engine.db.storage import Tx
from engine.records import PaymentStatus

__all__ = [
    "count_by_status",
    "count_created_between",
    "count_created_since",
    "count_shop_payments_created_between",
    "today_totals",
]

async def today_totals(tx: Tx, since: datetime) -> dict[str, dict[str, int]]:
    """Per currency, the count and sum of payments paid since ``since`` (never summed across currencies)."""
    paid = [PaymentStatus.PAID.value, PaymentStatus.PAID_LATE.value]
    rows = (
        await tx.session.execute(
            select(PaymentRow.currency, func.count(), func.coalesce(func.sum(PaymentRow.amount_minor), 0))
            .where(PaymentRow.status.in_(paid), PaymentRow.paid_at >= since)
            .group_by(PaymentRow.currency)
        )
    ).all()
    return {cur: {"count": int(n), "amount_minor": int(total)} for cur, n, total in rows}


async def count_created_since(tx: Tx, since: datetime) -> int:
    """How many payments were created since ``since`` (the poller's demand forecast)."""
    return int(await tx.session.scalar(select(func.count()).where(PaymentRow.created_at >= since)) or 0)


async def count_created_between(tx: Tx, start: datetime, end: datetime) -> int:
    """How many payments were created in [start, end) (the same hours of an earlier day)."""
    if end <= start:
        return 0
    stmt = select(func.count()).where(PaymentRow.created_at >= start, PaymentRow.created_at < end)
    return int(await tx.session.scalar(stmt) or 0)


async def count_shop_payments_created_between(tx: Tx, start: datetime, end: datetime) -> int:
    """How many payments the shop made in [start, end): not a subscription's invoice, which the
    engine issues at any hour (checking payments made outside the opening hours)."""
    if end <= start:
        return 0
    stmt = select(func.count()).where(
        PaymentRow.created_at >= start, PaymentRow.created_at < end, PaymentRow.subscription_id.is_(None)
    )
    return int(await tx.session.scalar(stmt) or 0)


async def count_by_status(tx: Tx) -> dict[str, int]:
    rows = (await tx.session.execute(select(PaymentRow.status, func.count()).group_by(PaymentRow.status))).all()
    return {status: int(n) for status, n in rows}
