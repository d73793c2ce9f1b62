"""The engine's vocabulary: status enums and the frozen records (DTOs) every face receives.

Repositories in ``engine/db`` turn rows into these; no ORM object ever leaves ``engine/db``.
This module imports nothing from SQLAlchemy so the TUI and API can use it freely.

One module on purpose, though long: it is only declarations (enums and frozen dataclasses, no
logic), the vocabulary every layer imports; one place keeps a status and the record carrying it
together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from engine.money import format_amount, to_major

__all__ = [
    "ActorType",
    "Actor",
    "ApiKey",
    "AuditEntry",
    "DayReconciliation",
    "Event",
    "InvoicePayment",
    "Lease",
    "Payment",
    "PaymentStatus",
    "Plan",
    "PlanChange",
    "ProrationQuote",
    "ReconcileStatus",
    "StatusChange",
    "Subscription",
    "SubscriptionInvoice",
    "SubscriptionStatus",
    "SubscriptionView",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    PAID_LATE = "PAID_LATE"
    NEEDS_REVIEW = "NEEDS_REVIEW"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    UNTRACKABLE = "UNTRACKABLE"

    @property
    def is_final(self) -> bool:
        """No automatic transition leaves this state (an operator may still resolve review states)."""
        return self not in (PaymentStatus.PENDING,)

    @property
    def needs_operator(self) -> bool:
        return self in (PaymentStatus.NEEDS_REVIEW, PaymentStatus.PAID_LATE)


class ReconcileStatus(StrEnum):
    """What re-checking a paid payment by its Bakong hash found: ``OK`` or one flag."""

    OK = "ok"
    #: Bakong no longer knows the transaction (a JSON "not found" for its hash).
    NOT_FOUND = "not_found"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    #: The money went to another Bakong account than the one the KHQR named (or Bakong no longer says which).
    ACCOUNT_MISMATCH = "account_mismatch"
    #: Bakong now reports the transfer as failed.
    FAILED = "failed"

    @property
    def flagged(self) -> bool:
        return self is not ReconcileStatus.OK


@dataclass(frozen=True)
class DayReconciliation:
    """A day's paid payments (PAID and PAID_LATE, by ``paid_at`` in Phnom Penh time) by what
    reconciliation with Bakong found: ``reconciled`` ok, ``flagged`` per ReconcileStatus value,
    ``unchecked`` not yet re-checked."""

    day: date
    paid: int
    reconciled: int
    flagged: dict[str, int]
    unchecked: int

    @property
    def flagged_total(self) -> int:
        return sum(self.flagged.values())


class SubscriptionStatus(StrEnum):
    INCOMPLETE = "INCOMPLETE"
    TRIALING = "TRIALING"
    ACTIVE = "ACTIVE"
    PAST_DUE = "PAST_DUE"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"

    @property
    def is_live(self) -> bool:
        """Not ended: the user's one current subscription is in one of these states."""
        return self not in (SubscriptionStatus.EXPIRED, SubscriptionStatus.CANCELLED)

    @property
    def has_access(self) -> bool:
        """The user may use what the plan sells (PAST_DUE keeps access during grace)."""
        return self in (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


class ActorType(StrEnum):
    CASHIER = "cashier"
    API_KEY = "api_key"
    DAEMON = "daemon"
    CLI = "cli"
    SYSTEM = "system"
    #: The payer, through a page they were given (the hosted checkout).
    PAYER = "payer"


@dataclass(frozen=True)
class Actor:
    """Who did something: written to history and the audit log."""

    type: ActorType
    name: str
    source_ip: str | None = None

    def __str__(self) -> str:
        return f"{self.type.value}:{self.name}"

    @classmethod
    def daemon(cls, name: str = "poller") -> Actor:
        return cls(ActorType.DAEMON, name)


@dataclass(frozen=True)
class Payment:
    id: str
    amount_minor: int
    currency: str
    status: PaymentStatus
    khqr: str
    md5: str
    receiving_account: str
    created_at: datetime
    expires_at: datetime
    reference: str | None = None
    idempotency_key: str | None = None
    bill_number: str | None = None
    description: str | None = None
    customer_id: str | None = None
    paid_at: datetime | None = None
    next_check_at: datetime | None = None
    check_requested_at: datetime | None = None
    late_watch_until: datetime | None = None
    check_count: int = 0
    last_checked_at: datetime | None = None
    last_check_result: str | None = None
    bakong_hash: str | None = None
    payer_account: str | None = None
    bakong_record: dict[str, Any] | None = None
    created_by_type: str = "system"
    created_by: str = ""
    api_key_id: str | None = None
    subscription_id: str | None = None
    invoice_id: str | None = None
    deep_link: str | None = None
    updated_at: datetime | None = None
    #: The console terminal that made it (None for API and CLI payments).
    terminal: str | None = None
    #: Reconciliation with Bakong (paid payments): None while not yet checked, else a ReconcileStatus value.
    reconcile_status: str | None = None
    reconciled_at: datetime | None = None

    @property
    def amount(self) -> Any:
        """The amount in major units as an exact Decimal."""
        return to_major(self.amount_minor, self.currency)

    @property
    def display_amount(self) -> str:
        return format_amount(self.amount_minor, self.currency)


@dataclass(frozen=True)
class StatusChange:
    """One row of a status history (payments or subscriptions)."""

    id: int
    subject_id: str
    from_status: str | None
    to_status: str
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class Event:
    """A domain event from the append-only log (the outbox and the change feed)."""

    sequence: int
    id: str
    type: str
    subject_type: str
    subject_id: str
    payload: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_type: str
    actor: str
    action: str
    subject_type: str
    subject_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    source_ip: str | None


@dataclass(frozen=True)
class Plan:
    id: str
    code: str
    name: str
    price_minor: int
    currency: str
    cycle_days: int
    trial_days: int
    created_at: datetime
    archived_at: datetime | None = None

    @property
    def display_price(self) -> str:
        return format_amount(self.price_minor, self.currency)


@dataclass(frozen=True)
class Subscription:
    id: str
    user_id: str
    plan_id: str
    status: SubscriptionStatus
    price_minor: int
    currency: str
    cycle_days: int
    created_at: datetime
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    trial_end: datetime | None = None
    pending_plan_id: str | None = None
    pending_change: str | None = None
    pending_change_at: datetime | None = None
    pending_invoice_id: str | None = None
    cancel_at_period_end: bool = False
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    grace_until: datetime | None = None
    last_reminder_at: datetime | None = None
    incomplete_until: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class SubscriptionInvoice:
    id: str
    subscription_id: str
    kind: str
    period_start: datetime
    period_end: datetime
    plan_id: str
    amount_minor: int
    currency: str
    status: str
    payment_id: str | None
    created_at: datetime
    paid_at: datetime | None = None


@dataclass(frozen=True)
class InvoicePayment:
    """An invoice and the KHQR payment that currently collects it (None until it is issued)."""

    invoice: SubscriptionInvoice
    payment: Payment | None = None


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription as the faces show it: plan, period, pending change, state, what is owed."""

    subscription: Subscription
    plan: Plan
    pending_plan: Plan | None = None
    #: OPEN invoices (first payment, renewal, upgrade) with their current KHQR payments.
    open_invoices: tuple[InvoicePayment, ...] = ()

    @property
    def id(self) -> str:
        return self.subscription.id

    @property
    def user_id(self) -> str:
        return self.subscription.user_id

    @property
    def status(self) -> SubscriptionStatus:
        return self.subscription.status

    @property
    def period_start(self) -> datetime | None:
        return self.subscription.current_period_start

    @property
    def period_end(self) -> datetime | None:
        return self.subscription.current_period_end

    @property
    def pending_change(self) -> str | None:
        """"upgrade" (waiting for its payment), "downgrade" (at period end) or None."""
        return self.subscription.pending_change

    @property
    def has_access(self) -> bool:
        return self.subscription.status.has_access

    def open_invoice(self, kind: str) -> InvoicePayment | None:
        for item in self.open_invoices:
            if item.invoice.kind == kind:
                return item
        return None


@dataclass(frozen=True)
class ProrationQuote:
    """What an upgrade costs now (see ``engine.services.proration`` for the rule), before anything is created."""

    from_plan: str
    to_plan: str
    currency: str
    old_price_minor: int
    new_price_minor: int
    remaining_seconds: int
    cycle_seconds: int
    period_end: datetime
    amount_minor: int

    @property
    def amount(self) -> Any:
        return to_major(self.amount_minor, self.currency)

    @property
    def display_amount(self) -> str:
        return format_amount(self.amount_minor, self.currency)

    @property
    def immediate(self) -> bool:
        """Nothing to pay: the upgrade applies at once."""
        return self.amount_minor == 0


@dataclass(frozen=True)
class PlanChange:
    """The result of an upgrade request: applied at once, or waiting for its prorated payment."""

    view: SubscriptionView
    quote: ProrationQuote
    applied: bool
    invoice: SubscriptionInvoice | None = None
    payment: Payment | None = None


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    event_types: tuple[str, ...]
    enabled: bool
    created_at: datetime
    description: str = ""
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    failing_since: datetime | None = None
    secret_rotated_at: datetime | None = None
    previous_secret_expires_at: datetime | None = None

    def accepts(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


@dataclass(frozen=True)
class WebhookDelivery:
    id: str
    event_sequence: int
    event_id: str
    event_type: str
    endpoint_id: str
    status: str
    attempt_count: int
    created_at: datetime
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_response_excerpt: str | None = None
    last_duration_ms: float | None = None
    last_error: str | None = None
    succeeded_at: datetime | None = None


@dataclass(frozen=True)
class WebhookAttempt:
    id: int
    delivery_id: str
    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    response_excerpt: str | None
    error: str | None


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)
