"""Payment use cases: initiate, check now, monitor, bulk check, cancel, mark paid, resolve, search.

Every change is one transaction through ``engine.db.payments`` (row, history, audit, event). The
faces (console, CLI, HTTP API) call ``PaymentService`` and nothing below it. Its parts, one
module each, are its base classes (no forwarding per call):

- ``service`` — ``PaymentService``: builds the service from what its parts share;
- ``creation`` — ``initiate``: validation, the dynamic KHQR, the one-transaction insert,
  idempotent replays, the deep link (the create hot path);
- ``queries`` — reads: by id, MD5 or reference, history, search, CSV export, today's totals,
  the events feed;
- ``checks`` — Bakong checks on demand: request a check, check now, bulk check, ``monitor``;
- ``decisions`` — cancel, mark paid, resolve.
"""

from __future__ import annotations

from engine.db.payments import PaymentFilter
from engine.services.payments.creation import MAX_TIMEOUT_MINUTES, CreatedPayment
from engine.services.payments.queries import MD5_PATTERN
from engine.services.payments.service import PaymentService

__all__ = ["CreatedPayment", "MAX_TIMEOUT_MINUTES", "MD5_PATTERN", "PaymentFilter", "PaymentService"]
