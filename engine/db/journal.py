"""The append-only logs: domain events (outbox + change feed) and the audit log.

Both are written inside the caller's transaction, beside the change they record. An event's
sequence follows commit order (see ``engine.db.storage``): on PostgreSQL an event is inserted with
a placeholder sequence and numbered inside COMMIT by a deferred trigger (migration 0011), so the
event-log lock is held by the server's commit alone, never across a round trip to us. Personal fields in both (the payer's account) are sealed at rest and
opened when read (``engine.db.sealing``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select

from engine.crypto import DataCipher
from engine.db.models import AuditLogRow, EventRow
from engine.db.sealing import seal, unseal
from engine.db.storage import Storage, Tx
from engine.records import Actor, AuditEntry, Event

__all__ = [
    "append_event",
    "audit",
    "committed_events",
    "event_from_row",
    "events_since",
    "last_sequence",
    "list_audit",
]


# Built once: constructing statements per call costs more than executing them on SQLite. Core
# statements on the tables: an ORM insert() of a mapped class takes the slower "ORM bulk" path.
_EVENTS = EventRow.__table__
_INSERT_EVENT = insert(_EVENTS).returning(_EVENTS.c.sequence)
_INSERT_AUDIT = insert(AuditLogRow.__table__)
_EVENT_COLUMNS = ("id", "type", "subject_type", "subject_id", "payload", "occurred_at")
# PostgreSQL: an event inserted with a placeholder sequence (negative), renumbered at COMMIT by the
# deferred trigger of migration 0011, which takes the event-log lock inside the commit.
_INSERT_EVENT_AT_COMMIT = insert(_EVENTS).values(sequence=-func.nextval("events_pending_seq"))
_COMMITTED_EVENTS = select(EventRow).where(EventRow.id.in_(bindparam("ids", expanding=True))).order_by(EventRow.sequence)


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

    On SQLite and in a transaction opened with ``sequence_at_start`` it gets its sequence now and
    is returned (and kept in ``tx.events``). Otherwise (PostgreSQL) it is inserted now with a
    placeholder, numbered inside COMMIT, and None is returned: read it, sequence and all, with
    ``committed_events`` once the transaction has committed."""
    if not tx.may_append:
        raise RuntimeError("an event was appended in a transaction opened without the event-log lock (events=False)")
    event_id = tx.ids.new("msg")
    params = dict(
        id=event_id, type=type_, subject_type=subject_type, subject_id=subject_id,
        payload=seal(tx.cipher, payload), occurred_at=tx.now,
    )  # fmt: skip
    tx.appended.append(event_id)
    if tx.numbered_at_commit:
        await tx.execute(_INSERT_EVENT_AT_COMMIT, params)
        return None
    returned = await tx.execute(_INSERT_EVENT, params)
    assert returned is not None
    event = Event(int(returned.sequence), event_id, type_, subject_type, subject_id, payload, tx.now)
    tx.events.append(event)
    return event


async def committed_events(storage: Storage, tx: Tx) -> list[Event]:
    """The events ``tx`` appended, as committed (with their sequences), in order; after its commit.

    Known already on SQLite and with ``sequence_at_start``; on PostgreSQL read back (one query)."""
    if len(tx.events) == len(tx.appended):
        return list(tx.events)
    async with storage.lookup() as read:
        rows = (await read.session.scalars(_COMMITTED_EVENTS, {"ids": list(tx.appended)})).all()
    return [event_from_row(row, storage.cipher) for row in rows]


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
