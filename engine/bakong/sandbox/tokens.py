"""The sandbox's own Bakong-like tokens: HS256 JWTs with ``{"data": {"id": …}, "iat", "exp"}``.

Real Bakong tokens live exactly 90 days (``exp - iat`` = 7,776,000 s); so do these.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from datetime import datetime

__all__ = ["TOKEN_LIFETIME_SECONDS", "issue_token", "verify_token"]

TOKEN_LIFETIME_SECONDS = 90 * 86400


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def issue_token(secret: bytes, *, now: datetime, rng: random.Random, lifetime_seconds: int = TOKEN_LIFETIME_SECONDS) -> str:
    """A fresh HS256 JWT issued at ``now``."""
    iat = int(now.timestamp())
    header = {"alg": "HS256", "typ": "JWT"}
    payload = {"data": {"id": f"{rng.getrandbits(64):016x}"}, "iat": iat, "exp": iat + lifetime_seconds}
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(payload, separators=(",", ":")).encode())
    )
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def verify_token(token: str, secret: bytes) -> bool:
    """Whether ``token`` carries a valid HS256 signature under ``secret`` (expiry not checked)."""
    head, _, signature = token.rpartition(".")
    if not head or "." not in head:
        return False
    expected = _b64(hmac.new(secret, head.encode("ascii", "replace"), hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature)
