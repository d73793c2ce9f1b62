"""Closed days in the database: writing a close once, reading closes, and finding the changes made
to closed days' payments after their close (the adjustments).

An adjustment is a status-history row that moved a payment into or out of PAID after the day the
payment was created on was closed. The history table is append-only, so adjustments are read
from it rather than copied: a closed day's row in ``day_closes`` is never updated.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from engine.db.models import DayCloseRow, PaymentRow, PaymentStatusHistoryRow
from engine.db.reports import day_window, local_day
from engine.db.storage import Tx
from engine.errors import Conflict
from engine.report_records import Adjustment, CurrencyTotal, DayClose, GroupTotal, OpenItem, StatusTotal

__all__ = ["adjustments_after", "adjustments_landing", "close_of", "closes_of", "insert_close"]

PAID = "PAID"
_TOUCHES_PAID = or_(PaymentStatusHistoryRow.to_status == PAID, PaymentStatusHistoryRow.from_status == PAID)


def _adjustment_json(a: Adjustment) -> dict[str, Any]:
    return {
        "payment_id": a.payment_id, "currency": a.currency, "amount_minor": a.amount_minor, "from_status": a.from_status,
        "to_status": a.to_status, "at": a.at.isoformat(), "actor": a.actor, "payment_day": a.payment_day.isoformat(),
        "landed_on": a.landed_on.isoformat(),
    }  # fmt: skip


def _adjustment_of(d: dict[str, Any]) -> Adjustment:
    return Adjustment(
        payment_id=d["payment_id"], currency=d["currency"], amount_minor=int(d["amount_minor"]), from_status=d["from_status"],
        to_status=d["to_status"], at=datetime.fromisoformat(d["at"]), actor=d["actor"],
        payment_day=date.fromisoformat(d["payment_day"]), landed_on=date.fromisoformat(d["landed_on"]),
    )  # fmt: skip


def _to_close(row: DayCloseRow) -> DayClose:
    return DayClose(
        day=row.day,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        forced=row.forced,
        reason=row.reason,
        totals=tuple(CurrencyTotal(**t) for t in row.totals),
        terminals=tuple(GroupTotal(**g) for g in row.terminals),
        statuses=tuple(StatusTotal(**s) for s in row.statuses),
        open_items=tuple(
            OpenItem(o["payment_id"], o["status"], o["currency"], int(o["amount_minor"]), datetime.fromisoformat(o["created_at"]))
            for o in row.open_items
        ),
        adjustments=tuple(_adjustment_of(a) for a in row.adjustments),
    )


def close_json(c: DayClose) -> dict[str, Any]:
    """A close as JSON-ready data: the row's columns and the ``day.closed`` event's payload."""
    return {
        "day": c.day.isoformat(),
        "closed_at": c.closed_at.isoformat(),
        "closed_by": c.closed_by,
        "forced": c.forced,
        "reason": c.reason,
        "totals": [vars(t) for t in c.totals],
        "terminals": [vars(g) for g in c.terminals],
        "statuses": [vars(s) for s in c.statuses],
        "open_items": [
            {"payment_id": o.payment_id, "status": o.status, "currency": o.currency, "amount_minor": o.amount_minor, "created_at": o.created_at.isoformat()}
            for o in c.open_items
        ],
        "adjustments": [_adjustment_json(a) for a in c.adjustments],
    }


async def insert_close(tx: Tx, close: DayClose) -> None:
    """Write a close; a day closed before is a Conflict naming when and by whom."""
    data = close_json(close)
    starts_at, ends_at = day_window(close.day)
    existing = await close_of(tx, close.day)
    if existing is not None:
        raise Conflict(f"{close.day.isoformat()} was already closed at {existing.closed_at.isoformat()} by {existing.closed_by}")
    tx.session.add(
        DayCloseRow(
            day=close.day, starts_at=starts_at, ends_at=ends_at, closed_at=close.closed_at, closed_by=close.closed_by,
            forced=close.forced, reason=close.reason, totals=data["totals"], terminals=data["terminals"],
            statuses=data["statuses"], open_items=data["open_items"], adjustments=data["adjustments"],
        )
    )  # fmt: skip
    try:
        await tx.session.flush()
    except IntegrityError:
        raise Conflict(f"{close.day.isoformat()} was closed meanwhile by another process") from None


async def close_of(tx: Tx, day: date) -> DayClose | None:
    row = await tx.session.get(DayCloseRow, day)
    return _to_close(row) if row is not None else None


async def closes_of(tx: Tx, days: Iterable[date]) -> dict[date, DayClose]:
    wanted = sorted(set(days))
    if not wanted:
        return {}
    rows = (await tx.session.scalars(select(DayCloseRow).where(DayCloseRow.day.in_(wanted)))).all()
    return {r.day: _to_close(r) for r in rows}


async def _landed_on(tx: Tx, instants: Iterable[datetime]) -> dict[datetime, date]:
    """Where a change made at each instant lands: its own day, or the next one when its own day
    had been closed before the change."""
    days = {at: local_day(at) for at in instants}
    closes = await closes_of(tx, days.values())
    out = {}
    for at, d in days.items():
        close = closes.get(d)
        out[at] = d + timedelta(days=1) if close is not None and close.closed_at < at else d
    return out


def _adjustments(rows: list[Any], landed: dict[datetime, date]) -> tuple[Adjustment, ...]:
    out = []
    for pid, currency, amount, created_at, from_status, to_status, at, actor in rows:
        sign = 1 if to_status == PAID else -1
        out.append(Adjustment(pid, currency, sign * int(amount), from_status, to_status, at, actor, local_day(created_at), landed[at]))
    return tuple(out)


_ADJUSTMENT_COLUMNS = (
    PaymentRow.id, PaymentRow.currency, PaymentRow.amount_minor, PaymentRow.created_at, PaymentStatusHistoryRow.from_status,
    PaymentStatusHistoryRow.to_status, PaymentStatusHistoryRow.at, PaymentStatusHistoryRow.actor,
)  # fmt: skip


async def adjustments_landing(tx: Tx, day: date) -> tuple[Adjustment, ...]:
    """The changes to closed days' payments that land on ``day``: made after their own day's
    close, during ``day`` (or after the day before was closed early, before ``day`` began), and
    not after ``day``'s own close."""
    start, end = day_window(day)
    at = PaymentStatusHistoryRow.at
    closes = await closes_of(tx, [day - timedelta(days=1), day])
    before, own = closes.get(day - timedelta(days=1)), closes.get(day)
    after_start = at > before.closed_at if before is not None and before.closed_at < start else at >= start
    before_end = at <= own.closed_at if own is not None and own.closed_at < end else at < end
    stmt = (
        select(*_ADJUSTMENT_COLUMNS)
        .join(PaymentRow, PaymentRow.id == PaymentStatusHistoryRow.payment_id)
        .join(DayCloseRow, and_(PaymentRow.created_at >= DayCloseRow.starts_at, PaymentRow.created_at < DayCloseRow.ends_at))
        .where(after_start, before_end, _TOUCHES_PAID)
        .where(PaymentStatusHistoryRow.at > DayCloseRow.closed_at)
        .order_by(PaymentStatusHistoryRow.at, PaymentStatusHistoryRow.id)
    )
    rows = list((await tx.session.execute(stmt)).all())
    return _adjustments(rows, {r[6]: day for r in rows})


async def adjustments_after(tx: Tx, close: DayClose) -> tuple[Adjustment, ...]:
    """The changes to ``close.day``'s payments made after it was closed, and where each landed."""
    start, end = day_window(close.day)
    stmt = (
        select(*_ADJUSTMENT_COLUMNS)
        .join(PaymentRow, PaymentRow.id == PaymentStatusHistoryRow.payment_id)
        .where(PaymentRow.created_at >= start, PaymentRow.created_at < end)
        .where(PaymentStatusHistoryRow.at > close.closed_at, _TOUCHES_PAID)
        .order_by(PaymentStatusHistoryRow.at, PaymentStatusHistoryRow.id)
    )
    rows = list((await tx.session.execute(stmt)).all())
    return _adjustments(rows, await _landed_on(tx, [r[6] for r in rows]))
