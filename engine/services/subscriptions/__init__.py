"""Subscription use cases: plans, create, status, upgrade (prorated), downgrade, cancel, resume, list.

KHQR cannot debit anyone, so every charge is an invoice paid by the customer scanning a KHQR
(``engine.payments.initiate``). The service creates invoices and their payments; the renewer
(``engine/workers/renewer.py``) reacts to what gets paid and to the calendar. Every subscription
change is one transaction with its history row (when the status changes), its audit row and its
event.

Callers use ``SubscriptionService`` (``service``), which hands each call to the module that owns
it; the billing rules are stated where they are applied:

- ``plans`` — the plan catalogue;
- ``queries`` — reading subscriptions, their history and invoices;
- ``invoicing`` — invoices and their KHQRs: issue, create, record, void, reprice the next period;
- ``changes`` — what a customer asks for: upgrade (prorated) and its preview, downgrade,
  withdraw, cancel, resume;
- ``lifecycle`` — create, and what payments and the calendar do: activate, renew, past due,
  remind, expire, end at period end.
"""

from __future__ import annotations

from engine.services.subscriptions.invoicing import (
    IDEMPOTENCY_SCOPE,
    invoice_idempotency_key,
    subscription_payment_listener,
)
from engine.services.subscriptions.plans import MAX_CYCLE_DAYS, MAX_TRIAL_DAYS
from engine.services.subscriptions.service import SubscriptionService

__all__ = [
    "IDEMPOTENCY_SCOPE",
    "MAX_CYCLE_DAYS",
    "MAX_TRIAL_DAYS",
    "SubscriptionService",
    "invoice_idempotency_key",
    "subscription_payment_listener",
]
