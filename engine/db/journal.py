"""The append-only logs: domain events (outbox + change feed) and the audit log.

Both are written inside the caller's transaction, beside the change they record. An event's
sequence follows commit order (see ``engine.db.storage``): on PostgreSQL the transaction's events
are written by ``write_pending_events`` just before it commits, the first of them by one statement
that takes the event-log lock and inserts (``_INSERT_EVENT_LOCKED``), so the lock is held from
there to the COMMIT only. Personal fields in both (the payer's account) are sealed at rest and
opened when read (``engine.db.sealing``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, cast, func, insert, select

from engine.db.database import EVENT_LOG_LOCK
from engine.crypto import DataCipher
from engine.db.models import AuditLogRow, EventRow
from engine.db.sealing import seal, unseal
from engine.db.storage import Tx
from engine.records import Actor, AuditEntry, Event

__all__ = [
    "append_event",
    "audit",
    "event_from_row",
    "events_since",
    "last_sequence",
    "list_audit",
    "write_pending_events",
]


# Built once: constructing statements per call costs more than executing them on SQLite. Core
# statements on the tables: an ORM insert() of a mapped class takes the slower "ORM bulk" path.
_EVENTS = EventRow.__table__
_INSERT_EVENT = insert(_EVENTS).returning(_EVENTS.c.sequence)
_INSERT_AUDIT = insert(AuditLogRow.__table__)
_EVENT_COLUMNS = ("id", "type", "subject_type", "subject_id", "payload", "occurred_at")
# PostgreSQL: the lock and the first event in one statement (one round trip fewer under the lock).
# A CTE calling a volatile function is never inlined, and the SELECT yields its row only after it.
_EVENT_LOG_LOCK = select(func.pg_advisory_xact_lock(cast(EVENT_LOG_LOCK, BigInteger)).label("locked")).cte("event_log_lock")
_INSERT_EVENT_LOCKED = (
    insert(_EVENTS)
    .from_select(
        list(_EVENT_COLUMNS),
        select(*[cast(bindparam(name, type_=_EVENTS.c[name].type), _EVENTS.c[name].type) for name in _EVENT_COLUMNS]).select_from(
            _EVENT_LOG_LOCK
        ),
    )
    .returning(_EVENTS.c.sequence)
)


def event_from_row(row: EventRow, cipher: DataCipher) -> Event:
    """The event as written, its sealed fields opened (see ``engine.db.sealing``)."""
    return Event(
        sequence=row.sequence,
        id=row.id,
        type=row.type,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        payload=unseal(cipher, dict(row.payload)),
        occurred_at=row.occurred_at,
    )


async def append_event(tx: Tx, type_: str, subject_type: str, subject_id: str, payload: dict[str, Any]) -> Event | None:
    """Append one event; its sequence is assigned in commit order.

    Written now, and returned, on SQLite and in a transaction opened with ``sequence_at_start``;
    otherwise (PostgreSQL) written when the transaction commits, and None is returned (the
    committed event, sequence and all, is in ``tx.events`` then)."""
    if not tx.may_append:
        raise RuntimeError("an event was appended in a transaction opened without the event-log lock (events=False)")
    event_id = tx.ids.new("msg")
    params = dict(
        id=event_id, type=type_, subject_type=subject_type, subject_id=subject_id,
        payload=seal(tx.cipher, payload), occurred_at=tx.now,
    )  # fmt: skip
    if tx.pending_events is not None:
        tx.pending_events.append(params)
        return None
    returned = await tx.execute(_INSERT_EVENT, params)
    assert returned is not None
    event = Event(int(returned.sequence), event_id, type_, subject_type, subject_id, payload, tx.now)
    tx.events.append(event)
    return event


async def write_pending_events(tx: Tx) -> None:
    """PostgreSQL, just before COMMIT: take the event-log lock and write the transaction's events
    in the order they were appended (the first with the lock in one statement)."""
    pending, tx.pending_events = tx.pending_events or [], None
    for index, params in enumerate(pending):
        returned = await tx.execute(_INSERT_EVENT_LOCKED if index == 0 else _INSERT_EVENT, params)
        assert returned is not None
        tx.events.append(
            Event(
                int(returned.sequence), params["id"], params["type"], params["subject_type"],
                params["subject_id"], unseal(tx.cipher, params["payload"]), params["occurred_at"],
            )
        )  # fmt: skip


async def audit(
    tx: Tx,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    await tx.execute(
        _INSERT_AUDIT,
        dict(
            at=tx.now,
            actor_type=actor.type.value,
            actor=actor.name,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            before=seal(tx.cipher, before),
            after=seal(tx.cipher, after),
            reason=reason,
            source_ip=actor.source_ip,
        ),
    )


async def events_since(tx: Tx, sequence: int, *, limit: int = 500, types: list[str] | None = None) -> list[Event]:
    stmt = select(EventRow).where(EventRow.sequence > sequence)
    if types:
        stmt = stmt.where(EventRow.type.in_(types))
    rows = (await tx.session.scalars(stmt.order_by(EventRow.sequence).limit(limit))).all()
    return [event_from_row(r, tx.cipher) for r in rows]


async def last_sequence(tx: Tx) -> int:
    return int((await tx.session.scalar(select(func.max(EventRow.sequence)))) or 0)


async def list_audit(
    tx: Tx,
    *,
    limit: int = 200,
    before_id: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    subject_id: str | None = None,
    since: datetime | None = None,
) -> list[AuditEntry]:
    """Newest first, optionally filtered; page with ``before_id``."""
    stmt = select(AuditLogRow)
    if before_id is not None:
        stmt = stmt.where(AuditLogRow.id < before_id)
    if action:
        stmt = stmt.where(AuditLogRow.action == action)
    if actor:
        stmt = stmt.where(AuditLogRow.actor == actor)
    if subject_id:
        stmt = stmt.where(AuditLogRow.subject_id == subject_id)
    if since:
        stmt = stmt.where(AuditLogRow.at >= since)
    rows = (await tx.session.scalars(stmt.order_by(AuditLogRow.id.desc()).limit(limit))).all()
    return [
        AuditEntry(
            id=r.id, at=r.at, actor_type=r.actor_type, actor=r.actor, action=r.action,
            subject_type=r.subject_type, subject_id=r.subject_id,
            before=unseal(tx.cipher, r.before), after=unseal(tx.cipher, r.after),
            reason=r.reason, source_ip=r.source_ip,
        )
        for r in rows
    ]
