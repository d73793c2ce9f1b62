"""Standard Webhooks signing and verification, against the reference ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceVerificationError

from engine.errors import WebhookError, WebhookVerificationError
from engine.webhooks import RETRY_DELAYS, generate_secret, next_delay, parse_retry_after, secret_key, sign, verify
from engine.webhooks.message import encode_body
from engine.webhooks.policy import AttemptResult

NOW = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
BODY = encode_body("payment.completed", NOW, {"id": "pay_1", "amount": "12.50", "currency": "USD", "note": "ស្រូវ"})


def headers_for(msg_id: str, timestamp: int, body: bytes, secrets: list[str]) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": sign(msg_id, timestamp, body, secrets)}


def test_generated_secrets_are_whsec_base64_of_24_to_64_random_bytes() -> None:
    secrets = {generate_secret() for _ in range(20)}
    assert len(secrets) == 20
    for s in secrets:
        assert s.startswith("whsec_")
        assert len(base64.b64decode(s[6:], validate=True)) == 32
    assert len(secret_key(generate_secret(24))) == 24
    assert len(secret_key(generate_secret(64))) == 64
    for bad in (23, 65):
        with pytest.raises(WebhookError):
            generate_secret(bad)


def test_reference_package_verifies_our_signature() -> None:
    secret = generate_secret()
    now = datetime.now(UTC).replace(microsecond=0)  # the reference checks against the system clock
    headers = headers_for("msg_abc", int(now.timestamp()), BODY, [secret])
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    # and our signature is byte-for-byte the reference's
    assert headers["webhook-signature"] == Webhook(secret).sign("msg_abc", now, BODY.decode())


def test_rotation_header_carries_one_signature_per_secret_and_each_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    stamp = int(datetime.now(UTC).timestamp())  # the reference checks against the system clock
    headers = headers_for("msg_rot", stamp, BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for s in (old, new):
        Webhook(s).verify(BODY, headers)
        assert verify(BODY, headers, s)["type"] == "payment.completed"
    with pytest.raises(ReferenceVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_verify_accepts_the_reference_signature_and_several_own_secrets() -> None:
    secret = generate_secret()
    headers = {
        "Webhook-Id": "msg_ref",
        "Webhook-Timestamp": str(int(NOW.timestamp())),
        "Webhook-Signature": Webhook(secret).sign("msg_ref", NOW, BODY.decode()),
    }
    assert verify(BODY, headers, [generate_secret(), secret], now=NOW)["data"]["id"] == "pay_1"
    assert verify(BODY.decode(), list(headers.items()), secret, now=NOW)["data"]["note"] == "ស្រូវ"


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamps_outside_five_minutes_are_rejected(offset: int) -> None:
    secret = generate_secret()
    stamp = int(NOW.timestamp()) + offset
    headers = headers_for("msg_t", stamp, BODY, [secret])
    with pytest.raises(WebhookVerificationError, match="too old" if offset < 0 else "too new"):
        verify(BODY, headers, secret, now=NOW)
    # inside the window on either side it passes
    inside = headers_for("msg_t", int(NOW.timestamp()) + (299 if offset > 0 else -299), BODY, [secret])
    assert verify(BODY, inside, secret, now=NOW)


def test_tampering_and_wrong_secrets_and_missing_headers_are_rejected() -> None:
    secret = generate_secret()
    stamp = int(NOW.timestamp())
    headers = headers_for("msg_x", stamp, BODY, [secret])
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(BODY.replace(b"12.50", b"99.50"), headers, secret, now=NOW)
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(BODY, {**headers, "webhook-id": "msg_y"}, secret, now=NOW)
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(BODY, {**headers, "webhook-timestamp": str(stamp + 1)}, secret, now=NOW)
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(BODY, headers, generate_secret(), now=NOW)
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(BODY, {**headers, "webhook-signature": "v2," + headers["webhook-signature"][3:]}, secret, now=NOW)
    with pytest.raises(WebhookVerificationError, match="missing header webhook-signature"):
        verify(BODY, {k: v for k, v in headers.items() if k != "webhook-signature"}, secret, now=NOW)
    with pytest.raises(WebhookVerificationError, match="whole number"):
        verify(BODY, {**headers, "webhook-timestamp": "soon"}, secret, now=NOW)


def test_malformed_secrets_are_configuration_errors() -> None:
    for bad in ("", "not-a-secret", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(WebhookError) as info:
            secret_key(bad)
        assert not isinstance(info.value, WebhookVerificationError)


def test_body_is_type_timestamp_data_and_stable() -> None:
    body = encode_body("payment.timeout", datetime(2026, 1, 15, 3, 0, 1, 500000, tzinfo=UTC), {"id": "pay_2"})
    assert body == b'{"type":"payment.timeout","timestamp":"2026-01-15T03:00:01.500000Z","data":{"id":"pay_2"}}'


def test_retry_schedule_with_jitter_stays_within_twenty_percent() -> None:
    rng = random.Random(3)
    assert next_delay(0, rng=rng, jitter=0.2) == 0.0
    for attempts, base in enumerate(RETRY_DELAYS):
        if not base:
            continue
        delays = [next_delay(attempts, rng=rng, jitter=0.2) for _ in range(50)]
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len(set(delays)) > 1
    assert [next_delay(n, rng=rng, jitter=0.0) for n in range(10)] == list(map(float, RETRY_DELAYS))
    assert next_delay(10, rng=rng, jitter=0.2) is None


def _result(status: int | None, retry_after: float | None = None) -> AttemptResult:
    return AttemptResult("dlv", "ep", NOW, 1.0, status, None, None if status else "refused", retry_after)


def test_backpressure_answers_honour_retry_after_and_wait_at_least_a_minute() -> None:
    rng = random.Random(1)
    assert next_delay(1, rng=rng, jitter=0.0, result=_result(429, 120.0)) == 120.0
    assert next_delay(1, rng=rng, jitter=0.0, result=_result(503)) == 60.0
    assert next_delay(1, rng=rng, jitter=0.0, result=_result(500)) == 5.0
    # the schedule still applies when it is longer than Retry-After
    assert next_delay(3, rng=rng, jitter=0.0, result=_result(502, 10.0)) == 1800.0
    assert next_delay(1, rng=rng, jitter=0.0, result=_result(504, 10 * 86400.0)) == 86400.0


def test_retry_after_parsing() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    http_date = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(http_date, NOW) == 90.0
    assert parse_retry_after((NOW - timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT"), NOW) == 0.0
    for junk in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(junk, NOW) is None
