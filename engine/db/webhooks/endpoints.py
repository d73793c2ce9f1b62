"""Webhook endpoints: creating and reading them, enabling and disabling, and their secrets.

An endpoint keeps its ``whsec_`` secret encrypted (context ``webhook_endpoints.secret``), and
during a rotation the previous one too (``webhook_endpoints.previous_secret``), until
``previous_secret_expires_at``: both sign meanwhile, so a receiver can switch without losing a
message. Disabling an endpoint parks its PENDING deliveries as DISABLED; the audit log keeps what
changed about an endpoint, never its secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from engine import events as ev
from engine.db.journal import append_event, audit
from engine.db.models import WebhookDeliveryRow, WebhookEndpointRow
from engine.db.storage import Tx
from engine.db.webhooks.tables import DISABLED, PENDING, PREVIOUS_SECRET_CONTEXT, SECRET_CONTEXT, iso
from engine.errors import NotFound
from engine.records import Actor, WebhookEndpoint

__all__ = [
    "disable_endpoint",
    "enable_endpoint",
    "enabled_endpoints",
    "endpoint_row",
    "endpoint_secrets",
    "get_endpoint",
    "insert_endpoint",
    "list_endpoints",
    "rotate_secret",
    "signing_secrets",
]


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


async def endpoint_row(tx: Tx, endpoint_id: str) -> WebhookEndpointRow:
    """The ORM row (for this package only: it never leaves ``engine.db``); NotFound if none."""
    row = await tx.session.get(WebhookEndpointRow, endpoint_id)
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return row


async def get_endpoint(tx: Tx, endpoint_id: str) -> WebhookEndpoint:
    return _endpoint(await endpoint_row(tx, endpoint_id))


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


async def _switch(
    tx: Tx, endpoint_id: str, *, enabled: bool, values: dict[str, Any], actor: Actor, reason: str | None
) -> WebhookEndpoint | None:
    """Turn an endpoint on or off if it is not already (None if it was), audited with ``reason``.

    The UPDATE is conditional on the current state, so of two processes switching one endpoint at
    once only one writes (and audits) the change. Turning it off parks its PENDING deliveries.
    """
    row = await endpoint_row(tx, endpoint_id)
    before = _endpoint_audit(_endpoint(row))
    result = await tx.session.execute(
        update(WebhookEndpointRow)
        .where(WebhookEndpointRow.id == endpoint_id, WebhookEndpointRow.enabled.is_(not enabled))
        .values(enabled=enabled, **values, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    if not enabled:
        await tx.session.execute(
            update(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.endpoint_id == endpoint_id, WebhookDeliveryRow.status == PENDING)
            .values(status=DISABLED, next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )
    await tx.session.refresh(row)
    endpoint = _endpoint(row)
    await audit(
        tx, actor, "webhook_endpoint.enable" if enabled else "webhook_endpoint.disable", "webhook_endpoint", endpoint_id,
        before=before, after=_endpoint_audit(endpoint), reason=reason,
    )  # fmt: skip
    return endpoint


async def disable_endpoint(
    tx: Tx, endpoint_id: str, *, actor: Actor, reason: str, alert: bool = False
) -> WebhookEndpoint | None:
    """Disable an enabled endpoint (None if it already was); its PENDING deliveries become DISABLED.

    With ``alert`` (the deliverer gave up on it) an ``alert.webhook_endpoint_disabled`` event is
    written too, for the console and for the other endpoints.
    """
    endpoint = await _switch(
        tx, endpoint_id, enabled=False, values=dict(disabled_reason=reason, disabled_at=tx.now), actor=actor, reason=reason
    )
    if endpoint is not None and alert:
        await append_event(
            tx,
            ev.ALERT_WEBHOOK_ENDPOINT_DISABLED,
            "webhook_endpoint",
            endpoint_id,
            {
                "endpoint_id": endpoint_id,
                "url": endpoint.url,
                "reason": reason,
                "failing_since": iso(endpoint.failing_since),
                "disabled_at": iso(tx.now),
            },
        )
    return endpoint


async def enable_endpoint(tx: Tx, endpoint_id: str, *, actor: Actor, reason: str | None = None) -> WebhookEndpoint | None:
    """Enable a disabled endpoint (None if it was enabled); its failure run starts afresh."""
    values = dict(disabled_reason=None, disabled_at=None, failing_since=None)
    return await _switch(tx, endpoint_id, enabled=True, values=values, actor=actor, reason=reason)


async def rotate_secret(tx: Tx, endpoint_id: str, *, actor: Actor, new_secret: str, window: timedelta) -> WebhookEndpoint:
    """Make ``new_secret`` current; the current one keeps signing beside it for ``window``."""
    row = await endpoint_row(tx, endpoint_id)
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
        after={"previous_secret_expires_at": iso(endpoint.previous_secret_expires_at)},
    )  # fmt: skip
    return endpoint


def signing_secrets(
    tx: Tx, secret_enc: str, previous_enc: str | None, previous_expires: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The secrets that sign now: the current one, and the previous one inside its window."""
    current = tx.cipher.decrypt(secret_enc, context=SECRET_CONTEXT)
    if previous_enc and previous_expires is not None and previous_expires > now:
        return (current, tx.cipher.decrypt(previous_enc, context=PREVIOUS_SECRET_CONTEXT))
    return (current,)


async def endpoint_secrets(tx: Tx, endpoint_id: str) -> tuple[str, ...]:
    row = await endpoint_row(tx, endpoint_id)
    return signing_secrets(tx, row.secret_enc, row.previous_secret_enc, row.previous_secret_expires_at, tx.now)
