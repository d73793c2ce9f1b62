"""Plans, subscriptions and subscription invoices in the database.

Subscriptions change only through ``transition``: one conditional UPDATE (``WHERE status IN
expected`` plus any extra guard, such as "the period still ends where I think it does") that
also writes the status-history row (when the status changes), the audit row and the event, all
in the caller's transaction. When another process got there first the UPDATE matches nothing
and nothing else is written.

Invoices are unique on ``(subscription_id, kind, period_start)``: a second renewal invoice for
the same period cannot exist, which is what makes the renewer idempotent. An invoice is OPEN until
one of its payments is PAID (then PAID) or it is no longer wanted (VOID).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text, tuple_, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from engine.db.journal import append_event, audit
from engine.db.models import (
    PaymentRow,
    PlanRow,
    SubscriptionInvoiceRow,
    SubscriptionRow,
    SubscriptionStatusHistoryRow,
)
from engine.db.storage import Tx
from engine.errors import Conflict, InvalidInput, NotFound
from engine.money import to_major
from engine.records import (
    Actor,
    PaymentStatus,
    Plan,
    StatusChange,
    Subscription,
    SubscriptionInvoice,
    SubscriptionStatus,
)

__all__ = [
    "INVOICE_OPEN",
    "INVOICE_PAID",
    "INVOICE_VOID",
    "KIND_INITIAL",
    "KIND_RENEWAL",
    "KIND_UPGRADE",
    "SubscriptionFilter",
    "archive_plan",
    "get",
    "get_invoice",
    "get_plan",
    "get_plan_by_code",
    "history",
    "insert",
    "insert_invoice",
    "insert_plan",
    "insert_renewal_invoices",
    "invoice_event_data",
    "invoices_of",
    "list_plans",
    "live_for_user",
    "lock_user",
    "open_invoices_of",
    "paid_open_invoices",
    "plans_by_id",
    "search",
    "subscription_event_data",
    "transition",
    "unissued_invoices",
    "update_plan",
]

INVOICE_OPEN = "OPEN"
INVOICE_PAID = "PAID"
INVOICE_VOID = "VOID"

KIND_INITIAL = "initial"
KIND_RENEWAL = "renewal"
KIND_UPGRADE = "upgrade"

LIVE = (
    SubscriptionStatus.INCOMPLETE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
)

#: pg_advisory_xact_lock namespace for "one live subscription per user" ("subs" in ASCII).
_USER_LOCK_NAMESPACE = 0x73756273

_INSERT_HISTORY = sql_insert(SubscriptionStatusHistoryRow)

#: Plan ids to codes. Codes never change and ids are random, so one process-wide map is safe.
_PLAN_CODES: dict[str, str] = {}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


# --- conversions ------------------------------------------------------------------------------------


def _plan(row: Any) -> Plan:
    _PLAN_CODES[row.id] = row.code
    return Plan(
        id=row.id,
        code=row.code,
        name=row.name,
        price_minor=row.price_minor,
        currency=row.currency,
        cycle_days=row.cycle_days,
        trial_days=row.trial_days,
        created_at=row.created_at,
        archived_at=row.archived_at,
    )


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        user_id=row.user_id,
        plan_id=row.plan_id,
        status=SubscriptionStatus(row.status),
        price_minor=row.price_minor,
        currency=row.currency,
        cycle_days=row.cycle_days,
        created_at=row.created_at,
        current_period_start=row.current_period_start,
        current_period_end=row.current_period_end,
        trial_end=row.trial_end,
        pending_plan_id=row.pending_plan_id,
        pending_change=row.pending_change,
        pending_change_at=row.pending_change_at,
        pending_invoice_id=row.pending_invoice_id,
        cancel_at_period_end=bool(row.cancel_at_period_end),
        cancelled_at=row.cancelled_at,
        cancel_reason=row.cancel_reason,
        grace_until=row.grace_until,
        last_reminder_at=row.last_reminder_at,
        incomplete_until=row.incomplete_until,
        updated_at=row.updated_at,
    )


def _invoice(row: Any) -> SubscriptionInvoice:
    return SubscriptionInvoice(
        id=row.id,
        subscription_id=row.subscription_id,
        kind=row.kind,
        period_start=row.period_start,
        period_end=row.period_end,
        plan_id=row.plan_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        status=row.status,
        payment_id=row.payment_id,
        created_at=row.created_at,
        paid_at=row.paid_at,
    )


async def plan_code(tx: Tx, plan_id: str | None) -> str | None:
    if plan_id is None:
        return None
    code = _PLAN_CODES.get(plan_id)
    if code is None:
        code = await tx.session.scalar(select(PlanRow.code).where(PlanRow.id == plan_id))
        if code is None:
            raise NotFound(f"no plan {plan_id}")
        _PLAN_CODES[plan_id] = code
    return code


def plan_event_data(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "code": plan.code,
        "name": plan.name,
        "price": str(to_major(plan.price_minor, plan.currency)),
        "price_minor": plan.price_minor,
        "currency": plan.currency,
        "cycle_days": plan.cycle_days,
        "trial_days": plan.trial_days,
        "archived_at": _iso(plan.archived_at),
    }


async def subscription_event_data(tx: Tx, s: Subscription) -> dict[str, Any]:
    """The subscription as the main backend sees it in webhooks and the events feed."""
    return {
        "id": s.id,
        "user_id": s.user_id,
        "status": s.status.value,
        "plan": await plan_code(tx, s.plan_id),
        "plan_id": s.plan_id,
        "price": str(to_major(s.price_minor, s.currency)),
        "price_minor": s.price_minor,
        "currency": s.currency,
        "cycle_days": s.cycle_days,
        "current_period_start": _iso(s.current_period_start),
        "current_period_end": _iso(s.current_period_end),
        "trial_end": _iso(s.trial_end),
        "pending_change": s.pending_change,
        "pending_plan": await plan_code(tx, s.pending_plan_id),
        "pending_change_at": _iso(s.pending_change_at),
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancelled_at": _iso(s.cancelled_at),
        "cancel_reason": s.cancel_reason,
        "grace_until": _iso(s.grace_until),
        "created_at": _iso(s.created_at),
    }


def invoice_event_data(inv: SubscriptionInvoice, payment: Payment | None = None) -> dict[str, Any]:
    """An invoice and (when issued) the KHQR that pays it: what the backend shows the customer."""
    data: dict[str, Any] = {
        "id": inv.id,
        "kind": inv.kind,
        "status": inv.status,
        "amount": str(to_major(inv.amount_minor, inv.currency)),
        "amount_minor": inv.amount_minor,
        "currency": inv.currency,
        "plan_id": inv.plan_id,
        "period_start": _iso(inv.period_start),
        "period_end": _iso(inv.period_end),
        "paid_at": _iso(inv.paid_at),
        "payment_id": inv.payment_id,
        "payment": None,
    }
    if payment is not None:
        data["payment"] = {
            "id": payment.id,
            "status": payment.status.value,
            "khqr": payment.khqr,
            "md5": payment.md5,
            "deep_link": payment.deep_link,
            "expires_at": _iso(payment.expires_at),
        }
    return data


# --- plans ------------------------------------------------------------------------------------------


async def insert_plan(
    tx: Tx, *, actor: Actor, code: str, name: str, price_minor: int, currency: str, cycle_days: int, trial_days: int
) -> Plan:
    values = dict(
        id=tx.ids.new("plan"),
        code=code,
        name=name,
        price_minor=price_minor,
        currency=currency,
        cycle_days=cycle_days,
        trial_days=trial_days,
        created_at=tx.now,
        updated_at=tx.now,
        archived_at=None,
    )
    try:
        async with tx.session.begin_nested():
            await tx.session.execute(sql_insert(PlanRow), values)
    except IntegrityError:
        raise Conflict(f"a plan with code {code!r} already exists") from None
    plan = _plan(PlanRow(**values))
    await audit(tx, actor, "plan.create", "plan", plan.id, after=plan_event_data(plan))
    return plan


async def get_plan(tx: Tx, plan_id: str) -> Plan:
    row = await tx.session.get(PlanRow, plan_id)
    if row is None:
        raise NotFound(f"no plan {plan_id}")
    return _plan(row)


async def get_plan_by_code(tx: Tx, code: str) -> Plan:
    row = await tx.session.scalar(select(PlanRow).where(PlanRow.code == code))
    if row is None:
        raise NotFound(f"no plan with code {code!r}")
    return _plan(row)


async def plans_by_id(tx: Tx, ids: Iterable[str | None]) -> dict[str, Plan]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = (await tx.session.scalars(select(PlanRow).where(PlanRow.id.in_(wanted)))).all()
    return {r.id: _plan(r) for r in rows}


async def list_plans(tx: Tx, *, include_archived: bool = False) -> list[Plan]:
    stmt = select(PlanRow)
    if not include_archived:
        stmt = stmt.where(PlanRow.archived_at.is_(None))
    rows = (await tx.session.scalars(stmt.order_by(PlanRow.currency, PlanRow.price_minor, PlanRow.code))).all()
    return [_plan(r) for r in rows]


async def update_plan(tx: Tx, code: str, *, actor: Actor, changes: dict[str, Any], action: str = "plan.update") -> Plan:
    """Change a plan's name, price, cycle or trial (future subscriptions and renewals only)."""
    before = await get_plan_by_code(tx, code)
    await tx.session.execute(
        update(PlanRow)
        .where(PlanRow.id == before.id)
        .values(**changes, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    row = await tx.session.get(PlanRow, before.id, populate_existing=True)
    after = _plan(row)
    await audit(tx, actor, action, "plan", after.id, before=plan_event_data(before), after=plan_event_data(after))
    return after


async def archive_plan(tx: Tx, code: str, *, actor: Actor) -> Plan:
    plan = await get_plan_by_code(tx, code)
    if plan.archived_at is not None:
        return plan
    return await update_plan(tx, code, actor=actor, changes={"archived_at": tx.now}, action="plan.archive")


# --- subscriptions ----------------------------------------------------------------------------------


async def lock_user(tx: Tx, user_id: str) -> None:
    """Serialise "does this user have a live subscription? then create one" per user.

    SQLite already runs one writer at a time (BEGIN IMMEDIATE); PostgreSQL takes a transaction-level
    advisory lock on the user id."""
    if tx.db.is_postgres:
        await tx.session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, hashtext(:user_id))"),
            {"ns": _USER_LOCK_NAMESPACE, "user_id": user_id},
        )


async def insert(tx: Tx, *, actor: Actor, values: dict[str, Any], event_type: str, reason: str) -> Subscription:
    """A new subscription with its first history row, audit row and event."""
    row_values = dict(
        id=values.pop("id", None) or tx.ids.new("sub"),
        created_at=tx.now,
        updated_at=tx.now,
        cancel_at_period_end=False,
        **values,
    )
    row = SubscriptionRow(**row_values)
    tx.session.add(row)
    await tx.session.flush()
    sub = _subscription(row)
    await _add_history(tx, sub.id, None, sub.status.value, reason, actor)
    data = await subscription_event_data(tx, sub)
    await audit(tx, actor, "subscription.create", "subscription", sub.id, after=data, reason=reason)
    await append_event(tx, event_type, "subscription", sub.id, {**data, "reason": reason})
    return sub


async def _add_history(tx: Tx, sub_id: str, from_status: str | None, to_status: str, reason: str, actor: Actor) -> None:
    await tx.execute(
        _INSERT_HISTORY,
        dict(subscription_id=sub_id, from_status=from_status, to_status=to_status, reason=reason, actor=str(actor), at=tx.now),
    )


async def transition(
    tx: Tx,
    sub_id: str,
    *,
    expected: Collection[SubscriptionStatus],
    to: SubscriptionStatus | None,
    actor: Actor,
    reason: str,
    event_type: str | None,
    action: str,
    changes: dict[str, Any] | None = None,
    guard: Sequence[Any] = (),
    event_extra: dict[str, Any] | None = None,
    extra_events: Sequence[tuple[str, dict[str, Any]]] = (),
) -> Subscription | None:
    """Change a subscription if its status is one of ``expected`` (and every ``guard`` holds).

    ``to=None`` keeps the status (a scheduled change, a period roll): no history row then, but the
    audit row and the event are written all the same. Returns None when nothing matched.
    ``extra_events`` are further (type, extra data) events of the same change, each carrying the
    subscription's data too (e.g. ``downgraded`` beside ``renewed`` when a period starts).
    """
    before_row = await tx.session.get(SubscriptionRow, sub_id, populate_existing=True)
    if before_row is None:
        raise NotFound(f"no subscription {sub_id}")
    before = _subscription(before_row)
    if before.status not in expected:
        return None
    values: dict[str, Any] = {"updated_at": tx.now, **(changes or {})}
    if to is not None:
        values["status"] = to.value
    stmt = (
        update(SubscriptionRow)
        .where(SubscriptionRow.id == sub_id, SubscriptionRow.status.in_([s.value for s in expected]), *guard)
        .values(**values)
        .returning(*SubscriptionRow.__table__.c)
        .execution_options(synchronize_session=False)
    )
    row = (await tx.session.execute(stmt)).first()
    if row is None:
        return None
    after = _subscription(row)
    if to is not None and to is not before.status:
        await _add_history(tx, sub_id, before.status.value, to.value, reason, actor)
    before_data = await subscription_event_data(tx, before)
    data = await subscription_event_data(tx, after)
    await audit(tx, actor, action, "subscription", sub_id, before=before_data, after=data, reason=reason)
    if event_type is not None:
        await append_event(
            tx,
            event_type,
            "subscription",
            sub_id,
            {**data, "previous_status": before.status.value, "reason": reason, **(event_extra or {})},
        )
    for extra_type, extra in extra_events:
        await append_event(
            tx, extra_type, "subscription", sub_id, {**data, "previous_status": before.status.value, "reason": reason, **extra}
        )
    return after


async def get(tx: Tx, sub_id: str) -> Subscription:
    row = await tx.session.get(SubscriptionRow, sub_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no subscription {sub_id}")
    return _subscription(row)


async def live_for_user(tx: Tx, user_id: str) -> Subscription | None:
    """The user's one subscription that has not ended, if any."""
    row = await tx.session.scalar(
        select(SubscriptionRow)
        .where(SubscriptionRow.user_id == user_id, SubscriptionRow.status.in_([s.value for s in LIVE]))
        .order_by(SubscriptionRow.created_at.desc(), SubscriptionRow.id.desc())
        .limit(1)
    )
    return _subscription(row) if row is not None else None


async def latest_for_user(tx: Tx, user_id: str) -> Subscription | None:
    row = await tx.session.scalar(
        select(SubscriptionRow)
        .where(SubscriptionRow.user_id == user_id)
        .order_by(SubscriptionRow.created_at.desc(), SubscriptionRow.id.desc())
        .limit(1)
    )
    return _subscription(row) if row is not None else None


async def history(tx: Tx, sub_id: str) -> list[StatusChange]:
    rows = (
        await tx.session.scalars(
            select(SubscriptionStatusHistoryRow)
            .where(SubscriptionStatusHistoryRow.subscription_id == sub_id)
            .order_by(SubscriptionStatusHistoryRow.id)
        )
    ).all()
    return [StatusChange(r.id, r.subscription_id, r.from_status, r.to_status, r.reason, r.actor, r.at) for r in rows]


@dataclass(frozen=True)
class SubscriptionFilter:
    """Criteria of the console's list; every field optional."""

    statuses: tuple[SubscriptionStatus, ...] = ()
    plan_id: str | None = None
    period_end_before: datetime | None = None
    user_id: str | None = None


def _encode_cursor(created_at: datetime, sid: str) -> str:
    raw = json.dumps([created_at.isoformat(), sid]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, sid = json.loads(raw)
        return datetime.fromisoformat(at), str(sid)
    except (ValueError, TypeError):
        raise InvalidInput("invalid cursor", field="cursor") from None


async def search(
    tx: Tx, flt: SubscriptionFilter, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Subscription], str | None]:
    """Newest first; a page and the cursor of the next one (None at the end)."""
    conds: list[Any] = []
    if flt.statuses:
        conds.append(SubscriptionRow.status.in_([s.value for s in flt.statuses]))
    if flt.plan_id:
        conds.append(SubscriptionRow.plan_id == flt.plan_id)
    if flt.period_end_before is not None:
        conds.append(SubscriptionRow.current_period_end < flt.period_end_before)
    if flt.user_id:
        conds.append(SubscriptionRow.user_id == flt.user_id)
    if cursor:
        at, sid = _decode_cursor(cursor)
        conds.append(or_(SubscriptionRow.created_at < at, and_(SubscriptionRow.created_at == at, SubscriptionRow.id < sid)))
    stmt = select(SubscriptionRow).where(*conds) if conds else select(SubscriptionRow)
    rows = (
        await tx.session.scalars(
            stmt.order_by(SubscriptionRow.created_at.desc(), SubscriptionRow.id.desc()).limit(limit + 1)
        )
    ).all()
    page = [_subscription(r) for r in rows[:limit]]
    nxt = _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return page, nxt


# --- invoices ---------------------------------------------------------------------------------------


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
        raise Conflict(f"subscription {subscription_id} already has a {kind} invoice for the period from {_iso(period_start)}") from None
    return _invoice(SubscriptionInvoiceRow(**values))


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
    return [_invoice(SubscriptionInvoiceRow(**v)) for v in values if v["id"] in created]


async def get_invoice(tx: Tx, invoice_id: str) -> SubscriptionInvoice:
    row = await tx.session.get(SubscriptionInvoiceRow, invoice_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no invoice {invoice_id}")
    return _invoice(row)


async def invoice_for_period(tx: Tx, sub_id: str, kind: str, period_start: datetime) -> SubscriptionInvoice | None:
    row = await tx.session.scalar(
        select(SubscriptionInvoiceRow).where(
            SubscriptionInvoiceRow.subscription_id == sub_id,
            SubscriptionInvoiceRow.kind == kind,
            SubscriptionInvoiceRow.period_start == period_start,
        )
    )
    return _invoice(row) if row is not None else None


async def invoices_of(tx: Tx, sub_id: str) -> list[SubscriptionInvoice]:
    rows = (
        await tx.session.scalars(
            select(SubscriptionInvoiceRow)
            .where(SubscriptionInvoiceRow.subscription_id == sub_id)
            .order_by(SubscriptionInvoiceRow.created_at, SubscriptionInvoiceRow.id)
        )
    ).all()
    return [_invoice(r) for r in rows]


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
        out.setdefault(inv_row.subscription_id, []).append(OpenInvoice(_invoice(inv_row), payment_status, expires_at))
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
    return _invoice(row)


async def set_invoice_payment(tx: Tx, invoice_id: str, payment_id: str, *, previous: str | None) -> bool:
    """Point an OPEN invoice at its (new) payment, if it still points at ``previous``."""
    cond = SubscriptionInvoiceRow.payment_id.is_(None) if previous is None else SubscriptionInvoiceRow.payment_id == previous
    result = await tx.session.execute(
        update(SubscriptionInvoiceRow)
        .where(SubscriptionInvoiceRow.id == invoice_id, SubscriptionInvoiceRow.status == INVOICE_OPEN, cond)
        .values(payment_id=payment_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def record_invoice_payment(
    tx: Tx, invoice_id: str, payment_id: str, *, previous: str | None, amount_minor: int
) -> SubscriptionInvoice | None:
    """Point an OPEN invoice still at ``previous`` and priced ``amount_minor`` at its new payment,
    in one conditional UPDATE; the invoice as it is now, or None when a condition failed."""
    cond = SubscriptionInvoiceRow.payment_id.is_(None) if previous is None else SubscriptionInvoiceRow.payment_id == previous
    row = (
        await tx.session.execute(
            update(SubscriptionInvoiceRow)
            .where(
                SubscriptionInvoiceRow.id == invoice_id,
                SubscriptionInvoiceRow.status == INVOICE_OPEN,
                SubscriptionInvoiceRow.amount_minor == amount_minor,
                cond,
            )
            .values(payment_id=payment_id)
            .returning(*SubscriptionInvoiceRow.__table__.c)
            .execution_options(synchronize_session=False)
        )
    ).first()
    return _invoice(row) if row is not None else None


async def settle_invoice(tx: Tx, invoice_id: str, *, payment_id: str, paid_at: datetime) -> SubscriptionInvoice | None:
    """OPEN -> PAID by ``payment_id`` in one conditional UPDATE; None if it was not OPEN any more."""
    row = (
        await tx.session.execute(
            update(SubscriptionInvoiceRow)
            .where(SubscriptionInvoiceRow.id == invoice_id, SubscriptionInvoiceRow.status == INVOICE_OPEN)
            .values(status=INVOICE_PAID, paid_at=paid_at, payment_id=payment_id)
            .returning(*SubscriptionInvoiceRow.__table__.c)
            .execution_options(synchronize_session=False)
        )
    ).first()
    return _invoice(row) if row is not None else None


async def set_invoice_status(
    tx: Tx, invoice_id: str, *, expected: str, to: str, changes: dict[str, Any] | None = None
) -> bool:
    result = await tx.session.execute(
        update(SubscriptionInvoiceRow)
        .where(SubscriptionInvoiceRow.id == invoice_id, SubscriptionInvoiceRow.status == expected)
        .values(status=to, **(changes or {}))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def update_invoice(tx: Tx, invoice_id: str, **changes: Any) -> None:
    await tx.session.execute(
        update(SubscriptionInvoiceRow)
        .where(SubscriptionInvoiceRow.id == invoice_id)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )


# --- the renewer's queries --------------------------------------------------------------------------


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
            out.append(PaidInvoice(_invoice(inv_row), payment_id, paid_at, amount))
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
    return [(_invoice(inv), status) for inv, status in rows]


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
    rows = (
        await tx.session.scalars(
            select(SubscriptionRow)
            .where(
                SubscriptionRow.status.in_([SubscriptionStatus.ACTIVE.value, SubscriptionStatus.TRIALING.value]),
                SubscriptionRow.current_period_end <= horizon,
                SubscriptionRow.cancel_at_period_end.is_(False),
                next_invoice.is_(None),
            )
            .order_by(SubscriptionRow.current_period_end, SubscriptionRow.id)
            .limit(limit)
        )
    ).all()
    return [_subscription(r) for r in rows]


async def periods_ended(tx: Tx, now: datetime, limit: int) -> list[Subscription]:
    rows = (
        await tx.session.scalars(
            select(SubscriptionRow)
            .where(
                SubscriptionRow.status.in_([SubscriptionStatus.ACTIVE.value, SubscriptionStatus.TRIALING.value]),
                SubscriptionRow.current_period_end <= now,
            )
            .order_by(SubscriptionRow.current_period_end)
            .limit(limit)
        )
    ).all()
    return [_subscription(r) for r in rows]


async def in_status(tx: Tx, status: SubscriptionStatus, limit: int, *conds: Any) -> list[Subscription]:
    """Subscriptions in one status (a prefix read of the (status, period end) index) and ``conds``."""
    rows = (
        await tx.session.scalars(
            select(SubscriptionRow)
            .where(SubscriptionRow.status == status.value, *conds)
            .order_by(SubscriptionRow.current_period_end)
            .limit(limit)
        )
    ).all()
    return [_subscription(r) for r in rows]


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
        invoice = _invoice(inv_row)
        out[(invoice.subscription_id, invoice.period_start)] = (invoice, payment_status)
    return out
