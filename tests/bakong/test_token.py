"""The token, read locally: expiry, days left, fingerprint, and never shown."""

from __future__ import annotations

import base64
import json
import pickle
import random
from datetime import UTC, datetime, timedelta

import pytest

from engine.bakong.sandbox import TOKEN_LIFETIME_SECONDS, issue_token, verify_token
from engine.bakong.token import (
    NO_TOKEN_FINGERPRINT,
    BakongToken,
    InMemoryTokenStore,
    read_jwt_claims,
    token_fingerprint,
)

NOW = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


def _jwt(payload: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.c2lnbmF0dXJl"


def test_expiry_and_days_left_come_from_the_jwt_itself() -> None:
    iat = int(NOW.timestamp())
    token = BakongToken(_jwt({"data": {"id": "0123456789abcdef"}, "iat": iat, "exp": iat + 7_776_000}))
    info = token.info(NOW + timedelta(days=10, hours=5))
    assert info.issued_at == NOW
    assert info.expires_at == NOW + timedelta(days=90)
    assert info.days_left == 79
    assert not info.expired
    expired = token.info(NOW + timedelta(days=90, seconds=1))
    assert expired.expired and expired.days_left == -1


def test_a_token_that_is_not_a_jwt_has_no_known_expiry() -> None:
    info = BakongToken("rbk_relay_token_value").info(NOW)
    assert info.expires_at is None and info.days_left is None and not info.expired and not info.is_jwt
    assert read_jwt_claims("a.b") is None
    assert read_jwt_claims("x.!!!.y") is None


def test_fingerprint_is_a_short_sha256_and_the_token_never_shows() -> None:
    secret = _jwt({"iat": 1, "exp": 2})
    token = BakongToken(secret)
    assert token.fingerprint == token_fingerprint(secret)
    assert len(token.fingerprint) == 12 and int(token.fingerprint, 16) >= 0
    assert token_fingerprint("") == NO_TOKEN_FINGERPRINT
    for shown in (repr(token), str(token), f"{token}", repr(token.info(NOW))):
        assert secret not in shown
        assert secret.split(".")[1] not in shown
    assert token.reveal() == secret
    with pytest.raises(TypeError):
        pickle.dumps(token)
    with pytest.raises(ValueError):
        BakongToken("   ")


async def test_in_memory_token_store_round_trips_without_showing_the_token() -> None:
    store = InMemoryTokenStore()
    assert await store.load() is None
    await store.save("secret-token-value")
    assert await store.load() == "secret-token-value"
    assert store.saves == 1
    assert "secret-token-value" not in repr(store)


def test_sandbox_tokens_are_hs256_jwts_valid_for_exactly_90_days() -> None:
    secret = b"k" * 32
    token = issue_token(secret, now=NOW, rng=random.Random(1))
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    claims = read_jwt_claims(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert claims is not None
    assert claims["exp"] - claims["iat"] == TOKEN_LIFETIME_SECONDS == 7_776_000
    assert len(claims["data"]["id"]) == 16
    assert verify_token(token, secret)
    assert not verify_token(token, b"other")
    assert not verify_token(token[:-2] + "xx", secret)
    assert BakongToken(token).info(NOW).days_left == 90
