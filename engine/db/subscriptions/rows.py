"""Subscription rows in the database: create, change, status history, and the reads by user and page.

A subscription changes only through ``transition``: one conditional UPDATE (``WHERE status IN
expected`` plus any extra guard, such as "the period still ends where I think it does") that
also writes the status-history row (when the status changes), the audit row and the event, all
in the caller's transaction. When another process got there first the UPDATE matches nothing
and nothing else is written.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy import insert as sql_insert

from engine.db.journal import append_event, audit
from engine.db.models import SubscriptionRow, SubscriptionStatusHistoryRow
from engine.db.storage import Tx
from engine.db.subscriptions.conversions import subscription_event_data, to_subscription
from engine.errors import InvalidInput, NotFound
from engine.records import Actor, StatusChange, Subscription, SubscriptionStatus

__all__ = [
    "LIVE",
    "NO_PENDING",
    "SubscriptionFilter",
    "get",
    "history",
    "insert",
    "latest_for_user",
    "live_for_user",
    "lock_user",
    "search",
    "transition",
]

LIVE = (
    SubscriptionStatus.INCOMPLETE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
)

#: The changes that clear a pending plan change (and its invoice) from a subscription.
NO_PENDING: dict[str, Any] = dict(pending_change=None, pending_plan_id=None, pending_change_at=None, pending_invoice_id=None)

#: pg_advisory_xact_lock namespace for "one live subscription per user" ("subs" in ASCII).
_USER_LOCK_NAMESPACE = 0x73756273

_INSERT_HISTORY = sql_insert(SubscriptionStatusHistoryRow)


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
    sub = to_subscription(row)
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
    before = to_subscription(before_row)
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
    after = to_subscription(row)
    if to is not None and to is not before.status:
        await _add_history(tx, sub_id, before.status.value, to.value, reason, actor)
    before_data = await subscription_event_data(tx, before)
    data = await subscription_event_data(tx, after)
    await audit(tx, actor, action, "subscription", sub_id, before=before_data, after=data, reason=reason)
    main_event = [(event_type, event_extra or {})] if event_type is not None else []
    for etype, extra in [*main_event, *extra_events]:
        await append_event(
            tx, etype, "subscription", sub_id, {**data, "previous_status": before.status.value, "reason": reason, **extra}
        )
    return after


async def get(tx: Tx, sub_id: str) -> Subscription:
    row = await tx.session.get(SubscriptionRow, sub_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no subscription {sub_id}")
    return to_subscription(row)


async def live_for_user(tx: Tx, user_id: str) -> Subscription | None:
    """The user's one subscription that has not ended, if any."""
    return await _newest_for_user(tx, user_id, SubscriptionRow.status.in_([s.value for s in LIVE]))


async def latest_for_user(tx: Tx, user_id: str) -> Subscription | None:
    return await _newest_for_user(tx, user_id)


async def _newest_for_user(tx: Tx, user_id: str, *conds: Any) -> Subscription | None:
    row = await tx.session.scalar(
        select(SubscriptionRow)
        .where(SubscriptionRow.user_id == user_id, *conds)
        .order_by(SubscriptionRow.created_at.desc(), SubscriptionRow.id.desc())
        .limit(1)
    )
    return to_subscription(row) if row is not None else None


async def history(tx: Tx, sub_id: str) -> list[StatusChange]:
    rows = (
        await tx.session.scalars(
            select(SubscriptionStatusHistoryRow)
            .where(SubscriptionStatusHistoryRow.subscription_id == sub_id)
            .order_by(SubscriptionStatusHistoryRow.id)
        )
    ).all()
    return [StatusChange(r.id, r.subscription_id, r.from_status, r.to_status, r.reason, r.actor, r.at) for r in rows]


# --- the console's list -----------------------------------------------------------------------------


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
    page = [to_subscription(r) for r in rows[:limit]]
    nxt = _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return page, nxt
