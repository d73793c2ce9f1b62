"""The engine's one exception tree.

Every failure the engine reports to a face (CLI, TUI, HTTP API) is one of these; no caller ever
has to catch an httpx, SQLAlchemy or asyncpg type. Each class carries a stable ``kind`` (used as
the problem ``type`` by the HTTP API and in logs) and an ``exit_code`` (used by the CLI).

    BakongConsoleError
     ├── ConfigError                      bad or missing configuration
     ├── DataKeyError                     encryption key missing, unknown or wrong
     ├── InvalidInput                     a request the engine refuses to act on
     │    └── KHQRError                   (engine.khqr) carries the NBC SDK's numeric code
     ├── NotFound                         no such payment, plan, subscription, endpoint, key
     │    └── CheckoutEnded               a checkout link whose payment ended (410 Gone)
     ├── Conflict
     │    ├── IdempotencyConflict         same key, different request
     │    └── InvalidTransition           the entity is not in a state that allows the change
     ├── StorageError                     the database failed or is at the wrong schema
     ├── Unauthorized / Forbidden         API key missing, wrong, revoked / lacks a scope
     ├── RateLimitExceeded                our own API limits (retry_after)
     ├── WebhookError                     a webhook could not be verified or configured
     │    └── WebhookVerificationError
     └── BakongError                      anything the Bakong Open API answered or failed to answer
          ├── BakongAnswer                a JSON answer about a transaction
          │    ├── TransactionNotFound    errorCode 1: not paid (yet). The only "not paid" signal.
          │    ├── StaticQRNotSupported   errorCode 2 / STATIC_QR: untrackable
          │    └── TransactionFailed      errorCode 3
          ├── AccountNotFound             errorCode 11 / 12 on an account check
          └── BakongRefusal               "cannot ask right now": never changes a payment's state
               ├── TokenExpired           401 / errorCode 6
               ├── QuotaExhausted         errorCode 17 or a quota-like message (latches until midnight)
               ├── BudgetExhausted        our own daily ledger refused to spend a request
               ├── PollingPaused          requests stopped until a person acts (token)
               ├── GeoBlocked             HTML 403 outside the bulk path
               ├── BulkEndpointBlocked    HTML 403 on a bulk endpoint (md5 or hash list)
               ├── RateLimited            HTTP 429 (retry_after)
               ├── BakongServerError      5xx
               ├── BakongUnreachable      timeouts, connection errors
               ├── MalformedResponse      non-JSON, empty or unparseable body
               ├── BadRequest             errorCode 5: our request was wrong (not retried)
               └── UnknownRefusal         any other code or shape
"""

from __future__ import annotations

__all__ = [
    "AccountNotFound",
    "BadRequest",
    "BakongAnswer",
    "BakongConsoleError",
    "BakongError",
    "BakongRefusal",
    "BakongServerError",
    "BakongUnreachable",
    "BudgetExhausted",
    "BulkEndpointBlocked",
    "CheckoutEnded",
    "ConfigError",
    "Conflict",
    "DataKeyError",
    "Forbidden",
    "GeoBlocked",
    "IdempotencyConflict",
    "InvalidInput",
    "InvalidTransition",
    "MalformedResponse",
    "NotFound",
    "PollingPaused",
    "QuotaExhausted",
    "RateLimitExceeded",
    "RateLimited",
    "StaticQRNotSupported",
    "StorageError",
    "TokenExpired",
    "TransactionFailed",
    "TransactionNotFound",
    "Unauthorized",
    "UnknownRefusal",
    "WebhookError",
    "WebhookVerificationError",
]


class BakongConsoleError(Exception):
    """Root of every error the engine raises on purpose."""

    kind: str = "error"
    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.kind)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.kind


class ConfigError(BakongConsoleError):
    """The configuration is missing, malformed or inconsistent."""

    kind = "config-error"
    exit_code = 2


class DataKeyError(BakongConsoleError):
    """The data encryption key is missing, unknown or does not open the stored ciphertext."""

    kind = "data-key-error"
    exit_code = 2


class InvalidInput(BakongConsoleError):
    """The request is not valid."""

    kind = "invalid-input"
    http_status = 422

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(BakongConsoleError):
    """No such record."""

    kind = "not-found"
    http_status = 404


class CheckoutEnded(NotFound):
    """The checkout link's payment has ended and its result is no longer shown."""

    kind = "checkout-ended"
    http_status = 410


class Conflict(BakongConsoleError):
    """The request conflicts with the current state."""

    kind = "conflict"
    http_status = 409


class IdempotencyConflict(Conflict):
    """The idempotency key was already used for a different request."""

    kind = "idempotency-conflict"


class InvalidTransition(Conflict):
    """The record is not in a state that allows this change."""

    kind = "invalid-transition"


class StorageError(BakongConsoleError):
    """The database failed or is not at the expected schema version."""

    kind = "storage-error"
    http_status = 503


class Unauthorized(BakongConsoleError):
    """Missing, unknown or revoked API key."""

    kind = "unauthorized"
    http_status = 401


class Forbidden(BakongConsoleError):
    """The API key lacks the scope this action needs, or the client is blocked."""

    kind = "forbidden"
    http_status = 403


class RateLimitExceeded(BakongConsoleError):
    """Too many requests for this API key."""

    kind = "rate-limited"
    http_status = 429

    def __init__(self, message: str = "", *, retry_after: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WebhookError(BakongConsoleError):
    """A webhook endpoint or message is invalid."""

    kind = "webhook-error"
    http_status = 422


class WebhookVerificationError(WebhookError):
    """A webhook message's signature or timestamp does not verify."""

    kind = "webhook-verification-failed"
    http_status = 400


# --- Bakong --------------------------------------------------------------------------------------


class BakongError(BakongConsoleError):
    """The Bakong Open API answered something other than a transaction, or nothing usable."""

    kind = "bakong-error"
    http_status = 502

    def __init__(
        self,
        message: str = "",
        *,
        error_code: int | None = None,
        http_status_code: int | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.http_status_code = http_status_code
        self.endpoint = endpoint


class BakongAnswer(BakongError):
    """A definite JSON answer about one transaction."""

    kind = "bakong-answer"


class TransactionNotFound(BakongAnswer):
    """Bakong has no transaction for this key (errorCode 1): not paid yet."""

    kind = "transaction-not-found"
    http_status = 404


class StaticQRNotSupported(BakongAnswer):
    """Bakong cannot track a static KHQR (errorCode 2)."""

    kind = "static-qr-not-supported"
    http_status = 422


class TransactionFailed(BakongAnswer):
    """Bakong reports the transaction as failed (errorCode 3)."""

    kind = "transaction-failed"
    http_status = 422


class AccountNotFound(BakongError):
    """The Bakong account id does not exist or is malformed (errorCode 11 / 12)."""

    kind = "account-not-found"
    http_status = 404


class BakongRefusal(BakongError):
    """Bakong could not be asked or refused to answer: the payment's state stays as it was."""

    kind = "bakong-refusal"
    http_status = 503


class TokenExpired(BakongRefusal):
    """The Bakong token is expired, invalid or missing (HTTP 401 / errorCode 6)."""

    kind = "bakong-token-expired"


class QuotaExhausted(BakongRefusal):
    """Bakong's daily request quota is spent (errorCode 17); nothing is sent until midnight."""

    kind = "bakong-quota-exhausted"

    def __init__(self, message: str = "", *, until=None, **kwargs) -> None:  # noqa: ANN001
        super().__init__(message, **kwargs)
        self.until = until


class BudgetExhausted(BakongRefusal):
    """Our own daily request budget for this token is spent."""

    kind = "bakong-budget-exhausted"

    def __init__(self, message: str = "", *, until=None, **kwargs) -> None:  # noqa: ANN001
        super().__init__(message, **kwargs)
        self.until = until


class PollingPaused(BakongRefusal):
    """Requests are paused until a person fixes the Bakong token."""

    kind = "bakong-paused"


class GeoBlocked(BakongRefusal):
    """Bakong answered an HTML 403: this machine's IP is outside Cambodia or the path is closed."""

    kind = "bakong-geo-blocked"


class BulkEndpointBlocked(BakongRefusal):
    """check_transaction_by_md5_list answered an HTML 403; single checks still work."""

    kind = "bakong-bulk-blocked"


class RateLimited(BakongRefusal):
    """Bakong answered HTTP 429."""

    kind = "bakong-rate-limited"

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs) -> None:  # noqa: ANN003
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class BakongServerError(BakongRefusal):
    """Bakong answered a 5xx."""

    kind = "bakong-server-error"


class BakongUnreachable(BakongRefusal):
    """Bakong could not be reached (timeout or connection error)."""

    kind = "bakong-unreachable"


class MalformedResponse(BakongRefusal):
    """Bakong's answer was not the JSON envelope we expect (HTML, empty, or wrong shape)."""

    kind = "bakong-malformed-response"


class BadRequest(BakongRefusal):
    """Bakong says our request was missing or had invalid fields (errorCode 5)."""

    kind = "bakong-bad-request"


class UnknownRefusal(BakongRefusal):
    """Bakong refused with a code or shape we do not know; treated as 'cannot ask right now'."""

    kind = "bakong-unknown-refusal"
