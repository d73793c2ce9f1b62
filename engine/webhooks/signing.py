"""Standard Webhooks signatures: ``whsec_`` secrets, signing what we send, verifying what we get.

A message is signed as ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) where the
key is the base64-decoded part of the ``whsec_`` secret. While a secret is being rotated the
``webhook-signature`` header carries one signature per valid secret, separated by spaces, so a
receiver holding either secret accepts the message. Receivers reject timestamps more than five
minutes away from their own clock (old ones are replays, new ones are forged or skewed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as _secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.errors import WebhookError, WebhookVerificationError

__all__ = [
    "MAX_SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "SECRET_PREFIX",
    "TOLERANCE",
    "generate_secret",
    "secret_key",
    "sign",
    "signature",
    "verify",
]

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: How far a message's timestamp may be from the receiver's clock, either way.
TOLERANCE = timedelta(minutes=5)
_DEFAULT_SECRET_BYTES = 32


def generate_secret(nbytes: int = _DEFAULT_SECRET_BYTES) -> str:
    """A new ``whsec_`` secret of ``nbytes`` random bytes from the OS (never a seeded source)."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise WebhookError(f"a webhook secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes, not {nbytes}")
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str | bytes) -> bytes:
    """The HMAC key of a ``whsec_`` secret (raw bytes pass through after the length check)."""
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret.strip()
        if not text.startswith(SECRET_PREFIX):
            raise WebhookError(f"a webhook secret starts with {SECRET_PREFIX!r}")
        try:
            key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookError("the webhook secret is not valid base64 after 'whsec_'") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise WebhookError(f"a webhook secret decodes to {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes, this one to {len(key)}")
    return key


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``id.timestamp.body`` with the decoded key."""
    mac = hmac.new(key, b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def sign(msg_id: str, timestamp: int, body: bytes | str, secrets: Sequence[str | bytes] | str | bytes) -> str:
    """The ``webhook-signature`` header value: one signature per secret, space-separated."""
    keys = [secret_key(s) for s in _secret_list(secrets)]
    if not keys:
        raise WebhookError("no secret to sign with")
    data = _as_bytes(body)
    return " ".join(signature(k, msg_id, int(timestamp), data) for k in keys)


def _secret_list(secrets: Sequence[str | bytes] | str | bytes) -> list[str | bytes]:
    if isinstance(secrets, str | bytes):
        return [secrets]
    return list(secrets)


def _header(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> str | None:
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key.lower() == name:
            return value
    return None


def verify(
    payload: bytes | str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    secret: str | bytes | Sequence[str | bytes],
    *,
    now: datetime | None = None,
    tolerance: timedelta = TOLERANCE,
) -> Any:
    """Check a received webhook and return its parsed JSON body.

    ``payload`` is the raw request body exactly as received; ``headers`` the request headers (any
    case); ``secret`` one ``whsec_`` secret or several (during your own rotation). Raises
    ``WebhookVerificationError`` when a header is missing, the timestamp is outside ±5 minutes of
    ``now`` (default: the system clock), or no signature matches; ``WebhookError`` when a secret
    itself is malformed.
    """
    keys = [secret_key(s) for s in _secret_list(secret)]
    if not keys:
        raise WebhookError("no secret to verify with")
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    sent = _header(headers, "webhook-signature")
    if not msg_id or not stamp or not sent:
        missing = [n for n, v in (("webhook-id", msg_id), ("webhook-timestamp", stamp), ("webhook-signature", sent)) if not v]
        raise WebhookVerificationError(f"missing header {', '.join(missing)}")
    try:
        timestamp = int(stamp.strip())
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a whole number of seconds") from None
    current = (now or datetime.now(UTC)).timestamp()
    if timestamp < current - tolerance.total_seconds():
        raise WebhookVerificationError("message timestamp too old")
    if timestamp > current + tolerance.total_seconds():
        raise WebhookVerificationError("message timestamp too new")
    body = _as_bytes(payload)
    offered: list[bytes] = []
    for item in sent.split():
        version, _, value = item.partition(",")
        if version != "v1":
            continue
        try:
            offered.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    matched = False
    for key in keys:
        expected = hmac.new(key, b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body), hashlib.sha256).digest()
        for candidate in offered:
            # compare every pair: no early exit that would time which signature matched
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookVerificationError("no matching signature")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the signed body is not JSON") from None
