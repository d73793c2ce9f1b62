"""Webhook endpoints, deliveries and attempts in the database: the one import surface.

Callers (``engine.services.webhooks``, ``engine.workers.deliverer``) use this package as one
repository, ``from engine.db import webhooks as repo``; each part lives in its own module:

- ``tables``: the delivery statuses (PENDING, SUCCEEDED, FAILED, DISABLED), the encryption
  contexts of endpoint secrets, and how a new PENDING delivery row is written;
- ``endpoints``: endpoints, enabling and disabling them, their secrets and rotation;
- ``queue``: fanning events out to deliveries, and claiming the due ones (the in-flight window,
  per-subject event order, a later event bringing forward the retry of an earlier one);
- ``attempts``: recording answers, the retry schedule, auto-disabling endpoints that keep failing;
- ``deliveries``: the delivery log (listing, attempts, per-endpoint counts), replay and recover.

A delivery is one event for one endpoint (unique per pair, so fanning out twice never sends twice);
every HTTP attempt is a row in ``webhook_attempts``.
"""

from __future__ import annotations

from engine.db.webhooks.attempts import RecordedAttempt, record_results
from engine.db.webhooks.deliveries import (
    attempts,
    deliveries_for_subject,
    endpoint_stats,
    get_delivery,
    list_deliveries,
    recover,
    replay,
)
from engine.db.webhooks.endpoints import (
    disable_endpoint,
    enable_endpoint,
    enabled_endpoints,
    endpoint_secrets,
    get_endpoint,
    insert_endpoint,
    list_endpoints,
    rotate_secret,
)
from engine.db.webhooks.queue import (
    ClaimedDelivery,
    claim,
    claim_due,
    create_test_delivery,
    due_candidates,
    fan_out,
    next_due_at,
    release,
    wants,
)
from engine.db.webhooks.tables import (
    DELIVERY_STATUSES,
    DISABLED,
    FAILED,
    PENDING,
    PREVIOUS_SECRET_CONTEXT,
    SECRET_CONTEXT,
    SUCCEEDED,
)

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
