"""The poller's and the expirer's queue: which payments to check now, when the next one is due,
the bookkeeping of checks that changed nothing, "the customer says paid" requests, and what has
expired or finished its late watch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, func, literal, or_, select, union_all, update

from engine.db.models import PaymentRow
from engine.db.payments.conversions import to_record
from engine.db.storage import Tx
from engine.db.types import UTCDateTime
from engine.records import Payment, PaymentStatus

__all__ = [
    "count_scheduled",
    "due_for_check",
    "expired_pending",
    "late_watch_finished",
    "next_due_at",
    "record_check",
    "record_checks",
    "request_check",
    "set_schedule",
    "soonest_expiry",
]

_PAYMENTS = PaymentRow.__table__


def _build_due_query() -> Any:
    """Two index-ordered subqueries (requested, due) glued with UNION ALL: one round trip.

    Built once with bind parameters; building it per call costs more than running it.
    """
    t = _PAYMENTS
    limit = bindparam("limit", type_=Integer)
    requested = (
        select(t, literal(0).label("_rank"), t.c.check_requested_at.label("_key"))
        .where(t.c.check_requested_at.is_not(None), t.c.next_check_at.is_not(None))
        .order_by(t.c.check_requested_at)
        .limit(limit)
        .subquery()
    )
    due = (
        select(t, literal(1).label("_rank"), t.c.next_check_at.label("_key"))
        .where(t.c.next_check_at <= bindparam("now", type_=UTCDateTime()))
        .order_by(t.c.next_check_at)
        .limit(limit)
        .subquery()
    )
    both = union_all(select(requested), select(due)).subquery()
    return select(both).order_by(both.c._rank, both.c._key)


_DUE_QUERY = _build_due_query()


async def due_for_check(tx: Tx, now: datetime, limit: int) -> list[Payment]:
    """Payments to ask Bakong about now: "customer says paid" requests first, then by due time."""
    rows = (await tx.session.execute(_DUE_QUERY, {"now": now, "limit": limit})).all()
    out: list[Payment] = []
    seen: set[str] = set()
    for row in rows:
        if row.id not in seen:
            seen.add(row.id)
            out.append(to_record(tx, row))
            if len(out) == limit:
                break
    return out


async def next_due_at(tx: Tx) -> datetime | None:
    """The earliest scheduled check (lets the poller sleep exactly until then)."""
    return await tx.session.scalar(select(func.min(PaymentRow.next_check_at)))


async def count_scheduled(tx: Tx) -> int:
    return int(await tx.session.scalar(select(func.count()).where(PaymentRow.next_check_at.is_not(None))) or 0)


async def record_check(
    tx: Tx, payment_id: str, *, result: str, next_check_at: datetime | None, clear_request: bool = True
) -> None:
    """Bookkeeping of one check that did not change the status (not audited: it is not a change)."""
    values: dict[str, Any] = {
        "check_count": PaymentRow.check_count + 1,
        "last_checked_at": tx.now,
        "last_check_result": result[:64],
        "next_check_at": next_check_at,
        "updated_at": tx.now,
    }
    if clear_request:
        values["check_requested_at"] = None
    await tx.session.execute(
        update(PaymentRow).where(PaymentRow.id == payment_id).values(**values).execution_options(synchronize_session=False)
    )


async def set_schedule(tx: Tx, payment_id: str, *, next_check_at: datetime | None) -> None:
    await tx.session.execute(
        update(PaymentRow)
        .where(PaymentRow.id == payment_id)
        .values(next_check_at=next_check_at)
        .execution_options(synchronize_session=False)
    )


async def request_check(tx: Tx, payment_id: str) -> bool:
    """Mark "the customer says paid": the poller checks it ahead of the schedule. False if not tracked."""
    result = await tx.session.execute(
        update(PaymentRow)
        .where(PaymentRow.id == payment_id, PaymentRow.next_check_at.is_not(None))
        .values(check_requested_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def expired_pending(tx: Tx, now: datetime, limit: int) -> list[Payment]:
    rows = (
        await tx.session.scalars(
            select(PaymentRow)
            .where(PaymentRow.status == PaymentStatus.PENDING.value, PaymentRow.expires_at <= now)
            .order_by(PaymentRow.expires_at)
            .limit(limit)
        )
    ).all()
    return [to_record(tx, r) for r in rows]


async def late_watch_finished(tx: Tx, now: datetime, limit: int) -> list[str]:
    """Timed-out or cancelled payments whose watch has ended but are still scheduled."""
    rows = (
        await tx.session.scalars(
            select(PaymentRow.id)
            .where(
                PaymentRow.status.in_([PaymentStatus.TIMEOUT.value, PaymentStatus.CANCELLED.value]),
                PaymentRow.next_check_at.is_not(None),
                or_(PaymentRow.late_watch_until.is_(None), PaymentRow.late_watch_until <= now),
            )
            .limit(limit)
        )
    ).all()
    return list(rows)


async def soonest_expiry(tx: Tx) -> datetime | None:
    """When the next PENDING payment times out (lets the expirer sleep until then)."""
    return await tx.session.scalar(
        select(func.min(PaymentRow.expires_at)).where(PaymentRow.status == PaymentStatus.PENDING.value)
    )


# A Core statement: executed with many parameter sets it is a plain executemany (an ORM update()
# with a list of parameters would be SQLAlchemy's "bulk UPDATE by primary key" instead).
_RECORD_CHECKS = (
    update(_PAYMENTS)
    .where(_PAYMENTS.c.id == bindparam("pid"), _PAYMENTS.c.status == bindparam("expected_status"))
    .values(
        check_count=_PAYMENTS.c.check_count + 1,
        last_checked_at=bindparam("now", type_=UTCDateTime()),
        last_check_result=bindparam("result"),
        next_check_at=bindparam("next_at", type_=UTCDateTime()),
        check_requested_at=None,
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
)


async def record_checks(tx: Tx, checks: Sequence[tuple[Payment, str, datetime | None]]) -> None:
    """``record_check`` for many payments in one statement (executemany): (payment, result, next).

    Guarded by the status each was loaded with, so a payment that changed meanwhile is not
    rescheduled."""
    if not checks:
        return
    await tx.session.execute(
        _RECORD_CHECKS,
        [
            {"pid": p.id, "expected_status": p.status.value, "now": tx.now, "result": result[:64], "next_at": nxt}
            # rows locked in id order: two writers of many payments cannot deadlock on PostgreSQL
            for p, result, nxt in sorted(checks, key=lambda check: check[0].id)
        ],
    )
