"""The Bakong token: what we can learn from it locally, how it is kept, and how it stays secret.

Bakong tokens are HS256 JWTs whose payload carries ``iat`` and ``exp`` (90 days apart in every
real token seen). We read ``exp`` locally and never spend a metered request to learn it. We cannot
verify the signature (only NBC holds the key), and we do not need to.

The token itself is wrapped in ``BakongToken`` so that ``repr``/``str``/logs only ever show its
fingerprint: the first 12 hex digits of its SHA-256. The fingerprint is also the key of the request
ledger, so every process sharing one token shares one budget.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

__all__ = [
    "NO_TOKEN_FINGERPRINT",
    "BakongToken",
    "InMemoryTokenStore",
    "TokenInfo",
    "TokenStore",
    "read_jwt_claims",
    "token_fingerprint",
]

#: The ledger key used for requests sent without any token (e.g. renew_token before the first one).
NO_TOKEN_FINGERPRINT = "no-token"


def token_fingerprint(token: str) -> str:
    """A short, stable, non-reversible name for a token: 12 hex digits of its SHA-256."""
    if not token:
        return NO_TOKEN_FINGERPRINT
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def read_jwt_claims(token: str) -> dict[str, object] | None:
    """The JWT payload, unverified; None when the token is not a JWT (e.g. a relay's own token)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(_b64url_decode(parts[1]))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _epoch(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class TokenInfo:
    """What the token says about itself, read locally at ``checked_at``."""

    fingerprint: str
    issued_at: datetime | None
    expires_at: datetime | None
    checked_at: datetime

    @property
    def is_jwt(self) -> bool:
        return self.expires_at is not None or self.issued_at is not None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= self.checked_at

    @property
    def seconds_left(self) -> float | None:
        if self.expires_at is None:
            return None
        return (self.expires_at - self.checked_at).total_seconds()

    @property
    def days_left(self) -> int | None:
        """Whole days until expiry (0 on the last day, negative once expired); None if unknown."""
        seconds = self.seconds_left
        if seconds is None:
            return None
        return int(seconds // 86400)


class BakongToken:
    """A Bakong token that never shows itself: repr and str give only its fingerprint."""

    __slots__ = ("_value", "fingerprint", "issued_at", "expires_at")

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise ValueError("empty token")
        self._value = value
        self.fingerprint = token_fingerprint(value)
        claims = read_jwt_claims(value) or {}
        self.issued_at = _epoch(claims.get("iat"))
        self.expires_at = _epoch(claims.get("exp"))

    def reveal(self) -> str:
        """The token itself, for the Authorization header and the token store only."""
        return self._value

    def info(self, now: datetime) -> TokenInfo:
        return TokenInfo(self.fingerprint, self.issued_at, self.expires_at, now)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BakongToken) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"BakongToken(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self) -> object:  # pickling would write the secret somewhere unplanned
        raise TypeError("BakongToken is not picklable")


class TokenStore(Protocol):
    """Where the current Bakong token is kept (the storage layer encrypts it at rest)."""

    async def load(self) -> str | None:
        """The stored token, or None when none was saved yet."""

    async def save(self, token: str) -> None:
        """Replace the stored token atomically (after a renewal or a manual import)."""


class InMemoryTokenStore:
    """A token store for standalone use and tests."""

    def __init__(self, token: str | None = None) -> None:
        self._token = token
        self.saves = 0

    async def load(self) -> str | None:
        return self._token

    async def save(self, token: str) -> None:
        self._token = token
        self.saves += 1

    def __repr__(self) -> str:
        fp = token_fingerprint(self._token) if self._token else None
        return f"InMemoryTokenStore(fingerprint={fp!r})"
