"""The data model: SQLAlchemy 2.0 typed tables for SQLite and PostgreSQL.

Amounts are integer minor units; timestamps are UTC (``UTCDateTime``); secrets are ciphertext
(``*_enc`` columns hold ``engine.crypto`` tokens, never plaintext). Indexes follow the workers'
queries: due payments by ``next_check_at``, expiring payments by ``(status, expires_at)``,
renewals by ``(status, current_period_end)``, deliveries by ``(status, next_attempt_at)``.

One module on purpose, though long: it is the whole schema, which ``tests/db/test_storage.py``
compares with the migrations as one ``MetaData``; tables refer to each other by foreign keys.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine.db.types import BigIntPK, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _when_set(column: str) -> dict[str, Any]:
    """A partial index's predicate, the same on both databases: only the rows where ``column`` is set."""
    predicate = text(f"{column} IS NOT NULL")
    return {"sqlite_where": predicate, "postgresql_where": predicate}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class PaymentRow(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: Idempotency is scoped: per API key, or per face ("console", "cli") when no key is involved.
    idempotency_scope: Mapped[str] = mapped_column(String(64), default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    #: SHA-256 of the creating request, to tell a retry from a conflicting reuse of the key.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(128))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    khqr: Mapped[str] = mapped_column(Text)
    md5: Mapped[str] = mapped_column(String(32), unique=True)
    receiving_account: Mapped[str] = mapped_column(String(64))
    bill_number: Mapped[str | None] = mapped_column(String(25))
    description: Mapped[str | None] = mapped_column(Text)
    customer_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    #: When the poller should next ask Bakong; NULL once nothing more will be asked.
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    #: "The customer says paid": the poller serves these first.
    check_requested_at: Mapped[datetime | None]
    #: A timed-out payment is still watched until then (a late find becomes PAID_LATE).
    late_watch_until: Mapped[datetime | None]
    check_count: Mapped[int] = mapped_column(Integer, default=0)
    last_checked_at: Mapped[datetime | None]
    last_check_result: Mapped[str | None] = mapped_column(String(64))
    bakong_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    payer_account_enc: Mapped[str | None] = mapped_column(Text)
    bakong_record: Mapped[dict[str, Any] | None]
    created_by_type: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    api_key_id: Mapped[str | None] = mapped_column(String(40))
    subscription_id: Mapped[str | None] = mapped_column(String(40))
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    deep_link: Mapped[str | None] = mapped_column(Text)
    #: The console terminal (counter) that made the payment; NULL for the API and the CLI.
    terminal: Mapped[str | None] = mapped_column(String(64))
    #: The last reconciliation of a paid payment with Bakong: NULL while not yet checked, else
    #: 'ok' or the flag ('not_found', 'amount_mismatch', 'currency_mismatch', 'account_mismatch').
    reconcile_status: Mapped[str | None] = mapped_column(String(24))
    reconciled_at: Mapped[datetime | None]

    # Columns that are NULL when a payment is created (no customer, subscription, terminal, paid
    # time yet...) are indexed partially, ``WHERE column IS NOT NULL``: a create writes no entry
    # in them, and every query that reads one compares the column with a value (``=``, a range,
    # ``IS NOT NULL``), which implies the predicate on both databases (migration 0013 has the
    # query plans). Windows by ``created_at`` use the report index, which starts with it.
    __table_args__ = (
        UniqueConstraint("idempotency_scope", "idempotency_key"),
        Index("ix_payments_reference", "reference", **_when_set("reference")),
        Index("ix_payments_customer_id", "customer_id", **_when_set("customer_id")),
        Index("ix_payments_check_requested_at", "check_requested_at", **_when_set("check_requested_at")),
        Index("ix_payments_subscription_id", "subscription_id", **_when_set("subscription_id")),
        Index("ix_payments_invoice_id", "invoice_id", **_when_set("invoice_id")),
        Index("ix_payments_terminal_created_at", "terminal", "created_at", **_when_set("terminal")),
        Index("ix_payments_status_expires_at", "status", "expires_at"),
        Index("ix_payments_status_created_at", "status", "created_at"),
        # a day's paid payments (reconciliation counts); the oldest not yet reconciled
        Index("ix_payments_paid_at", "paid_at", **_when_set("paid_at")),
        Index("ix_payments_reconcile_status_paid_at", "reconcile_status", "paid_at"),
        # the reports total a window of payments, per currency, terminal and cashier, from this index alone
        Index("ix_payments_report", "created_at", "status", "currency", "amount_minor", "terminal", "created_by_type", "created_by"),
    )


class PaymentStatusHistoryRow(Base):
    __tablename__ = "payment_status_history"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(160))
    #: Indexed: the reports find the changes made after a day was closed.
    at: Mapped[datetime] = mapped_column(index=True)


class DayCloseRow(Base):
    """A closed day ("Z report"): its totals frozen when it was closed. Never updated."""

    __tablename__ = "day_closes"

    #: The Asia/Phnom_Penh calendar day; one close per day.
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    #: The day's window in UTC: its payments are those created in [starts_at, ends_at).
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    closed_at: Mapped[datetime] = mapped_column(index=True)
    closed_by: Mapped[str] = mapped_column(String(160))
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    #: Per currency, per terminal, per status, what still waited, and the adjustments it carried.
    totals: Mapped[list[Any]] = mapped_column(JSON)
    terminals: Mapped[list[Any]] = mapped_column(JSON)
    statuses: Mapped[list[Any]] = mapped_column(JSON)
    open_items: Mapped[list[Any]] = mapped_column(JSON)
    adjustments: Mapped[list[Any]] = mapped_column(JSON)


class CheckoutRow(Base):
    """A payment's hosted checkout page: where the payer goes when the payment ends."""

    __tablename__ = "checkouts"

    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), primary_key=True)
    success_url: Mapped[str | None] = mapped_column(Text)
    cancel_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    #: The last "I have paid" acted on: the per-payment limit every process shares.
    paid_claimed_at: Mapped[datetime | None]


class CheckoutLinkRow(Base):
    """One /pay/{token} link to a checkout. The token's first characters find the row; only the
    SHA-256 of the whole token is kept, so the table cannot open a page."""

    __tablename__ = "checkout_links"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(80))
    payment_id: Mapped[str] = mapped_column(ForeignKey("checkouts.payment_id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]


class DisplayRow(Base):
    """A customer display at a terminal's counter: paired once with a short-lived pairing code,
    then opened by a device token. Only SHA-256 digests of the code and the token are kept."""

    __tablename__ = "displays"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    terminal: Mapped[str] = mapped_column(String(64), index=True)
    #: The outstanding pairing code (NULL once paired, or after too many wrong tries).
    pairing_code_hash: Mapped[str | None] = mapped_column(String(80))
    pairing_expires_at: Mapped[datetime | None]
    #: Wrong codes tried against this pairing code, and the last one's time (the rate limit).
    pairing_failures: Mapped[int] = mapped_column(Integer, default=0)
    pairing_failed_at: Mapped[datetime | None]
    #: The device token's first characters (finds the row) and the SHA-256 of the whole token.
    token_prefix: Mapped[str | None] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]
    paired_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class PlanRow(Base):
    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    cycle_days: Mapped[int] = mapped_column(Integer, default=30)
    trial_days: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class SubscriptionRow(Base):
    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    #: The price and cycle of the current period: later plan price changes never alter them.
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    cycle_days: Mapped[int] = mapped_column(Integer)
    current_period_start: Mapped[datetime | None]
    current_period_end: Mapped[datetime | None]
    trial_end: Mapped[datetime | None]
    pending_plan_id: Mapped[str | None] = mapped_column(ForeignKey("plans.id"))
    #: "upgrade" (waits for its prorated payment) or "downgrade" (applies at period end).
    pending_change: Mapped[str | None] = mapped_column(String(16))
    pending_change_at: Mapped[datetime | None]
    pending_invoice_id: Mapped[str | None] = mapped_column(String(40))
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    grace_until: Mapped[datetime | None]
    last_reminder_at: Mapped[datetime | None]
    incomplete_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_subscriptions_status_current_period_end", "status", "current_period_end"),)


class SubscriptionStatusHistoryRow(Base):
    __tablename__ = "subscription_status_history"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime]


class SubscriptionInvoiceRow(Base):
    """A charge of a subscription (first period, renewal, upgrade), paid by one or more KHQRs."""

    __tablename__ = "subscription_invoices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    #: "initial", "renewal" or "upgrade".
    kind: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: OPEN, PAID, VOID. Indexed: the renewer looks at the few OPEN ones on every pass.
    status: Mapped[str] = mapped_column(String(8), index=True)
    payment_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]

    #: One renewal per (subscription, period): running the renewer twice never bills twice.
    __table_args__ = (UniqueConstraint("subscription_id", "kind", "period_start"),)


class EventRow(Base):
    """Append-only domain events: the transactional outbox and the change feed."""

    __tablename__ = "events"

    sequence: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]

    __table_args__ = (Index("ix_events_subject_type_subject_id", "subject_type", "subject_id"),)


class WebhookEndpointRow(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    #: Event types this endpoint receives; empty means all.
    event_types: Mapped[list[str]]
    secret_enc: Mapped[str] = mapped_column(Text)
    previous_secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    secret_rotated_at: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None]
    #: Start of the current run of failures (NULL after any success).
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookDeliveryRow(Base):
    """One event for one endpoint. ``webhook-id`` is the event's id: the same on every retry."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_sequence: Mapped[int] = mapped_column(ForeignKey("events.sequence"), index=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    #: PENDING (will be attempted at next_attempt_at), SUCCEEDED, FAILED (gave up), DISABLED.
    status: Mapped[str] = mapped_column(String(12))
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_response_excerpt: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    succeeded_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("event_sequence", "endpoint_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )


class WebhookAttemptRow(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    duration_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class AuditLogRow(Base):
    """Append-only: who did what to which record, with before/after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    reason: Mapped[str | None] = mapped_column(Text)
    source_ip: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_log_subject_type_subject_id", "subject_type", "subject_id"),)


class BakongRequestRow(Base):
    """The request ledger: one row per Bakong request reserved, shared by every process."""

    __tablename__ = "bakong_requests"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    token_fingerprint: Mapped[str] = mapped_column(String(16))
    day: Mapped[date] = mapped_column(Date)
    endpoint: Mapped[str] = mapped_column(String(64))
    #: Indexed: the reports count the requests used across a day.
    reserved_at: Mapped[datetime] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_bakong_requests_token_fingerprint_day", "token_fingerprint", "day"),
        # what each kind of request spent on a day (reconciliation's share of the budget)
        Index("ix_bakong_requests_day_endpoint", "day", "endpoint"),
    )


class BakongQuotaRow(Base):
    """Per token and Bakong day: requests reserved so far and the errorCode 17 latch."""

    __tablename__ = "bakong_quota"

    token_fingerprint: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
    exhausted_until: Mapped[datetime | None]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    #: The first characters of the key, shown in lists so operators can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[list[str]]
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LeaseRow(Base):
    """Which process runs a background job; taken over when ``expires_at`` passes."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    extra: Mapped[dict[str, Any]]


class EngineStateRow(Base):
    """Small named state shared by processes (worker cursors, pause flags, heartbeats)."""

    __tablename__ = "engine_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class SecretRow(Base):
    """Named secrets (the Bakong token, the sandbox's signing key), encrypted at rest."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value_enc: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class SandboxTransferRow(Base):
    """The built-in sandbox's own record of transfers 'paid' by a pretend bank app."""

    __tablename__ = "sandbox_transfers"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    md5: Mapped[str] = mapped_column(String(32), index=True)
    short_hash: Mapped[str] = mapped_column(String(8), index=True)
    from_account: Mapped[str] = mapped_column(String(64))
    to_account: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    external_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    instruction_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    tracking_status: Mapped[str | None] = mapped_column(String(32))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    acknowledged_ms: Mapped[int] = mapped_column(BigInteger)
    static_qr: Mapped[bool] = mapped_column(Boolean, default=False)


class IdempotentRequestRow(Base):
    """A retry-safe API request (subscription changes): its key, what it asked, what it answered.

    The row is claimed (``response`` empty) before the change runs and filled when it is done, so
    a retry with the same key gets the first answer instead of a second change."""

    __tablename__ = "idempotent_requests"

    #: The API key's id: keys are scoped to who sent them.
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The endpoint, e.g. "subscriptions.upgrade".
    operation: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: SHA-256 of the request body, to tell a retry from a conflicting reuse of the key.
    fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
