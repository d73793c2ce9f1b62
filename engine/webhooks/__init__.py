"""Webhooks in the Standard Webhooks format: signing, verification, the delivery policy, sending.

For a receiver (the main backend, or anyone testing an integration)::

    from engine.webhooks import verify
    event = verify(raw_body, request.headers, "whsec_...")   # raises WebhookVerificationError

Which events go where, and when, is decided by ``engine.services.webhooks`` (endpoints, replay,
recover) and ``engine.workers.deliverer`` (fan-out and retries).
"""

from engine.webhooks.policy import MAX_ATTEMPTS, RETRY_DELAYS, AttemptResult, next_delay, parse_retry_after
from engine.webhooks.signing import SECRET_PREFIX, TOLERANCE, generate_secret, secret_key, sign, verify

__all__ = [
    "MAX_ATTEMPTS",
    "RETRY_DELAYS",
    "SECRET_PREFIX",
    "TOLERANCE",
    "AttemptResult",
    "generate_secret",
    "next_delay",
    "parse_retry_after",
    "secret_key",
    "sign",
    "verify",
]
