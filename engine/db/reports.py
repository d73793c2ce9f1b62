"""The reports' reads: payments and Bakong requests grouped in SQL over a window of time.

Every query is a GROUP BY over an indexed range (``payments.created_at``, or ``terminal,
created_at`` for one counter; ``bakong_requests.reserved_at``), returning one row per group, never
one per payment. Time is grouped by the UTC hour (a cheap prefix of the stored text on SQLite,
``date_trunc`` on PostgreSQL); Asia/Phnom_Penh is UTC+7 all year, so UTC hours fold exactly into
local hours and days in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Integer, case, func, literal, select
from sqlalchemy.sql import ColumnElement, Select

from engine.clock import PHNOM_PENH
from engine.db.models import BakongRequestRow, PaymentRow
from engine.db.storage import Tx
from engine.report_records import OPEN_STATUSES, OpenItem

__all__ = [
    "GROUP_KEYS",
    "day_window",
    "known_terminals",
    "local_day",
    "median_seconds_to_paid",
    "open_items",
    "requests_by_hour",
    "status_totals",
    "terminal_exists",
    "totals_by",
]

PAID = "PAID"
#: What ``totals_by`` can group by besides the currency.
GROUP_KEYS = ("hour", "terminal", "cashier")


def day_window(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where the Asia/Phnom_Penh day ``day`` starts and ends (exclusive)."""
    start = datetime.combine(day, time(0), PHNOM_PENH).astimezone(UTC)
    return start, start + timedelta(days=1)


def local_day(instant: datetime) -> date:
    """The Asia/Phnom_Penh calendar day of an instant."""
    return instant.astimezone(PHNOM_PENH).date()


def _utc_hour(tx: Tx, column: Any) -> ColumnElement[Any]:
    if tx.db.is_sqlite:
        # stored as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC: the first 13 characters name the hour
        return func.substr(column, 1, 13)
    return func.date_trunc("hour", column)


def _hour_of(value: Any) -> datetime:
    """A UTC hour bucket as an aware datetime, from either database."""
    if isinstance(value, str):
        return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _in_window(stmt: Select[Any], start: datetime, end: datetime, terminal: str | None) -> Select[Any]:
    stmt = stmt.where(PaymentRow.created_at >= start, PaymentRow.created_at < end)
    if terminal is not None:
        stmt = stmt.where(PaymentRow.terminal == terminal)
    return stmt


_IS_PAID = PaymentRow.status == PAID
_PAID_COUNT = func.sum(case((_IS_PAID, 1), else_=0))
_PAID_MINOR = func.sum(case((_IS_PAID, PaymentRow.amount_minor), else_=0))


async def totals_by(
    tx: Tx, start: datetime, end: datetime, *, key: str | None, terminal: str | None = None
) -> list[tuple[Any, str, int, int, int]]:
    """(group, currency, payments, paid count, paid sum) for payments created in [start, end).

    ``key``: None (per currency only), "hour" (the UTC hour, an aware datetime), "terminal" (the
    terminal's name or None) or "cashier" ("type:name" of who created each payment)."""
    group: list[Any]
    if key is None:
        group = [literal(None)]
    elif key == "hour":
        group = [_utc_hour(tx, PaymentRow.created_at)]
    elif key == "terminal":
        # An expression, not the column: grouping by the column itself lets SQLite walk the whole
        # (terminal, created_at) index in terminal order instead of the window's range. Terminal
        # names are never empty, so "" stands for none.
        group = [func.coalesce(PaymentRow.terminal, "")]
    elif key == "cashier":
        group = [PaymentRow.created_by_type, PaymentRow.created_by]
    else:
        raise ValueError(f"unknown report group {key!r}")
    grouped = group if key is not None else []
    stmt = _in_window(
        select(*group, PaymentRow.currency, func.count(), _PAID_COUNT, _PAID_MINOR), start, end, terminal
    ).group_by(*grouped, PaymentRow.currency)
    out: list[tuple[Any, str, int, int, int]] = []
    for row in (await tx.session.execute(stmt)).all():
        *keys, currency, count, paid_count, paid_minor = row
        if key == "hour":
            label: Any = _hour_of(keys[0])
        elif key == "cashier":
            label = f"{keys[0]}:{keys[1]}"
        elif key == "terminal":
            label = keys[0] or None
        else:
            label = keys[0]
        out.append((label, currency, int(count), int(paid_count or 0), int(paid_minor or 0)))
    return out


async def status_totals(
    tx: Tx, start: datetime, end: datetime, *, terminal: str | None = None
) -> list[tuple[str, str, int, int]]:
    """(status, currency, count, sum) for payments created in [start, end)."""
    stmt = _in_window(
        select(PaymentRow.status, PaymentRow.currency, func.count(), func.coalesce(func.sum(PaymentRow.amount_minor), 0)),
        start, end, terminal,
    ).group_by(PaymentRow.status, PaymentRow.currency)  # fmt: skip
    return [(s, c, int(n), int(total)) for s, c, n, total in (await tx.session.execute(stmt)).all()]


def _seconds_between(tx: Tx, later: Any, earlier: Any) -> ColumnElement[Any]:
    if tx.db.is_sqlite:
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


async def median_seconds_to_paid(tx: Tx, start: datetime, end: datetime, *, terminal: str | None = None) -> float | None:
    """The median time from creation to paid of the PAID payments created in [start, end).

    The database sorts and picks the middle one or two: only those reach Python."""
    count_stmt = _in_window(select(func.count()).where(_IS_PAID, PaymentRow.paid_at.is_not(None)), start, end, terminal)
    n = int(await tx.session.scalar(count_stmt) or 0)
    if n == 0:
        return None
    seconds = _seconds_between(tx, PaymentRow.paid_at, PaymentRow.created_at)
    stmt = _in_window(select(seconds).where(_IS_PAID, PaymentRow.paid_at.is_not(None)), start, end, terminal)
    middle = (await tx.session.scalars(stmt.order_by(seconds).offset((n - 1) // 2).limit(2 - n % 2))).all()
    values = [float(v) for v in middle]
    return round(sum(values) / len(values), 3)


async def open_items(
    tx: Tx, start: datetime, end: datetime, *, terminal: str | None = None, limit: int = 50
) -> list[OpenItem]:
    """The oldest ``limit`` payments created in [start, end) still waiting for a decision."""
    stmt = _in_window(
        select(PaymentRow.id, PaymentRow.status, PaymentRow.currency, PaymentRow.amount_minor, PaymentRow.created_at)
        .where(PaymentRow.status.in_(OPEN_STATUSES)),
        start, end, terminal,
    ).order_by(PaymentRow.created_at, PaymentRow.id).limit(limit)  # fmt: skip
    return [OpenItem(pid, status, cur, int(amount), at) for pid, status, cur, amount, at in (await tx.session.execute(stmt)).all()]


async def requests_by_hour(tx: Tx, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """Bakong requests reserved in [start, end) per UTC hour (every token: the day's whole use)."""
    hour = _utc_hour(tx, BakongRequestRow.reserved_at)
    stmt = (
        select(hour, func.count())
        .where(BakongRequestRow.reserved_at >= start, BakongRequestRow.reserved_at < end)
        .group_by(hour)
    )
    return [(_hour_of(h), int(n)) for h, n in (await tx.session.execute(stmt)).all()]


async def terminal_exists(tx: Tx, name: str) -> bool:
    """Whether any payment was ever made at terminal ``name`` (one index probe)."""
    found = await tx.session.scalar(select(literal(1, Integer)).where(PaymentRow.terminal == name).limit(1))
    return found is not None


async def known_terminals(tx: Tx, *, limit: int = 20) -> Sequence[str]:
    """Terminal names payments were made at (for an error message naming the choices)."""
    stmt = select(PaymentRow.terminal).where(PaymentRow.terminal.is_not(None)).distinct().order_by(PaymentRow.terminal)
    return [t for t in (await tx.session.scalars(stmt.limit(limit))).all() if t]
