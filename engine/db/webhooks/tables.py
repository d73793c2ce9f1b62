"""What every webhook repository module shares: the delivery statuses, the encryption contexts of
endpoint secrets, and how a new PENDING delivery row is written.

A delivery is PENDING until it succeeds (SUCCEEDED), is given up after the last retry (FAILED), or
its endpoint is disabled (DISABLED). Deliveries are unique per (event, endpoint), so writing one
twice (fanning out twice, recovering what was already queued) never sends twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.db.models import WebhookDeliveryRow
from engine.db.storage import Tx

__all__ = [
    "DELIVERY_STATUSES",
    "DISABLED",
    "FAILED",
    "PENDING",
    "PREVIOUS_SECRET_CONTEXT",
    "SECRET_CONTEXT",
    "SUCCEEDED",
    "insert_deliveries_once",
    "iso",
    "pending_delivery",
]

SECRET_CONTEXT = "webhook_endpoints.secret"
PREVIOUS_SECRET_CONTEXT = "webhook_endpoints.previous_secret"

PENDING = "PENDING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
DISABLED = "DISABLED"
DELIVERY_STATUSES = (PENDING, SUCCEEDED, FAILED, DISABLED)


def pending_delivery(tx: Tx, event_sequence: int, endpoint_id: str, *, due: datetime) -> dict[str, Any]:
    """The row of a new PENDING delivery of one event to one endpoint, first due at ``due``."""
    return dict(
        id=tx.ids.new("dlv"), event_sequence=event_sequence, endpoint_id=endpoint_id, status=PENDING,
        attempt_count=0, next_attempt_at=due, created_at=tx.now,
    )  # fmt: skip


def insert_deliveries_once(tx: Tx) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on (event_sequence, endpoint_id), on either database."""
    maker = pg_insert if tx.db.is_postgres else sqlite_insert
    return maker(WebhookDeliveryRow).on_conflict_do_nothing(index_elements=["event_sequence", "endpoint_id"])


def iso(dt: datetime | None) -> str | None:
    """A time as the audit log and alert events write it (RFC 3339, ``Z``)."""
    return dt.isoformat().replace("+00:00", "Z") if dt else None
