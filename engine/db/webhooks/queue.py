"""The delivery queue: fanning events out to endpoints, and claiming the deliveries that are due.

Claiming is how a delivery in flight survives a crash: ``claim_due`` pushes ``next_attempt_at``
forward by the in-flight window before anything is sent, so if the process dies before it
records the answer the delivery simply becomes due again. Per endpoint and subject (one payment,
one subscription) deliveries go out in event order: a later event waits while an earlier one for
the same subject is still PENDING.

So that order does not cost a later event the earlier one's retry schedule (a completion held
minutes behind a creation that failed once), fanning a later event out brings forward the retry
of an earlier one of its subject that failed and is waiting: it is due at once, and the later
event follows it as soon as it succeeds (if it fails again, the later event waits for its next
retry: order is the promise). Only when the endpoint answered that message with a failure of its
own: not when it asked to slow down (429/502/503/504: its ``Retry-After`` stands), gave no answer
(refused, timed out: it is unreachable), or is failing as a whole (its current run of failures
covers more than one message). Then the schedule stands and the later event waits. A later
event brings a retry forward once, when it is fanned out, so an endpoint that turns out to be
dead gets at most one extra attempt per later event, and none once a second message has failed
there. The retry brought forward is the delivery's next attempt: its schedule goes on from
there. What happens after the send is ``attempts``'s part.
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
from engine.db.sealing import unseal
from engine.db.storage import Tx
from engine.db.types import UTCDateTime
from engine.db.webhooks.endpoints import endpoint_row, signing_secrets
from engine.db.webhooks.tables import PENDING, insert_deliveries_once, pending_delivery
from engine.errors import InvalidTransition
from engine.records import Event, WebhookEndpoint
from engine.webhooks.message import OutgoingMessage
from engine.webhooks.policy import BACKPRESSURE_STATUSES

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
    """One PENDING delivery per (event, endpoint that wants it), due at once; duplicates are ignored.

    Brings forward the waiting retries the new deliveries would otherwise queue behind (see the
    module docstring). The deliverer fans out between its passes, with nothing of its own in
    flight, so a retry brought forward is never one being sent (if it were, the receiver would
    get that message twice, same ``webhook-id``, and order would still hold).
    """
    rows = []
    queued: dict[tuple[str, str, str], int] = {}  # (subject type, subject id, endpoint) -> latest new sequence
    for event in events:
        for endpoint in endpoints:
            if wants(endpoint, event):
                rows.append(pending_delivery(tx, event.sequence, endpoint.id, due=tx.now))
                queued[(event.subject_type, event.subject_id, endpoint.id)] = event.sequence
    if rows:
        await tx.session.execute(insert_deliveries_once(tx), rows)
        await _bring_retries_forward(tx, queued)
    return len(rows)


# Deliveries that failed and wait for a retry (attempted, still PENDING, due later), with their
# subject: one range of the (status, next_attempt_at) index.
_WAITING_RETRIES = (
    select(_d.c.id, _d.c.endpoint_id, _d.c.event_sequence, _d.c.last_status_code, _e.c.subject_type, _e.c.subject_id)
    .select_from(_d.join(_e, _e.c.sequence == _d.c.event_sequence))
    .where(
        _d.c.status == PENDING,
        _d.c.next_attempt_at > bindparam("now", type_=UTCDateTime()),
        _d.c.attempt_count >= 1,
        _d.c.endpoint_id.in_(bindparam("endpoints", expanding=True)),
        _e.c.subject_id.in_(bindparam("subjects", expanding=True)),
    )
)
# How many messages of one endpoint failed in its current run of failures and wait for a retry
# (two are enough to know).
_FAILING_MESSAGES = select(func.count()).select_from(
    select(literal(1))
    .where(
        _d.c.endpoint_id == bindparam("endpoint"),
        _d.c.status == PENDING,
        _d.c.next_attempt_at > bindparam("now", type_=UTCDateTime()),
        _d.c.attempt_count >= 1,
        _d.c.last_attempt_at >= bindparam("since", type_=UTCDateTime()),
    )
    .limit(2)
    .subquery()
)


async def _bring_retries_forward(tx: Tx, queued: Mapping[tuple[str, str, str], int]) -> None:
    """Make due now the waiting retries of earlier events of the subjects just queued (per
    endpoint), where the endpoint neither asked to slow down nor is failing as a whole."""
    waiting = (
        await tx.session.execute(
            _WAITING_RETRIES,
            {"now": tx.now, "endpoints": sorted({k[2] for k in queued}), "subjects": sorted({k[1] for k in queued})},
        )
    ).all()
    by_endpoint: dict[str, list[str]] = {}
    for row in waiting:
        later = queued.get((row.subject_type, row.subject_id, row.endpoint_id))
        if later is None or row.event_sequence >= later:
            continue
        # No answer at all (refused, timed out) is the endpoint being unreachable, and a slow-down
        # answer asks for the wait: either way the endpoint's backoff stands. Any other failing
        # answer may be about this one message.
        if row.last_status_code is None or row.last_status_code in BACKPRESSURE_STATUSES:
            continue
        by_endpoint.setdefault(row.endpoint_id, []).append(row.id)
    if not by_endpoint:
        return
    failing = dict(
        (
            await tx.session.execute(
                select(_p.c.id, _p.c.failing_since).where(_p.c.id.in_(list(by_endpoint)), _p.c.failing_since.is_not(None))
            )
        ).all()
    )
    chosen: list[str] = []
    for endpoint_id, ids in by_endpoint.items():
        since = failing.get(endpoint_id)
        if since is not None:
            # One message failing (this one, or another while this one waits from before the
            # last success) may be about that message; more than one is the endpoint itself: its
            # backoff stands, or every new event would add a retry to a dead endpoint.
            count = await tx.session.scalar(_FAILING_MESSAGES, {"endpoint": endpoint_id, "now": tx.now, "since": since})
            if (count or 0) > 1:
                continue
        chosen.extend(ids)
    if chosen:
        await tx.session.execute(
            update(_d)
            .where(_d.c.id.in_(chosen), _d.c.status == PENDING, _d.c.next_attempt_at > tx.now)
            .values(next_attempt_at=tx.now)
        )


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
                occurred_at=r.occurred_at, payload=unseal(tx.cipher, dict(r.payload)), secrets=secrets_cache[key],
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
    if event is None:
        raise RuntimeError("a test delivery needs its event's sequence: open the transaction with sequence_at_start=True")
    delivery = pending_delivery(tx, event.sequence, endpoint_id, due=tx.now + in_flight)
    await tx.session.execute(sql_insert(WebhookDeliveryRow), delivery)
    return ClaimedDelivery(
        delivery_id=delivery["id"], endpoint_id=endpoint_id, url=row.url, attempt_count=0,
        event_sequence=event.sequence, event_id=event.id, event_type=event.type, occurred_at=event.occurred_at,
        payload=dict(event.payload),
        secrets=signing_secrets(tx, row.secret_enc, row.previous_secret_enc, row.previous_secret_expires_at, tx.now),
    )  # fmt: skip
