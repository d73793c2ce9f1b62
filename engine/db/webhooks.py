"""Webhook endpoints, deliveries and attempts in the database.

Endpoints keep their ``whsec_`` secret encrypted (context ``webhook_endpoints.secret``), and during
a rotation the previous one too, until ``previous_secret_expires_at``. A delivery is one event for
one endpoint (unique per pair, so fanning out twice never sends twice); it is PENDING until it
succeeds (SUCCEEDED), is given up after the last retry (FAILED), or its endpoint is disabled
(DISABLED). Every HTTP attempt is a row in ``webhook_attempts``.

Claiming is how a delivery in flight survives a crash: ``claim_due`` pushes ``next_attempt_at``
forward by the in-flight window before anything is sent, so if the process dies before it
records the answer the delivery simply becomes due again. Per endpoint and subject (one payment,
one subscription) deliveries go out in event order: a later event waits while an earlier one for
the same subject is still PENDING.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, case, exists, func, literal, or_, select, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine import events as ev
from engine.db.journal import append_event, audit
from engine.db.models import EventRow, WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow
from engine.db.storage import Tx
from engine.db.types import UTCDateTime
from engine.errors import InvalidInput, InvalidTransition, NotFound
from engine.records import Actor, Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from engine.webhooks.message import OutgoingMessage
from engine.webhooks.policy import AttemptResult, next_delay

__all__ = [
    "DELIVERY_STATUSES",
    "DISABLED",
    "FAILED",
    "PENDING",
    "PREVIOUS_SECRET_CONTEXT",
    "SECRET_CONTEXT",
    "SUCCEEDED",
    "ClaimedDelivery",
    "RecordedAttempt",
    "attempts",
    "claim",
    "claim_due",
    "due_candidates",
    "create_test_delivery",
    "deliveries_for_subject",
    "disable_endpoint",
    "enable_endpoint",
    "endpoint_stats",
    "enabled_endpoints",
    "endpoint_secrets",
    "fan_out",
    "get_delivery",
    "get_endpoint",
    "insert_endpoint",
    "list_deliveries",
    "list_endpoints",
    "next_due_at",
    "record_results",
    "recover",
    "release",
    "replay",
    "rotate_secret",
    "wants",
]

SECRET_CONTEXT = "webhook_endpoints.secret"
PREVIOUS_SECRET_CONTEXT = "webhook_endpoints.previous_secret"

PENDING = "PENDING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
DISABLED = "DISABLED"
DELIVERY_STATUSES = (PENDING, SUCCEEDED, FAILED, DISABLED)

_d = WebhookDeliveryRow.__table__
_e = EventRow.__table__
_p = WebhookEndpointRow.__table__


# --- endpoints ----------------------------------------------------------------------------------


def _endpoint(row: Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        url=row.url,
        event_types=tuple(row.event_types or ()),
        enabled=bool(row.enabled),
        created_at=row.created_at,
        description=row.description or "",
        disabled_reason=row.disabled_reason,
        disabled_at=row.disabled_at,
        failing_since=row.failing_since,
        secret_rotated_at=row.secret_rotated_at,
        previous_secret_expires_at=row.previous_secret_expires_at,
    )


def _endpoint_audit(e: WebhookEndpoint) -> dict[str, Any]:
    """What the audit log keeps about an endpoint: never its secrets."""
    return {
        "url": e.url,
        "event_types": list(e.event_types),
        "description": e.description,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
    }


async def insert_endpoint(
    tx: Tx, *, actor: Actor, url: str, event_types: Sequence[str], description: str, secret: str
) -> WebhookEndpoint:
    row = WebhookEndpointRow(
        id=tx.ids.new("ep"),
        url=url,
        description=description,
        event_types=list(event_types),
        secret_enc=tx.cipher.encrypt(secret, context=SECRET_CONTEXT),
        previous_secret_enc=None,
        previous_secret_expires_at=None,
        secret_rotated_at=None,
        enabled=True,
        disabled_reason=None,
        disabled_at=None,
        failing_since=None,
        created_at=tx.now,
        updated_at=tx.now,
    )
    tx.session.add(row)
    await tx.session.flush()
    endpoint = _endpoint(row)
    await audit(tx, actor, "webhook_endpoint.create", "webhook_endpoint", endpoint.id, after=_endpoint_audit(endpoint))
    return endpoint


async def _endpoint_row(tx: Tx, endpoint_id: str) -> WebhookEndpointRow:
    row = await tx.session.get(WebhookEndpointRow, endpoint_id)
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return row


async def get_endpoint(tx: Tx, endpoint_id: str) -> WebhookEndpoint:
    return _endpoint(await _endpoint_row(tx, endpoint_id))


async def list_endpoints(tx: Tx) -> list[WebhookEndpoint]:
    rows = (await tx.session.scalars(select(WebhookEndpointRow).order_by(WebhookEndpointRow.created_at, WebhookEndpointRow.id))).all()
    return [_endpoint(r) for r in rows]


async def enabled_endpoints(tx: Tx) -> list[WebhookEndpoint]:
    rows = (
        await tx.session.scalars(
            select(WebhookEndpointRow).where(WebhookEndpointRow.enabled.is_(True)).order_by(WebhookEndpointRow.created_at)
        )
    ).all()
    return [_endpoint(r) for r in rows]


async def disable_endpoint(
    tx: Tx, endpoint_id: str, *, actor: Actor, reason: str, alert: bool = False
) -> WebhookEndpoint | None:
    """Disable an enabled endpoint (None if it already was); its PENDING deliveries become DISABLED.

    With ``alert`` (the deliverer gave up on it) an ``alert.webhook_endpoint_disabled`` event is
    written too, for the console and for the other endpoints.
    """
    row = await _endpoint_row(tx, endpoint_id)
    before = _endpoint_audit(_endpoint(row))
    result = await tx.session.execute(
        update(WebhookEndpointRow)
        .where(WebhookEndpointRow.id == endpoint_id, WebhookEndpointRow.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, disabled_at=tx.now, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    await tx.session.execute(
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.endpoint_id == endpoint_id, WebhookDeliveryRow.status == PENDING)
        .values(status=DISABLED, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    await tx.session.refresh(row)
    endpoint = _endpoint(row)
    await audit(
        tx, actor, "webhook_endpoint.disable", "webhook_endpoint", endpoint_id,
        before=before, after=_endpoint_audit(endpoint), reason=reason,
    )  # fmt: skip
    if alert:
        await append_event(
            tx,
            ev.ALERT_WEBHOOK_ENDPOINT_DISABLED,
            "webhook_endpoint",
            endpoint_id,
            {
                "endpoint_id": endpoint_id,
                "url": endpoint.url,
                "reason": reason,
                "failing_since": _iso(endpoint.failing_since),
                "disabled_at": _iso(tx.now),
            },
        )
    return endpoint


async def enable_endpoint(tx: Tx, endpoint_id: str, *, actor: Actor, reason: str | None = None) -> WebhookEndpoint | None:
    """Enable a disabled endpoint (None if it was enabled); its failure run starts afresh."""
    row = await _endpoint_row(tx, endpoint_id)
    before = _endpoint_audit(_endpoint(row))
    result = await tx.session.execute(
        update(WebhookEndpointRow)
        .where(WebhookEndpointRow.id == endpoint_id, WebhookEndpointRow.enabled.is_(False))
        .values(enabled=True, disabled_reason=None, disabled_at=None, failing_since=None, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    await tx.session.refresh(row)
    endpoint = _endpoint(row)
    await audit(
        tx, actor, "webhook_endpoint.enable", "webhook_endpoint", endpoint_id,
        before=before, after=_endpoint_audit(endpoint), reason=reason,
    )  # fmt: skip
    return endpoint


async def rotate_secret(tx: Tx, endpoint_id: str, *, actor: Actor, new_secret: str, window: timedelta) -> WebhookEndpoint:
    """Make ``new_secret`` current; the current one keeps signing beside it for ``window``."""
    row = await _endpoint_row(tx, endpoint_id)
    current = tx.cipher.decrypt(row.secret_enc, context=SECRET_CONTEXT)
    row.previous_secret_enc = tx.cipher.encrypt(current, context=PREVIOUS_SECRET_CONTEXT) if window.total_seconds() > 0 else None
    row.previous_secret_expires_at = tx.now + window if window.total_seconds() > 0 else None
    row.secret_enc = tx.cipher.encrypt(new_secret, context=SECRET_CONTEXT)
    row.secret_rotated_at = tx.now
    row.updated_at = tx.now
    await tx.session.flush()
    endpoint = _endpoint(row)
    await audit(
        tx, actor, "webhook_endpoint.rotate_secret", "webhook_endpoint", endpoint_id,
        after={"previous_secret_expires_at": _iso(endpoint.previous_secret_expires_at)},
    )  # fmt: skip
    return endpoint


def _secrets(tx: Tx, secret_enc: str, previous_enc: str | None, previous_expires: datetime | None, now: datetime) -> tuple[str, ...]:
    """The secrets that sign now: the current one, and the previous one inside its window."""
    current = tx.cipher.decrypt(secret_enc, context=SECRET_CONTEXT)
    if previous_enc and previous_expires is not None and previous_expires > now:
        return (current, tx.cipher.decrypt(previous_enc, context=PREVIOUS_SECRET_CONTEXT))
    return (current,)


async def endpoint_secrets(tx: Tx, endpoint_id: str) -> tuple[str, ...]:
    row = await _endpoint_row(tx, endpoint_id)
    return _secrets(tx, row.secret_enc, row.previous_secret_enc, row.previous_secret_expires_at, tx.now)


# --- fan-out and claiming -----------------------------------------------------------------------


def _insert_ignoring_duplicates(tx: Tx) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on (event_sequence, endpoint_id), on either database."""
    maker = pg_insert if tx.db.is_postgres else sqlite_insert
    return maker(WebhookDeliveryRow).on_conflict_do_nothing(index_elements=["event_sequence", "endpoint_id"])


def wants(endpoint: WebhookEndpoint, event: Event) -> bool:
    """Does this endpoint get this event? Test messages go only where they were sent."""
    if event.type == ev.WEBHOOK_TEST:
        return False
    return endpoint.accepts(event.type) and event.occurred_at >= endpoint.created_at


async def fan_out(tx: Tx, events: Sequence[Event], endpoints: Sequence[WebhookEndpoint]) -> int:
    """One PENDING delivery per (event, endpoint that wants it), due at once; duplicates are ignored."""
    rows = [
        dict(
            id=tx.ids.new("dlv"),
            event_sequence=event.sequence,
            endpoint_id=endpoint.id,
            status=PENDING,
            attempt_count=0,
            next_attempt_at=tx.now,
            created_at=tx.now,
        )
        for event in events
        for endpoint in endpoints
        if wants(endpoint, event)
    ]
    if rows:
        await tx.session.execute(_insert_ignoring_duplicates(tx), rows)
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
            secrets_cache[key] = _secrets(tx, *key, tx.now)
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
    row = await _endpoint_row(tx, endpoint_id)
    if not row.enabled:
        raise InvalidTransition(f"webhook endpoint {endpoint_id} is disabled: enable it first")
    event = await append_event(
        tx, ev.WEBHOOK_TEST, "webhook_endpoint", endpoint_id,
        {"endpoint_id": endpoint_id, "message": "a test message from bakong-console"},
    )  # fmt: skip
    delivery_id = tx.ids.new("dlv")
    await tx.session.execute(
        sql_insert(WebhookDeliveryRow),
        dict(
            id=delivery_id, event_sequence=event.sequence, endpoint_id=endpoint_id, status=PENDING,
            attempt_count=0, next_attempt_at=tx.now + in_flight, created_at=tx.now,
        ),  # fmt: skip
    )
    return ClaimedDelivery(
        delivery_id=delivery_id, endpoint_id=endpoint_id, url=row.url, attempt_count=0,
        event_sequence=event.sequence, event_id=event.id, event_type=event.type, occurred_at=event.occurred_at,
        payload=dict(event.payload),
        secrets=_secrets(tx, row.secret_enc, row.previous_secret_enc, row.previous_secret_expires_at, tx.now),
    )  # fmt: skip


# --- recording attempts --------------------------------------------------------------------------

_INSERT_ATTEMPT = sql_insert(WebhookAttemptRow)
_UPDATE_SUCCEEDED = (
    update(_d)
    .where(_d.c.id == bindparam("b_id"))
    .values(
        status=SUCCEEDED,
        attempt_count=bindparam("b_count"),
        next_attempt_at=None,
        last_attempt_at=bindparam("b_at"),
        last_status_code=bindparam("b_code"),
        last_response_excerpt=bindparam("b_excerpt"),
        last_duration_ms=bindparam("b_ms"),
        last_error=None,
        succeeded_at=bindparam("b_at"),
    )
)
# A failure moves only a PENDING delivery on (an operator may have disabled its endpoint meanwhile);
# the attempt itself is always written down.
_UPDATE_FAILED = (
    update(_d)
    .where(_d.c.id == bindparam("b_id"))
    .values(
        status=case((_d.c.status == PENDING, bindparam("b_status")), else_=_d.c.status),
        next_attempt_at=case((_d.c.status == PENDING, bindparam("b_next", type_=UTCDateTime())), else_=_d.c.next_attempt_at),
        attempt_count=bindparam("b_count"),
        last_attempt_at=bindparam("b_at"),
        last_status_code=bindparam("b_code"),
        last_response_excerpt=bindparam("b_excerpt"),
        last_duration_ms=bindparam("b_ms"),
        last_error=bindparam("b_error"),
    )
)


@dataclass(frozen=True)
class RecordedAttempt:
    """An attempt's result with the attempt number it was (from the claim)."""

    result: AttemptResult
    attempt: int


async def record_results(
    tx: Tx,
    recorded: Sequence[RecordedAttempt],
    *,
    rng: random.Random,
    jitter: float,
    disable_after: timedelta,
) -> list[WebhookEndpoint]:
    """Write attempts, move their deliveries on, track each endpoint's failure run, and disable
    endpoints that answered 410 or have failed for ``disable_after``. Returns those disabled."""
    if not recorded:
        return []
    await tx.session.execute(
        _INSERT_ATTEMPT,
        [
            dict(
                delivery_id=r.result.delivery_id, attempt=r.attempt, started_at=r.result.started_at,
                duration_ms=r.result.duration_ms, status_code=r.result.status_code,
                response_excerpt=r.result.response_excerpt, error=r.result.error,
            )  # fmt: skip
            for r in recorded
        ],
    )
    succeeded = []
    failed = []
    for r in recorded:
        res = r.result
        common = dict(
            b_id=res.delivery_id, b_count=r.attempt, b_at=res.started_at, b_code=res.status_code,
            b_excerpt=res.response_excerpt, b_ms=res.duration_ms,
        )  # fmt: skip
        if res.succeeded:
            succeeded.append(common)
            continue
        delay = None if res.gone else next_delay(r.attempt, rng=rng, jitter=jitter, result=res)
        failed.append(
            dict(
                common,
                b_status=FAILED if delay is None else PENDING,
                b_next=None if delay is None else tx.now + timedelta(seconds=delay),
                b_error=res.error,
            )
        )
    if succeeded:
        await tx.session.execute(_UPDATE_SUCCEEDED, succeeded)
    if failed:
        await tx.session.execute(_UPDATE_FAILED, failed)
    return await _track_endpoints(tx, recorded, disable_after=disable_after)


_CLEAR_FAILING = (
    update(_p)
    .where(_p.c.id.in_(bindparam("ids", expanding=True)), _p.c.failing_since.is_not(None))
    .values(failing_since=None)
)
_RESTART_FAILING = update(_p).where(_p.c.id == bindparam("b_id")).values(failing_since=bindparam("b_since"))
_START_FAILING = (
    update(_p).where(_p.c.id == bindparam("b_id"), _p.c.failing_since.is_(None)).values(failing_since=bindparam("b_since"))
)


async def _track_endpoints(tx: Tx, recorded: Sequence[RecordedAttempt], *, disable_after: timedelta) -> list[WebhookEndpoint]:
    """``failing_since`` is the start of the current run of failures (cleared by any success)."""
    by_endpoint: dict[str, list[AttemptResult]] = {}
    for r in recorded:
        by_endpoint.setdefault(r.result.endpoint_id, []).append(r.result)
    gone: list[str] = []
    cleared: list[str] = []  # ended on a success
    restarted: list[dict[str, Any]] = []  # a success, then failures: the run starts at the first of those
    started: list[dict[str, Any]] = []  # only failures: the run starts now unless it already had
    for endpoint_id, results in by_endpoint.items():
        last_ok = max((i for i, res in enumerate(results) if res.succeeded), default=-1)
        after = results[last_ok + 1 :]
        if any(res.gone for res in after):
            gone.append(endpoint_id)
        if not after:
            cleared.append(endpoint_id)
        elif last_ok >= 0:
            restarted.append({"b_id": endpoint_id, "b_since": after[0].started_at})
        else:
            started.append({"b_id": endpoint_id, "b_since": after[0].started_at})
    if cleared:
        await tx.session.execute(_CLEAR_FAILING, {"ids": cleared})
    if restarted:
        await tx.session.execute(_RESTART_FAILING, restarted)
    if started:
        await tx.session.execute(_START_FAILING, started)
    disabled: list[WebhookEndpoint] = []
    actor = Actor.daemon("deliverer")
    for endpoint_id in gone:
        endpoint = await disable_endpoint(tx, endpoint_id, actor=actor, reason="the endpoint answered 410 Gone", alert=True)
        if endpoint is not None:
            disabled.append(endpoint)
    failing = [d["b_id"] for d in restarted + started if d["b_id"] not in gone]
    if failing:
        rows = (
            await tx.session.execute(
                select(WebhookEndpointRow.id, WebhookEndpointRow.failing_since).where(
                    WebhookEndpointRow.id.in_(failing),
                    WebhookEndpointRow.enabled.is_(True),
                    WebhookEndpointRow.failing_since <= tx.now - disable_after,
                )
            )
        ).all()
        for endpoint_id, since in rows:
            days = disable_after.total_seconds() / 86400
            endpoint = await disable_endpoint(
                tx, endpoint_id, actor=actor, alert=True,
                reason=f"failing continuously since {_iso(since)} (more than {days:g} days)",
            )  # fmt: skip
            if endpoint is not None:
                disabled.append(endpoint)
    return disabled


# --- reading deliveries ------------------------------------------------------------------------

_DELIVERY_COLUMNS = (_d, _e.c.id.label("event_id"), _e.c.type.label("event_type"))


def _delivery(row: Any) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        event_sequence=row.event_sequence,
        event_id=row.event_id,
        event_type=row.event_type,
        endpoint_id=row.endpoint_id,
        status=row.status,
        attempt_count=row.attempt_count,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_response_excerpt=row.last_response_excerpt,
        last_duration_ms=row.last_duration_ms,
        last_error=row.last_error,
        succeeded_at=row.succeeded_at,
    )


def _deliveries_select() -> Any:
    return select(*_DELIVERY_COLUMNS).select_from(_d.join(_e, _e.c.sequence == _d.c.event_sequence))


async def get_delivery(tx: Tx, delivery_id: str) -> WebhookDelivery:
    row = (await tx.session.execute(_deliveries_select().where(_d.c.id == delivery_id))).first()
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return _delivery(row)


def _encode_cursor(created_at: datetime, delivery_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), delivery_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, delivery_id = json.loads(raw)
        return datetime.fromisoformat(at), str(delivery_id)
    except (ValueError, TypeError):
        raise InvalidInput("invalid cursor", field="cursor") from None


async def list_deliveries(
    tx: Tx, *, endpoint_id: str | None = None, failed_only: bool = False, limit: int = 50, cursor: str | None = None
) -> tuple[list[WebhookDelivery], str | None]:
    """Newest first. ``failed_only``: given up, disabled, or still retrying after a failure."""
    stmt = _deliveries_select()
    if endpoint_id:
        stmt = stmt.where(_d.c.endpoint_id == endpoint_id)
    if failed_only:
        stmt = stmt.where(or_(_d.c.status.in_([FAILED, DISABLED]), and_(_d.c.status == PENDING, _d.c.attempt_count > 0)))
    if cursor:
        at, last_id = _decode_cursor(cursor)
        stmt = stmt.where(or_(_d.c.created_at < at, and_(_d.c.created_at == at, _d.c.id < last_id)))
    rows = (await tx.session.execute(stmt.order_by(_d.c.created_at.desc(), _d.c.id.desc()).limit(limit + 1))).all()
    page = [_delivery(r) for r in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return page, next_cursor


async def deliveries_for_subject(tx: Tx, subject_type: str, subject_id: str) -> list[WebhookDelivery]:
    """Every delivery of every event about one record (a payment's webhooks), in event order."""
    rows = (
        await tx.session.execute(
            _deliveries_select()
            .where(_e.c.subject_type == subject_type, _e.c.subject_id == subject_id)
            .order_by(_d.c.event_sequence, _d.c.endpoint_id)
        )
    ).all()
    return [_delivery(r) for r in rows]


async def attempts(tx: Tx, delivery_id: str) -> list[WebhookAttempt]:
    await get_delivery(tx, delivery_id)
    rows = (
        await tx.session.scalars(
            select(WebhookAttemptRow).where(WebhookAttemptRow.delivery_id == delivery_id).order_by(WebhookAttemptRow.id)
        )
    ).all()
    return [
        WebhookAttempt(
            id=r.id, delivery_id=r.delivery_id, attempt=r.attempt, started_at=r.started_at, duration_ms=r.duration_ms,
            status_code=r.status_code, response_excerpt=r.response_excerpt, error=r.error,
        )  # fmt: skip
        for r in rows
    ]


async def endpoint_stats(tx: Tx) -> dict[str, dict[str, Any]]:
    """Per endpoint id: PENDING and FAILED counts and the last success."""
    rows = (
        await tx.session.execute(
            select(
                _d.c.endpoint_id,
                func.sum(case((_d.c.status == PENDING, 1), else_=0)),
                func.sum(case((_d.c.status == FAILED, 1), else_=0)),
                func.max(_d.c.succeeded_at),
            ).group_by(_d.c.endpoint_id)
        )
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for endpoint_id, pending, failed, last_success in rows:
        out[endpoint_id] = {"pending": int(pending or 0), "failed": int(failed or 0), "last_success_at": last_success}
    return out


# --- operator actions ---------------------------------------------------------------------------


async def replay(tx: Tx, delivery_id: str, *, actor: Actor) -> WebhookDelivery:
    """Send one delivery again as soon as the deliverer can (same ``webhook-id``)."""
    delivery = await get_delivery(tx, delivery_id)
    endpoint = await get_endpoint(tx, delivery.endpoint_id)
    if not endpoint.enabled:
        raise InvalidTransition(f"webhook endpoint {endpoint.id} is disabled: enable it before replaying")
    await tx.session.execute(
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.id == delivery_id)
        .values(status=PENDING, next_attempt_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    await audit(
        tx, actor, "webhook_delivery.replay", "webhook_delivery", delivery_id,
        before={"status": delivery.status, "attempt_count": delivery.attempt_count},
        after={"status": PENDING},
    )  # fmt: skip
    return await get_delivery(tx, delivery_id)


async def recover(tx: Tx, endpoint_id: str, since: datetime, *, actor: Actor) -> int:
    """Queue again every FAILED or DISABLED delivery of an endpoint for events since ``since``, and
    create deliveries for events it should have had but never got (it was disabled then)."""
    endpoint = await get_endpoint(tx, endpoint_id)
    if not endpoint.enabled:
        raise InvalidTransition(f"webhook endpoint {endpoint_id} is disabled: enable it before recovering")
    requeued = await tx.session.execute(
        update(WebhookDeliveryRow)
        .where(
            WebhookDeliveryRow.endpoint_id == endpoint_id,
            WebhookDeliveryRow.status.in_([FAILED, DISABLED]),
            WebhookDeliveryRow.event_sequence.in_(select(EventRow.sequence).where(EventRow.occurred_at >= since)),
        )
        .values(status=PENDING, next_attempt_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    count = int(requeued.rowcount or 0)
    missing = select(EventRow.sequence).where(
        EventRow.occurred_at >= since,
        EventRow.type != ev.WEBHOOK_TEST,
        ~exists().where(WebhookDeliveryRow.event_sequence == EventRow.sequence, WebhookDeliveryRow.endpoint_id == endpoint_id),
    )
    if endpoint.event_types:
        missing = missing.where(EventRow.type.in_(list(endpoint.event_types)))
    sequences = list((await tx.session.scalars(missing.order_by(EventRow.sequence))).all())
    if sequences:
        rows = [
            dict(
                id=tx.ids.new("dlv"), event_sequence=seq, endpoint_id=endpoint_id, status=PENDING,
                attempt_count=0, next_attempt_at=tx.now, created_at=tx.now,
            )  # fmt: skip
            for seq in sequences
        ]
        await tx.session.execute(_insert_ignoring_duplicates(tx), rows)
        count += len(rows)
    await audit(
        tx, actor, "webhook_endpoint.recover", "webhook_endpoint", endpoint_id,
        after={"since": _iso(since), "deliveries": count},
    )  # fmt: skip
    return count


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None
