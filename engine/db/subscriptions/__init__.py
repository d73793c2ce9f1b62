"""Plans, subscriptions and subscription invoices in the database.

One import for the services and the renewer (``from engine.db import subscriptions as repo``);
each part lives in the module that owns it:

- ``conversions`` — rows into records; plan, subscription and invoice data for audit rows and events;
- ``plans`` — the plan catalogue;
- ``rows`` — subscription rows: create, ``transition`` (the one way they change), history, search;
- ``invoices`` — invoices (unique per subscription, kind and period start) and their KHQR payments;
- ``renewals`` — the renewer's batch reads and its batch insert of renewal invoices.
"""

from __future__ import annotations

from engine.db.subscriptions.conversions import (
    invoice_event_data,
    iso,
    plan_code,
    plan_event_data,
    subscription_event_data,
)
from engine.db.subscriptions.invoices import (
    INVOICE_OPEN,
    INVOICE_PAID,
    INVOICE_VOID,
    KIND_INITIAL,
    KIND_RENEWAL,
    KIND_UPGRADE,
    OpenInvoice,
    get_invoice,
    insert_invoice,
    invoice_for_period,
    invoices_of,
    lock_invoice,
    next_renewal_invoice,
    open_invoices_of,
    prepaid_next_period,
    record_invoice_payment,
    set_invoice_payment,
    set_invoice_status,
    settle_invoice,
    update_invoice,
)
from engine.db.subscriptions.plans import (
    archive_plan,
    get_plan,
    get_plan_by_code,
    insert_plan,
    list_plans,
    plans_by_id,
    update_plan,
)
from engine.db.subscriptions.renewals import (
    PaidInvoice,
    due_for_renewal,
    in_status,
    insert_renewal_invoices,
    paid_open_invoices,
    periods_ended,
    renewal_invoices_at,
    unissued_invoices,
)
from engine.db.subscriptions.rows import (
    LIVE,
    NO_PENDING,
    SubscriptionFilter,
    get,
    history,
    insert,
    latest_for_user,
    live_for_user,
    lock_user,
    search,
    transition,
)

__all__ = [
    "INVOICE_OPEN",
    "INVOICE_PAID",
    "INVOICE_VOID",
    "KIND_INITIAL",
    "KIND_RENEWAL",
    "KIND_UPGRADE",
    "LIVE",
    "NO_PENDING",
    "OpenInvoice",
    "PaidInvoice",
    "SubscriptionFilter",
    "archive_plan",
    "due_for_renewal",
    "get",
    "get_invoice",
    "get_plan",
    "get_plan_by_code",
    "history",
    "in_status",
    "insert",
    "insert_invoice",
    "insert_plan",
    "insert_renewal_invoices",
    "invoice_event_data",
    "invoice_for_period",
    "invoices_of",
    "iso",
    "latest_for_user",
    "list_plans",
    "live_for_user",
    "lock_invoice",
    "lock_user",
    "next_renewal_invoice",
    "open_invoices_of",
    "paid_open_invoices",
    "periods_ended",
    "plan_code",
    "plan_event_data",
    "plans_by_id",
    "prepaid_next_period",
    "record_invoice_payment",
    "renewal_invoices_at",
    "search",
    "set_invoice_payment",
    "set_invoice_status",
    "settle_invoice",
    "subscription_event_data",
    "transition",
    "unissued_invoices",
    "update_invoice",
    "update_plan",
]
