"""Payments in the database: insert, conditional transitions, the poller's queries, search.

``transition`` is the only way a payment changes status: one conditional UPDATE
(``WHERE status IN expected``) plus its history row, audit row and event, all in the caller's
transaction. When another process got there first, the UPDATE matches nothing and nothing else
is written.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Integer, and_, bindparam, func, literal, or_, select, union_all, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.exc import IntegrityError

from engine import events as ev
from engine.db.journal import append_event, audit
from engine.db.models import PaymentRow, PaymentStatusHistoryRow
from engine.db.pointread import PointRead
from engine.db.storage import Storage, Tx
from engine.db.types import UTCDateTime
from engine.errors import Conflict, InvalidInput, NotFound
from engine.money import to_major
from engine.records import Actor, Payment, PaymentStatus, StatusChange

__all__ = [
    "PaymentFilter",
    "due_for_check",
    "expired_pending",
    "find_by_hash",
    "get",
    "get_by_idempotency_key",
    "get_by_md5",
    "get_many_by_md5",
    "history",
    "insert",
    "payment_event_data",
    "record_check",
    "request_check",
    "search",
    "set_schedule",
    "to_record",
    "today_totals",
    "transition",
]

_PAYER_CONTEXT = "payments.payer_account"
# Core statements on the tables: an ORM insert() of a mapped class takes SQLAlchemy's "ORM bulk
# insert" path, which cost more than the statement itself.
_PAYMENTS = PaymentRow.__table__
_INSERT_PAYMENT = sql_insert(_PAYMENTS)
_INSERT_HISTORY = sql_insert(PaymentStatusHistoryRow.__table__)
#: Every column None: what a freshly inserted payment holds where ``insert`` sets nothing.
_NO_COLUMNS = dict.fromkeys(_PAYMENTS.columns.keys())


def to_record(tx: Tx | Storage, row: Any) -> Payment:
    """A payment from an ORM row or a Core row (both expose the columns as attributes)."""
    payer = tx.cipher.decrypt(row.payer_account_enc, context=_PAYER_CONTEXT) if row.payer_account_enc else None
    return Payment(
        id=row.id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        status=PaymentStatus(row.status),
        khqr=row.khqr,
        md5=row.md5,
        receiving_account=row.receiving_account,
        created_at=row.created_at,
        expires_at=row.expires_at,
        reference=row.reference,
        idempotency_key=row.idempotency_key,
        bill_number=row.bill_number,
        description=row.description,
        customer_id=row.customer_id,
        paid_at=row.paid_at,
        next_check_at=row.next_check_at,
        check_requested_at=row.check_requested_at,
        late_watch_until=row.late_watch_until,
        check_count=row.check_count,
        last_checked_at=row.last_checked_at,
        last_check_result=row.last_check_result,
        bakong_hash=row.bakong_hash,
        payer_account=payer,
        # the payer's account is stored only encrypted: put back where Bakong's record had it
        bakong_record=_with_payer(row.bakong_record, payer),
        created_by_type=row.created_by_type,
        created_by=row.created_by,
        api_key_id=row.api_key_id,
        subscription_id=row.subscription_id,
        invoice_id=row.invoice_id,
        deep_link=row.deep_link,
        updated_at=row.updated_at,
        terminal=row.terminal,
        reconcile_status=row.reconcile_status,
        reconciled_at=row.reconciled_at,
    )


def _with_payer(record: dict[str, Any] | None, payer: str | None) -> dict[str, Any] | None:
    """Bakong's record as it answered: its ``fromAccountId`` is stored empty (the account is kept
    only encrypted, in ``payer_account_enc``) and filled again here."""
    if record and payer and "fromAccountId" in record and record["fromAccountId"] is None:
        return {**record, "fromAccountId": payer}
    return record


def payment_event_data(p: Payment) -> dict[str, Any]:
    """The payment as the main backend sees it in webhooks and the events feed."""

    def iso(dt: datetime | None) -> str | None:
        return dt.isoformat().replace("+00:00", "Z") if dt else None

    return {
        "id": p.id,
        "status": p.status.value,
        "amount": str(to_major(p.amount_minor, p.currency)),
        "amount_minor": p.amount_minor,
        "currency": p.currency,
        "md5": p.md5,
        "reference": p.reference,
        "bill_number": p.bill_number,
        "customer_id": p.customer_id,
        "description": p.description,
        "receiving_account": p.receiving_account,
        "bakong_hash": p.bakong_hash,
        "payer_account": p.payer_account,
        "subscription_id": p.subscription_id,
        "created_at": iso(p.created_at),
        "expires_at": iso(p.expires_at),
        "paid_at": iso(p.paid_at),
    }


async def insert(
    tx: Tx,
    *,
    actor: Actor,
    amount_minor: int,
    currency: str,
    khqr: str,
    md5: str,
    receiving_account: str,
    expires_at: datetime,
    next_check_at: datetime | None,
    status: PaymentStatus = PaymentStatus.PENDING,
    idempotency_scope: str = "",
    idempotency_key: str | None = None,
    request_fingerprint: str | None = None,
    reference: str | None = None,
    bill_number: str | None = None,
    description: str | None = None,
    customer_id: str | None = None,
    api_key_id: str | None = None,
    subscription_id: str | None = None,
    invoice_id: str | None = None,
    deep_link: str | None = None,
    terminal: str | None = None,
    payment_id: str | None = None,
    reason: str = "created",
) -> Payment:
    """Insert a new payment with its first history row, audit row and ``payment.created`` event."""
    values: dict[str, Any] = dict(
        id=payment_id or tx.ids.new("pay"),
        idempotency_scope=idempotency_scope,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
        reference=reference,
        amount_minor=amount_minor,
        currency=currency,
        khqr=khqr,
        md5=md5,
        receiving_account=receiving_account,
        bill_number=bill_number,
        description=description,
        customer_id=customer_id,
        status=status.value,
        created_at=tx.now,
        updated_at=tx.now,
        expires_at=expires_at,
        next_check_at=next_check_at,
        check_count=0,
        created_by_type=actor.type.value,
        created_by=actor.name,
        api_key_id=api_key_id,
        subscription_id=subscription_id,
        invoice_id=invoice_id,
        deep_link=deep_link,
        terminal=terminal,
    )
    # No savepoint: a duplicate is the first write of its transaction, which simply rolls back.
    try:
        await tx.execute(_INSERT_PAYMENT, values)
    except IntegrityError as exc:
        raise Conflict(f"a payment with this {_which_unique(exc)} already exists") from None
    await _add_history(tx, values["id"], None, status.value, reason, actor)
    payment = to_record(tx, SimpleNamespace(**{**_NO_COLUMNS, **values}))
    data = payment_event_data(payment)
    await audit(tx, actor, "payment.create", "payment", payment.id, after=data)
    await append_event(tx, ev.PAYMENT_EVENT_BY_STATUS[status], "payment", payment.id, data)
    return payment


async def _add_history(tx: Tx, payment_id: str, from_status: str | None, to_status: str, reason: str, actor: Actor) -> None:
    await tx.execute(
        _INSERT_HISTORY,
        dict(payment_id=payment_id, from_status=from_status, to_status=to_status, reason=reason, actor=str(actor), at=tx.now),
    )


def _which_unique(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "md5" in text:
        return "KHQR (md5)"
    if "idempotency" in text:
        return "idempotency key"
    return "key"


async def transition(
    tx: Tx,
    payment_id: str,
    *,
    expected: Collection[PaymentStatus],
    to: PaymentStatus,
    actor: Actor,
    reason: str,
    changes: dict[str, Any] | None = None,
    payer_account: str | None = None,
    event_type: str | None = None,
    action: str | None = None,
    event_extra: dict[str, Any] | None = None,
) -> Payment | None:
    """Move a payment from one of ``expected`` to ``to``; None if its status was not expected.

    ``changes`` sets other columns in the same UPDATE (paid_at, bakong_hash, next_check_at...).
    A Bakong hash already used by another payment raises ``Conflict`` and writes nothing.
    """
    before_row = await tx.session.get(PaymentRow, payment_id)
    if before_row is None:
        raise NotFound(f"no payment {payment_id}")
    before = payment_event_data(to_record(tx, before_row))
    values: dict[str, Any] = {"status": to.value, "updated_at": tx.now, **(changes or {})}
    if payer_account is not None:
        values["payer_account_enc"] = tx.cipher.encrypt(payer_account, context=_PAYER_CONTEXT)
    stmt = (
        update(PaymentRow)
        .where(PaymentRow.id == payment_id, PaymentRow.status.in_([s.value for s in expected]))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    try:
        async with tx.session.begin_nested():
            result = await tx.session.execute(stmt)
    except IntegrityError:
        raise Conflict(f"Bakong transaction {values.get('bakong_hash')} is already recorded on another payment") from None
    if result.rowcount != 1:
        return None
    await tx.session.refresh(before_row)
    payment = to_record(tx, before_row)
    await _add_history(tx, payment_id, before["status"], to.value, reason, actor)
    data = payment_event_data(payment)
    await audit(
        tx, actor, action or f"payment.{to.value.lower()}", "payment", payment_id, before=before, after=data, reason=reason
    )
    await append_event(
        tx,
        event_type or ev.PAYMENT_EVENT_BY_STATUS[to],
        "payment",
        payment_id,
        {**data, "previous_status": before["status"], "reason": reason, **(event_extra or {})},
    )
    return payment


# Core selects of the table's columns, built once: loading ORM entities (identity map, instance
# state) cost more than the query; ``_to_record`` reads a Core row the same way.
_BY_ID = select(_PAYMENTS).where(_PAYMENTS.c.id == bindparam("id"))
_BY_MD5 = select(_PAYMENTS).where(_PAYMENTS.c.md5 == bindparam("md5"))
_BY_KEY = select(_PAYMENTS).where(
    _PAYMENTS.c.idempotency_scope == bindparam("scope"), _PAYMENTS.c.idempotency_key == bindparam("key")
)


async def get(tx: Tx, payment_id: str) -> Payment:
    row = (await tx.session.execute(_BY_ID, {"id": payment_id})).first()
    if row is None:
        raise NotFound(f"no payment {payment_id}")
    return to_record(tx, row)


async def get_by_md5(tx: Tx, md5: str) -> Payment:
    row = (await tx.session.execute(_BY_MD5, {"md5": md5.lower()})).first()
    if row is None:
        raise NotFound(f"no payment with md5 {md5}")
    return to_record(tx, row)


async def read_by_md5(storage: Storage, md5: str) -> Payment:
    """``get_by_md5`` outside any transaction, as one ``PointRead`` (the API's status read)."""
    row = await PointRead.of(storage.db, _BY_MD5).one({"md5": md5.lower()})
    if row is None:
        raise NotFound(f"no payment with md5 {md5}")
    return to_record(storage, row)


async def get_many_by_md5(tx: Tx, md5s: Sequence[str]) -> dict[str, Payment]:
    if not md5s:
        return {}
    rows = (await tx.session.scalars(select(PaymentRow).where(PaymentRow.md5.in_([m.lower() for m in md5s])))).all()
    return {r.md5: to_record(tx, r) for r in rows}


async def get_by_idempotency_key(tx: Tx, scope: str, key: str) -> tuple[Payment, str | None] | None:
    """The payment created under this key, with the fingerprint of the request that created it."""
    row = (await tx.session.execute(_BY_KEY, {"scope": scope, "key": key})).first()
    if row is None:
        return None
    return to_record(tx, row), row.request_fingerprint


async def find_by_hash(tx: Tx, bakong_hash: str) -> Payment | None:
    row = await tx.session.scalar(select(PaymentRow).where(PaymentRow.bakong_hash == bakong_hash))
    return to_record(tx, row) if row else None


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


async def history(tx: Tx, payment_id: str) -> list[StatusChange]:
    rows = (
        await tx.session.scalars(
            select(PaymentStatusHistoryRow)
            .where(PaymentStatusHistoryRow.payment_id == payment_id)
            .order_by(PaymentStatusHistoryRow.id)
        )
    ).all()
    return [
        StatusChange(r.id, r.payment_id, r.from_status, r.to_status, r.reason, r.actor, r.at) for r in rows
    ]


@dataclass(frozen=True)
class PaymentFilter:
    """Search criteria; every field optional. ``text`` matches reference, md5 or Bakong hash."""

    statuses: tuple[PaymentStatus, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    reference: str | None = None
    md5: str | None = None
    bakong_hash: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    customer_id: str | None = None
    subscription_id: str | None = None
    text: str | None = None


def _encode_cursor(created_at: datetime, pid: str) -> str:
    raw = json.dumps([created_at.isoformat(), pid]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, pid = json.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("cursor time without a timezone")
        return when, str(pid)
    except (ValueError, TypeError):
        raise InvalidInput("invalid cursor", field="cursor") from None


async def search(
    tx: Tx, flt: PaymentFilter, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Payment], str | None]:
    """Newest first; returns a page and the cursor of the next page (None at the end)."""
    stmt = select(PaymentRow)
    conds = []
    if flt.statuses:
        conds.append(PaymentRow.status.in_([s.value for s in flt.statuses]))
    if flt.created_from:
        conds.append(PaymentRow.created_at >= flt.created_from)
    if flt.created_to:
        conds.append(PaymentRow.created_at < flt.created_to)
    if flt.reference:
        conds.append(PaymentRow.reference == flt.reference)
    if flt.md5:
        conds.append(PaymentRow.md5 == flt.md5.lower())
    if flt.bakong_hash:
        conds.append(PaymentRow.bakong_hash == flt.bakong_hash.lower())
    if flt.amount_minor is not None:
        conds.append(PaymentRow.amount_minor == flt.amount_minor)
    if flt.currency:
        conds.append(PaymentRow.currency == flt.currency)
    if flt.customer_id:
        conds.append(PaymentRow.customer_id == flt.customer_id)
    if flt.subscription_id:
        conds.append(PaymentRow.subscription_id == flt.subscription_id)
    if flt.text:
        needle = flt.text.strip()
        like = f"%{needle}%"
        conds.append(
            or_(
                PaymentRow.reference.ilike(like),
                PaymentRow.md5 == needle.lower(),
                PaymentRow.bakong_hash.ilike(f"{needle.lower()}%"),
                PaymentRow.id == needle,
                PaymentRow.bill_number == needle,
            )
        )
    if cursor:
        at, pid = _decode_cursor(cursor)
        conds.append(or_(PaymentRow.created_at < at, and_(PaymentRow.created_at == at, PaymentRow.id < pid)))
    if conds:
        stmt = stmt.where(*conds)
    rows = (
        await tx.session.scalars(stmt.order_by(PaymentRow.created_at.desc(), PaymentRow.id.desc()).limit(limit + 1))
    ).all()
    page = [to_record(tx, r) for r in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return page, next_cursor


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


#: For ``transition(changes=...)``: count the check that found the transfer.
ONE_MORE_CHECK = PaymentRow.check_count + 1


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


async def set_deep_link(tx: Tx, payment_id: str, deep_link: str) -> None:
    await tx.session.execute(
        update(PaymentRow).where(PaymentRow.id == payment_id).values(deep_link=deep_link).execution_options(synchronize_session=False)
    )


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
