"""The delivery queue: fanning events out to endpoints, and claiming the deliveries that are due.

Claiming is how a delivery in flight survives a crash: ``claim_due`` pushes ``next_attempt_at``
forward by the in-flight window before anything is sent, so if the process dies before it
records the answer the delivery simply becomes due again. Per endpoint and subject (one payment,
one subscription) deliveries go out in event order: a later event waits while an earlier one for
the same subject is still PENDING. What happens after the send is ``attempts``'s part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, exists, func, literal, select, update
from sqlalchemy import insert as sql_insert

from engine import events as ev
from engine.db.journal import append_event
from engine.db.models import EventRow, WebhookDeliveryRow, WebhookEndpointRow
from engine.db.storage import Tx
from engine.db.types import UTCDateTime
from engine.db.webhooks.endpoints import endpoint_row, signing_secrets
from engine.db.webhooks.tables import PENDING, insert_deliveries_once, pending_delivery
from engine.errors import InvalidTransition
from engine.records import Event, WebhookEndpoint
from engine.webhooks.message import OutgoingMessage

__all__ = [
    "ClaimedDelivery",
    "claim",
    "claim_due",
    "create_test_delivery",
    "due_candidates",
    "fan_out",
    "next_due_at",
    "release",
    "wants",
]

_d = WebhookDeliveryRow.__table__
_e = EventRow.__table__
_p = WebhookEndpointRow.__table__


def wants(endpoint: WebhookEndpoint, event: Event) -> bool:
    """Does this endpoint get this event? Test messages go only where they were sent."""
    if event.type == ev.WEBHOOK_TEST:
        return False
    return endpoint.accepts(event.type) and event.occurred_at >= endpoint.created_at


async def fan_out(tx: Tx, events: Sequence[Event], endpoints: Sequence[WebhookEndpoint]) -> int:
    """One PENDING delivery per (event, endpoint that wants it), due at once; duplicates are ignored."""
    rows = [
        pending_delivery(tx, event.sequence, endpoint.id, due=tx.now)
        for event in events
        for endpoint in endpoints
        if wants(endpoint, event)
    ]
    if rows:
        await tx.session.execute(insert_deliveries_once(tx), rows)
    return len(rows)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A due delivery this process has claimed: everything needed to send it."""

    delivery_id: str
    endpoint_id: str
    url: str
    attempt_count: int
    event_sequence: int
    event_id: str
    event_type: str
    occurred_at: datetime
    payload: dict[str, Any]
    secrets: tuple[str, ...]

    def message(self, body: bytes) -> OutgoingMessage:
        """What the sender sends for this claim: ``body`` is this event's encoded body."""
        return OutgoingMessage(
            delivery_id=self.delivery_id, endpoint_id=self.endpoint_id, url=self.url, msg_id=self.event_id,
            body=body, secrets=self.secrets, attempt=self.attempt_count + 1,
        )  # fmt: skip


def _build_due_query() -> Any:
    d2 = _d.alias("d2")
    e2 = _e.alias("e2")
    earlier_pending = (
        select(literal(1))
        .select_from(e2.join(d2, d2.c.event_sequence == e2.c.sequence))
        .where(
            e2.c.subject_type == _e.c.subject_type,
            e2.c.subject_id == _e.c.subject_id,
            e2.c.sequence < _e.c.sequence,
            d2.c.endpoint_id == _d.c.endpoint_id,
            d2.c.status == PENDING,
        )
        .correlate(_d, _e)
    )
    return (
        select(
            _d.c.id, _d.c.endpoint_id, _d.c.attempt_count, _d.c.event_sequence,
            _e.c.id.label("event_id"), _e.c.type, _e.c.payload, _e.c.occurred_at,
            _p.c.url, _p.c.secret_enc, _p.c.previous_secret_enc, _p.c.previous_secret_expires_at,
        )  # fmt: skip
        .select_from(_d.join(_e, _e.c.sequence == _d.c.event_sequence).join(_p, _p.c.id == _d.c.endpoint_id))
        .where(
            _d.c.status == PENDING,
            _d.c.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
            _p.c.enabled.is_(True),
            _d.c.endpoint_id.not_in(bindparam("busy", expanding=True)),
            ~exists(earlier_pending),
        )
        # by due time alone: the index order; a tie-break would sort every delivery due at once
        .order_by(_d.c.next_attempt_at)
        .limit(bindparam("limit", type_=Integer))
    )


_DUE_QUERY = _build_due_query()


async def due_candidates(
    tx: Tx, *, limit: int, per_endpoint: int | None = None, held: Mapping[str, int] | None = None
) -> list[Any]:
    """Up to ``limit`` due deliveries, oldest due first, each the earliest PENDING one of its
    subject for its endpoint. ``per_endpoint`` caps one endpoint's share, counting the ``held``
    ones the caller already has. Read-only: ``claim`` takes them."""
    if limit <= 0:
        return []
    held = held or {}
    full = [e for e, n in held.items() if per_endpoint is not None and n >= per_endpoint]
    fetch = limit if per_endpoint is None else limit * 4
    rows = (await tx.session.execute(_DUE_QUERY, {"now": tx.now, "busy": full, "limit": fetch})).all()
    chosen = []
    taken = dict(held)
    for row in rows:
        if per_endpoint is not None and taken.get(row.endpoint_id, 0) >= per_endpoint:
            continue
        taken[row.endpoint_id] = taken.get(row.endpoint_id, 0) + 1
        chosen.append(row)
        if len(chosen) == limit:
            break
    return chosen


async def claim(tx: Tx, candidates: Sequence[Any], *, in_flight: timedelta) -> list[ClaimedDelivery]:
    """Claim the candidates still due by moving them ``in_flight`` ahead; returns those claimed.

    The UPDATE is conditional (still PENDING, still due), so a candidate replayed, disabled or
    claimed in between is skipped.
    """
    if not candidates:
        return []
    claimed_ids = set(
        (
            await tx.session.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.id.in_([r.id for r in candidates]),
                    WebhookDeliveryRow.status == PENDING,
                    WebhookDeliveryRow.next_attempt_at <= tx.now,
                )
                .values(next_attempt_at=tx.now + in_flight)
                .returning(WebhookDeliveryRow.id)
                .execution_options(synchronize_session=False)
            )
        ).scalars()
    )
    secrets_cache: dict[tuple[str, str | None, datetime | None], tuple[str, ...]] = {}
    out = []
    for r in candidates:
        if r.id not in claimed_ids:
            continue
        key = (r.secret_enc, r.previous_secret_enc, r.previous_secret_expires_at)
        if key not in secrets_cache:
            secrets_cache[key] = signing_secrets(tx, *key, tx.now)
        out.append(
            ClaimedDelivery(
                delivery_id=r.id, endpoint_id=r.endpoint_id, url=r.url, attempt_count=r.attempt_count,
                event_sequence=r.event_sequence, event_id=r.event_id, event_type=r.type,
                occurred_at=r.occurred_at, payload=dict(r.payload), secrets=secrets_cache[key],
            )  # fmt: skip
        )
    return out


async def release(tx: Tx, delivery_ids: Sequence[str]) -> None:
    """Give back claimed deliveries that were not sent: due again at once."""
    if delivery_ids:
        await tx.session.execute(
            update(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.id.in_(list(delivery_ids)), WebhookDeliveryRow.status == PENDING)
            .values(next_attempt_at=tx.now)
            .execution_options(synchronize_session=False)
        )


async def claim_due(
    tx: Tx, *, limit: int, in_flight: timedelta, per_endpoint: int | None = None, held: Mapping[str, int] | None = None
) -> list[ClaimedDelivery]:
    """``due_candidates`` and ``claim`` in one transaction."""
    return await claim(tx, await due_candidates(tx, limit=limit, per_endpoint=per_endpoint, held=held), in_flight=in_flight)


async def next_due_at(tx: Tx) -> datetime | None:
    """When the next PENDING delivery becomes due (lets the deliverer sleep until then).

    Only future ones count: one due already but not claimed is waiting behind an earlier event of
    its subject, and is looked at again when that one is recorded.
    """
    return await tx.session.scalar(
        select(func.min(WebhookDeliveryRow.next_attempt_at)).where(
            WebhookDeliveryRow.status == PENDING, WebhookDeliveryRow.next_attempt_at > tx.now
        )
    )


async def create_test_delivery(tx: Tx, endpoint_id: str, *, in_flight: timedelta) -> ClaimedDelivery:
    """A ``webhook.test`` event for one endpoint and its delivery, already claimed by the caller."""
    row = await endpoint_row(tx, endpoint_id)
    if not row.enabled:
        raise InvalidTransition(f"webhook endpoint {endpoint_id} is disabled: enable it first")
    event = await append_event(
        tx, ev.WEBHOOK_TEST, "webhook_endpoint", endpoint_id,
        {"endpoint_id": endpoint_id, "message": "a test message from bakong-console"},
    )  # fmt: skip
    delivery = pending_delivery(tx, event.sequence, endpoint_id, due=tx.now + in_flight)
    await tx.session.execute(sql_insert(WebhookDeliveryRow), delivery)
    return ClaimedDelivery(
        delivery_id=delivery["id"], endpoint_id=endpoint_id, url=row.url, attempt_count=0,
        event_sequence=event.sequence, event_id=event.id, event_type=event.type, occurred_at=event.occurred_at,
        payload=dict(event.payload),
        secrets=signing_secrets(tx, row.secret_enc, row.previous_secret_enc, row.previous_secret_expires_at, tx.now),
    )  # fmt: skip
