"""Domain event types: the names written to the event log and delivered as webhooks.

Payment and subscription events are the public contract with the main backend (webhook ``type``);
``alert.*`` events are for people (console toasts, logs) and are delivered too, so a backend can
page someone when Bakong polling stops.
"""

from __future__ import annotations

from engine.records import PaymentStatus

__all__ = ["ALL_EVENT_TYPES", "PAYMENT_EVENT_BY_STATUS"]

PAYMENT_CREATED = "payment.created"
PAYMENT_COMPLETED = "payment.completed"
PAYMENT_PAID_LATE = "payment.paid_late"
PAYMENT_NEEDS_REVIEW = "payment.needs_review"
PAYMENT_TIMEOUT = "payment.timeout"
PAYMENT_CANCELLED = "payment.cancelled"
PAYMENT_FAILED = "payment.failed"
PAYMENT_UNTRACKABLE = "payment.untrackable"
PAYMENT_RESOLVED = "payment.resolved"
#: Re-checked by its Bakong hash, a paid payment was not found or differs (amount, currency, account).
PAYMENT_RECONCILIATION_FAILED = "payment.reconciliation_failed"

SUBSCRIPTION_CREATED = "subscription.created"
SUBSCRIPTION_ACTIVATED = "subscription.activated"
SUBSCRIPTION_TRIAL_STARTED = "subscription.trial_started"
SUBSCRIPTION_RENEWAL_DUE = "subscription.renewal_due"
SUBSCRIPTION_RENEWED = "subscription.renewed"
SUBSCRIPTION_UPGRADE_PENDING = "subscription.upgrade_pending"
SUBSCRIPTION_UPGRADED = "subscription.upgraded"
SUBSCRIPTION_UPGRADE_WITHDRAWN = "subscription.upgrade_withdrawn"
SUBSCRIPTION_DOWNGRADE_SCHEDULED = "subscription.downgrade_scheduled"
SUBSCRIPTION_DOWNGRADE_WITHDRAWN = "subscription.downgrade_withdrawn"
SUBSCRIPTION_DOWNGRADED = "subscription.downgraded"
SUBSCRIPTION_CANCEL_SCHEDULED = "subscription.cancel_scheduled"
SUBSCRIPTION_RESUMED = "subscription.resumed"
SUBSCRIPTION_CANCELLED = "subscription.cancelled"
SUBSCRIPTION_PAST_DUE = "subscription.past_due"
SUBSCRIPTION_REMINDER = "subscription.payment_reminder"
SUBSCRIPTION_EXPIRED = "subscription.expired"

ALERT_TOKEN_EXPIRED = "alert.bakong_token_expired"
ALERT_TOKEN_EXPIRING = "alert.bakong_token_expiring"
ALERT_QUOTA_EXHAUSTED = "alert.bakong_quota_exhausted"
ALERT_BAKONG_UNREACHABLE = "alert.bakong_unreachable"
ALERT_BAKONG_RECOVERED = "alert.bakong_recovered"
ALERT_WEBHOOK_ENDPOINT_DISABLED = "alert.webhook_endpoint_disabled"
ALERT_BACKUP_FAILED = "alert.backup_failed"
ALERT_OPENING_HOURS_MISMATCH = "alert.opening_hours_mismatch"
#: One per reconciliation pass that flagged payments: how many, of which kinds.
ALERT_RECONCILIATION_FAILED = "alert.reconciliation_failed"
ALERT_PAID_AFTER_CANCEL = "alert.payment_paid_after_cancel"

DISPLAY_PAIRED = "display.paired"
DISPLAY_REVOKED = "display.revoked"

#: A day was closed (the "Z report"): its totals are frozen.
DAY_CLOSED = "day.closed"

WEBHOOK_TEST = "webhook.test"

#: The event a payment transition into each status emits.
PAYMENT_EVENT_BY_STATUS: dict[PaymentStatus, str] = {
    PaymentStatus.PENDING: PAYMENT_CREATED,
    PaymentStatus.PAID: PAYMENT_COMPLETED,
    PaymentStatus.PAID_LATE: PAYMENT_PAID_LATE,
    PaymentStatus.NEEDS_REVIEW: PAYMENT_NEEDS_REVIEW,
    PaymentStatus.TIMEOUT: PAYMENT_TIMEOUT,
    PaymentStatus.CANCELLED: PAYMENT_CANCELLED,
    PaymentStatus.FAILED: PAYMENT_FAILED,
    PaymentStatus.UNTRACKABLE: PAYMENT_UNTRACKABLE,
}

ALL_EVENT_TYPES: tuple[str, ...] = tuple(
    value for name, value in sorted(globals().items()) if name.isupper() and isinstance(value, str) and "." in value
)
