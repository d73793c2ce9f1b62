"""The delivery log: reading deliveries and their attempts, and the operator's replay and recover.

A delivery is read with the id and type of the event it carries. Lists are newest first with an
opaque cursor (the last row's creation time and id). ``replay`` queues one delivery again under
the same ``webhook-id``; ``recover`` queues again what an endpoint failed or missed since a time,
including events it never got a delivery for because it was disabled then.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select, update

from engine import events as ev
from engine.db.journal import audit
from engine.db.models import EventRow, WebhookAttemptRow, WebhookDeliveryRow
from engine.db.storage import Tx
from engine.db.webhooks.endpoints import get_endpoint
from engine.db.webhooks.tables import DISABLED, FAILED, PENDING, insert_deliveries_once, iso, pending_delivery
from engine.errors import InvalidInput, InvalidTransition, NotFound
from engine.records import Actor, WebhookAttempt, WebhookDelivery

__all__ = [
    "attempts",
    "deliveries_for_subject",
    "endpoint_stats",
    "get_delivery",
    "list_deliveries",
    "recover",
    "replay",
]

_d = WebhookDeliveryRow.__table__
_e = EventRow.__table__

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
        rows = [pending_delivery(tx, seq, endpoint_id, due=tx.now) for seq in sequences]
        await tx.session.execute(insert_deliveries_once(tx), rows)
        count += len(rows)
    await audit(
        tx, actor, "webhook_endpoint.recover", "webhook_endpoint", endpoint_id,
        after={"since": iso(since), "deliveries": count},
    )  # fmt: skip
    return count
