"""Request and response models of the HTTP API (they are also its OpenAPI document).

Every success answers ``{"data": ..., "meta": {"request_id": ...}}``; lists add their cursor to
``meta``. Amounts travel as decimal strings in major units (``"12.50"``) beside exact integer
minor units; a request may send the amount as a JSON number or a string, and either is parsed
as an exact decimal (never through a float).

One module on purpose, though long: it is declarations only (pydantic models, no logic), read
side by side with the published OpenAPI document.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from engine.events import ALL_EVENT_TYPES
from engine.records import PaymentStatus, SubscriptionStatus

__all__ = [
    "BulkCheckRequest",
    "BulkCheckResult",
    "CancelPaymentRequest",
    "AmountQuery",
    "Envelope",
    "EventOut",
    "EventType",
    "EventsMeta",
    "Health",
    "Meta",
    "MonitorOut",
    "MonitorRequest",
    "Page",
    "PageMeta",
    "PaymentCreate",
    "POSITIVE_AMOUNT_PATTERN",
    "PaymentOut",
    "TEXT_PATTERN",
]

T = TypeVar("T")

#: Free text: no control characters (they break KHQR fields, logs and some databases).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
MD5 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$", description="The MD5 of the KHQR string (32 hexadecimal characters).")]
Currency = Literal["KHR", "USD"]


def _text(max_length: int, description: str) -> Any:
    return Field(min_length=1, max_length=max_length, pattern=TEXT_PATTERN, description=description)


Reference = Annotated[str, _text(100, "Your order reference; also the idempotency key when no Idempotency-Key header is sent.")]
BillNumber = Annotated[str, _text(25, "Bill number written into the KHQR (tag 62.01).")]
CustomerId = Annotated[str, _text(100, "Your customer's id, for search.")]
Description = Annotated[str, _text(500, "Free text kept with the payment.")]
Reason = Annotated[str, _text(500, "Why; written to the audit log.")]
RedirectUrl = Annotated[str, Field(max_length=2048, description="An absolute http:// or https:// URL.")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- envelopes ----------------------------------------------------------------------------------


class Meta(BaseModel):
    request_id: str


class PageMeta(Meta):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class EventsMeta(Meta):
    next_since: int = Field(description="Pass as `since` to continue after the last event returned.")


class Envelope(BaseModel, Generic[T]):
    data: T
    meta: Meta


class Page(BaseModel, Generic[T]):
    data: list[T]
    meta: PageMeta


# --- payments -----------------------------------------------------------------------------------


_AMOUNT_TEXT = re.compile(r"^[0-9]{1,13}(\.[0-9]{1,2})?$")
#: What the schema publishes for an amount as text: the plain decimals above that are not zero
#: (validation refuses zero with ``gt=0``; the lookahead says so to a schema-driven client).
POSITIVE_AMOUNT_PATTERN = r"^(?!0*(\.0*)?$)[0-9]{1,13}(\.[0-9]{1,2})?$"


def _exact_amount(value: Any) -> Any:
    """Strings must be plain decimals; floats never get here (bodies parse numbers as Decimal)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("amount must be a decimal string or an exact JSON number")
    if isinstance(value, str) and not _AMOUNT_TEXT.match(value):
        raise ValueError('amount must be a plain decimal such as "12.50" or "40000"')
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_exact_amount),
    Field(gt=0, max_digits=15, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": 9999999999999},
                {"type": "string", "pattern": POSITIVE_AMOUNT_PATTERN},
            ],
            "description": 'Major units, exact: "12.50" (USD, at most 2 decimals) or "40000" (KHR, whole riel); '
            "a string or a JSON number (parsed as an exact decimal, never a float).",
        }
    ),
]


#: An amount in a query string: the same plain decimal text as a body's (no exponent, no sign).
AmountQuery = Annotated[
    Decimal,
    BeforeValidator(_exact_amount),
    Field(gt=0, max_digits=15, decimal_places=2),
    WithJsonSchema({"type": "string", "pattern": POSITIVE_AMOUNT_PATTERN, "description": 'Major units, exact: "12.50", "40000".'}),
]

#: An event type the feed knows (validation refuses any other with a 422).
EventType = Annotated[str, WithJsonSchema({"type": "string", "enum": list(ALL_EVENT_TYPES)})]


class PaymentCreate(Strict):
    amount: Amount
    currency: Currency
    reference: Reference | None = None
    bill_number: BillNumber | None = None
    customer_id: CustomerId | None = None
    description: Description | None = None
    timeout_minutes: Annotated[int, Field(ge=1, le=10080, description="How long the KHQR is valid (default: payments.default_timeout_minutes).")] | None = None
    deep_link: bool = Field(default=False, description="Also ask Bakong for a deep link (spends one Bakong request).")
    checkout: bool = Field(
        default=False,
        description="Also open a hosted checkout page for the payer (`checkout_url`); implied by `success_url` or `cancel_url`.",
    )
    success_url: RedirectUrl | None = Field(default=None, description="Where the checkout page sends the payer once paid (http or https).")
    cancel_url: RedirectUrl | None = Field(
        default=None, description="Where the checkout page sends the payer when the payment expires or they cancel it (http or https)."
    )

    @property
    def wants_checkout(self) -> bool:
        return self.checkout or self.success_url is not None or self.cancel_url is not None


class PaymentOut(BaseModel):
    id: str
    status: PaymentStatus
    amount: str = Field(description="Major units as an exact decimal string.")
    amount_minor: int = Field(description="Minor units: riel for KHR, cents for USD.")
    currency: Currency
    md5: str
    khqr: str = Field(description="The exact KHQR string to show (its MD5 is what Bakong knows).")
    deep_link: str | None
    reference: str | None
    bill_number: str | None
    customer_id: str | None
    description: str | None
    receiving_account: str
    bakong_hash: str | None
    payer_account: str | None
    subscription_id: str | None
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    last_checked_at: datetime | None
    check_count: int
    checkout_url: str | None = Field(
        default=None,
        description="The payer's checkout page (`/pay/<token>`, absolute when `web.public_url` is set); only in the answer "
        "to a create that asked for a checkout. Each answer carries a link of its own; all open the same page.",
    )


class MonitorOut(PaymentOut):
    timed_out: bool = Field(
        description="true when the wait ended at its timeout with the payment still PENDING (it is still being "
        "checked with Bakong: monitor again); false when the payment reached another state."
    )


class MonitorRequest(Strict):
    """Names the payment by exactly one of ``payment_id`` and ``md5`` (the ``oneOf`` below)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["payment_id"], "properties": {"payment_id": {"type": "string"}}},
                {"required": ["md5"], "properties": {"md5": {"type": "string"}}},
            ]
        },
    )
    payment_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    md5: MD5 | None = None
    timeout_seconds: Annotated[
        float, Field(ge=0, description="Longest wait; at most api.monitor_max_seconds (default: that maximum).")
    ] | None = None
    customer_says_paid: bool = Field(default=False, description="Check this payment with Bakong ahead of the schedule.")


class BulkCheckRequest(Strict):
    md5s: Annotated[list[MD5], Field(min_length=1, max_length=50)]


class BulkCheckResult(BaseModel):
    md5: str
    payment: PaymentOut | None = Field(description="null when no payment has this MD5.")


class CancelPaymentRequest(Strict):
    reason: Reason | None = None


# --- subscriptions ------------------------------------------------------------------------------

UserId = Annotated[str, Field(min_length=1, max_length=100, pattern=TEXT_PATTERN, description="Your user's id.")]
PlanCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="A plan code (`bakong-console plans list`).")]


class SubscriptionCreate(Strict):
    user_id: UserId
    plan: PlanCode


class SubscriptionUpgrade(Strict):
    user_id: UserId
    plan: PlanCode
    preview: bool = Field(default=False, description="Only quote the prorated amount; nothing is created.")


class SubscriptionDowngrade(Strict):
    user_id: UserId
    plan: PlanCode


class SubscriptionCancel(Strict):
    user_id: UserId
    at_period_end: bool = Field(default=True, description="Keep access until the paid period ends (default), or end now.")
    reason: Reason | None = None


class PlanOut(BaseModel):
    code: str
    name: str
    price: str = Field(description="Per cycle, major units, exact.")
    price_minor: int
    currency: Currency
    cycle_days: int
    trial_days: int


class InvoiceOut(BaseModel):
    id: str
    kind: Literal["initial", "renewal", "upgrade"]
    status: Literal["OPEN", "PAID", "VOID"]
    amount: str
    amount_minor: int
    currency: Currency
    period_start: datetime
    period_end: datetime
    plan: str = Field(description="The plan code this invoice pays for.")
    payment: PaymentOut | None = Field(description="The KHQR payment collecting it (show its `khqr`); null until issued.")


class SubscriptionOut(BaseModel):
    id: str
    user_id: str
    status: SubscriptionStatus
    has_access: bool = Field(description="TRIALING, ACTIVE, or PAST_DUE within grace.")
    plan: PlanOut
    price: str = Field(description="What the current period costs (major units).")
    price_minor: int
    currency: Currency
    cycle_days: int
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    pending_change: Literal["upgrade", "downgrade"] | None
    pending_plan: PlanOut | None
    pending_change_at: datetime | None
    cancel_at_period_end: bool
    cancelled_at: datetime | None
    cancel_reason: str | None
    grace_until: datetime | None
    incomplete_until: datetime | None = Field(description="An INCOMPLETE subscription expires if its first payment is not made by then.")
    created_at: datetime
    open_invoices: list[InvoiceOut] = Field(description="What is owed now, each with its KHQR.")


class QuoteOut(BaseModel):
    from_plan: str
    to_plan: str
    currency: Currency
    old_price: str
    new_price: str
    amount: str = Field(description="(new - old) x remaining / cycle, rounded half up to the minor unit.")
    amount_minor: int
    remaining_seconds: int
    cycle_seconds: int
    period_end: datetime
    immediate: bool = Field(description="Nothing to pay: an upgrade applies at once.")


class UpgradeOut(BaseModel):
    preview: bool
    quote: QuoteOut
    applied: bool = Field(description="The plan already changed (nothing to pay); otherwise it changes when `payment` is PAID.")
    subscription: SubscriptionOut | None = Field(description="null in preview mode.")
    invoice: InvoiceOut | None = Field(description="The prorated invoice to pay; null in preview mode or when applied.")


# --- events -------------------------------------------------------------------------------------


class EventOut(BaseModel):
    sequence: int
    id: str = Field(description="The webhook-id this event is delivered with.")
    type: str
    subject_type: str
    subject_id: str
    occurred_at: datetime
    data: dict[str, Any]


# --- health -------------------------------------------------------------------------------------


class DatabaseHealth(BaseModel):
    ok: bool
    engine: Literal["sqlite", "postgresql"]


class TokenHealth(BaseModel):
    state: Literal["valid", "expiring", "expired", "unknown-expiry", "missing"]
    expires_at: datetime | None
    days_left: int | None


class BudgetHealth(BaseModel):
    used_today: int
    remaining_today: int
    daily_budget: int
    exhausted_until: datetime | None


class BakongHealth(BaseModel):
    environment: str
    sandbox: bool
    reachable: bool | None = Field(description="Whether the last poll reached Bakong; null before any poll.")
    polling: Literal["running", "paused", "blocked", "backing-off", "idle"]
    last_poll_at: datetime | None
    last_answer_at: datetime | None = Field(description="When Bakong last answered one of this process's checks.")
    failing_since: datetime | None = Field(
        description="Since when Bakong has answered none of this process's checks (5xx, timeouts, geo 403...); null while it answers."
    )
    token: TokenHealth
    budget: BudgetHealth | None


class WorkerHealth(BaseModel):
    name: str
    held: bool = Field(description="Some process holds this job's lease.")
    in_this_process: bool
    lease_expires_at: datetime | None


class OutboxHealth(BaseModel):
    """The webhook outbox (every field null while the database is unreachable)."""

    pending_webhook_deliveries: int | None = Field(description="Deliveries waiting for a successful attempt.")
    failed_webhook_deliveries: int | None = Field(description="Deliveries that gave up after the last retry (replayable).")
    webhook_endpoints: int | None
    failing_endpoints: int | None = Field(description="Enabled endpoints whose deliveries are currently failing.")
    disabled_endpoints: int | None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    reasons: list[str] = Field(description="Why the status is not `ok`, one line each; empty when it is.")
    database: DatabaseHealth
    bakong: BakongHealth | None
    workers: list[WorkerHealth]
    outbox: OutboxHealth


class ProblemType(BaseModel):
    type: str
    title: str
    status: int


__all__ += ["BakongHealth", "BudgetHealth", "DatabaseHealth", "OutboxHealth", "ProblemType", "SubscriptionStatus", "TokenHealth", "WorkerHealth"]
