"""Payments in the database.

One import for the services and the workers (``from engine.db import payments as repo``); each
part lives in the module that owns it:

- ``conversions`` — rows into ``Payment`` records (the payer's account decrypted); the payment's
  data for audit rows, events and webhooks;
- ``creation`` — ``insert``: payment row, first history row, audit row and event in one
  transaction (the create hot path); the deep link set after it;
- ``transitions`` — ``transition``, the only way a payment changes status (one conditional
  UPDATE, its history, audit and event);
- ``status_history`` — the history row each change writes, and reading a payment's history;
- ``lookups`` — one payment (or a few) by id, md5, idempotency key or Bakong hash;
- ``listing`` — ``PaymentFilter`` and ``search``, newest first, cursor-paged;
- ``counts`` — today's totals, payments created in a window, payments per status;
- ``due_queue`` — the poller's and expirer's queue: due checks, their bookkeeping, expiries.
"""

from __future__ import annotations

# One namespace made of the modules' public names, as engine.db.subscriptions builds its own.
from engine.db.payments import conversions, counts, creation, due_queue, listing, lookups, status_history, transitions
from engine.db.payments.conversions import *  # noqa: F403
from engine.db.payments.counts import *  # noqa: F403
from engine.db.payments.creation import *  # noqa: F403
from engine.db.payments.due_queue import *  # noqa: F403
from engine.db.payments.listing import *  # noqa: F403
from engine.db.payments.lookups import *  # noqa: F403
from engine.db.payments.status_history import *  # noqa: F403
from engine.db.payments.transitions import *  # noqa: F403

__all__ = [
    *conversions.__all__,
    *counts.__all__,
    *creation.__all__,
    *due_queue.__all__,
    *listing.__all__,
    *lookups.__all__,
    *status_history.__all__,
    *transitions.__all__,
]
