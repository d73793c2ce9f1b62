"""Authentication, scopes, IP blocking, trusted proxies, rate limiting (in-process), the body size
limit and error hygiene (no stack traces, nothing internal in problem documents)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from bakong_console.api import create_app
from bakong_console.api.security import hop_address
from engine.clock import ManualClock
from engine.db import journal
from engine.errors import StorageError
from engine.runtime import Engine
from tests.api.conftest import KeyFactory, client_for
from tests.api.test_payments_api import problem

STATUS = "/api/payments/status/" + "a" * 32
CREATE = "/api/payments/create"
BODY = {"amount": "1.00", "currency": "USD"}


async def test_missing_and_wrong_keys_are_401_with_a_challenge(client: httpx.AsyncClient, key: str) -> None:
    missing = problem(await client.get(STATUS), 401, "unauthorized")
    assert "X-API-Key" in missing["detail"]
    wrong = await client.get(STATUS, headers={"X-API-Key": key[:-2] + "zz"})
    problem(wrong, 401, "unauthorized")
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    problem(await client.get(STATUS, headers={"Authorization": f"Basic {key}"}), 401, "unauthorized")


async def test_bearer_and_header_keys_both_work(client: httpx.AsyncClient, key: str) -> None:
    assert (await client.get(STATUS, headers={"X-API-Key": key})).status_code == 404
    assert (await client.get(STATUS, headers={"Authorization": f"Bearer {key}"})).status_code == 404


async def test_openapi_lists_both_key_schemes_and_each_routes_scope(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/openapi.json")).json()
    assert doc["components"]["securitySchemes"] == {
        "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key (`bakong-console keys create`)."},
        "BearerKey": {"type": "http", "scheme": "bearer", "description": "The same API key as a bearer token."},
    }
    either = [{"ApiKeyHeader": []}, {"BearerKey": []}]
    status = doc["paths"]["/api/payments/status/{md5}"]["get"]
    create = doc["paths"]["/api/payments/create"]["post"]
    assert status["security"] == either and "`payments:read` scope" in status["description"]
    assert create["security"] == either and "`payments:write` scope" in create["description"]
    assert "security" not in doc["paths"]["/api/health"]["get"]


async def test_revoked_key_is_refused(client: httpx.AsyncClient, app: FastAPI, key: str) -> None:
    from tests.api.conftest import ADMIN

    assert (await client.get(STATUS, headers={"X-API-Key": key})).status_code == 404
    keys = app.state.api.keys
    (found,) = await keys.list()
    await keys.revoke(found.id, actor=ADMIN)
    problem(await client.get(STATUS, headers={"X-API-Key": key}), 401, "unauthorized")


SCOPE_CASES = [
    (["payments:read"], "POST", CREATE, False),
    (["payments:write"], "POST", CREATE, True),
    (["payments:write"], "GET", STATUS, False),
    (["payments:read"], "GET", STATUS, True),
    (["subscriptions:write"], "GET", "/api/events", False),
    (["events:read"], "GET", "/api/events", True),
    (["events:read"], "POST", "/api/payments/pay_x/cancel", False),
]


async def test_scopes_separate_creation_reads_and_feeds(client: httpx.AsyncClient, make_key: KeyFactory) -> None:
    for scopes, method, url, allowed in SCOPE_CASES:
        headers = {"X-API-Key": await make_key(scopes=scopes)}
        response = await client.request(method, url, json=BODY if url == CREATE else None, headers=headers)
        if allowed:
            assert response.status_code in (200, 201, 404), (scopes, url, response.text)
        else:
            assert "scope" in problem(response, 403, "forbidden")["detail"]


@pytest.mark.parametrize("api_overrides", [{"auth_failures_before_block": 3, "block_seconds": 600}])
async def test_an_address_failing_authentication_is_blocked(
    app: FastAPI, key: str, clock: ManualClock, engine: Engine
) -> None:
    async with client_for(app) as attacker, client_for(app, ip="198.51.100.9") as neighbour:
        for _ in range(3):
            problem(await attacker.get(STATUS, headers={"X-API-Key": "bk_guessing_" + "x" * 43}), 401, "unauthorized")
        blocked = problem(await attacker.get(STATUS, headers={"X-API-Key": key}), 429, "client-blocked")
        assert blocked["retry_after"] == 600 and (await attacker.get(STATUS)).headers["retry-after"] == "600"
        assert (await neighbour.get(STATUS, headers={"X-API-Key": key})).status_code == 404
        clock.advance(599)
        problem(await attacker.get(STATUS, headers={"X-API-Key": key}), 429, "client-blocked")
        clock.advance(2)
        assert (await attacker.get(STATUS, headers={"X-API-Key": key})).status_code == 404
    metrics = app.state.api.metrics
    assert metrics.auth_failures == 3 and metrics.ip_blocks == 1 and metrics.blocked_requests == 3


@pytest.mark.parametrize("api_overrides", [{"auth_failures_before_block": 2, "trusted_proxies": ["10.0.0.0/8"]}])
async def test_forwarded_address_is_believed_only_from_trusted_proxies(app: FastAPI, key: str, engine: Engine) -> None:
    spoof = {"X-Forwarded-For": "192.0.2.1"}
    async with client_for(app, ip="10.1.2.3") as proxy, client_for(app) as direct:
        for _ in range(2):
            await proxy.get(STATUS, headers={**spoof, "X-API-Key": "nope"})
        problem(await proxy.get(STATUS, headers={**spoof, "X-API-Key": key}), 429, "client-blocked")
        # The proxy itself and other clients behind it are not blocked.
        assert (await proxy.get(STATUS, headers={"X-Forwarded-For": "192.0.2.2", "X-API-Key": key})).status_code == 404
        # A direct client cannot pick its address by sending the header.
        for _ in range(2):
            await direct.get(STATUS, headers={"X-Forwarded-For": "192.0.2.50", "X-API-Key": "nope"})
        problem(await direct.get(STATUS, headers={"X-API-Key": key}), 429, "client-blocked")
        assert (await proxy.get(STATUS, headers={"X-Forwarded-For": "192.0.2.50", "X-API-Key": key})).status_code == 404
        created = await proxy.post(CREATE, json=BODY, headers={"X-Forwarded-For": "192.0.2.77, 10.9.9.9", "X-API-Key": key})
    assert created.status_code == 201
    async with engine.storage.read() as tx:
        (entry,) = await journal.list_audit(tx, action="payment.create")
    assert entry.source_ip == "192.0.2.77"


@pytest.mark.parametrize(
    ("hop", "address"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:5555", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[::1]:443", "::1"),
        (" 198.51.100.9:80 ", "198.51.100.9"),
        ("192.0.2.1:", None),
        ("192.0.2.1:http", None),
        ("[192.0.2.1]:80", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]443", None),
        ("unknown", None),
        ("example.com:443", None),
    ],
)
def test_forwarded_hops_are_read_with_or_without_a_port(hop: str, address: str | None) -> None:
    assert hop_address(hop) == address


@pytest.mark.parametrize("api_overrides", [{"auth_failures_before_block": 2, "trusted_proxies": ["10.0.0.0/8"]}])
async def test_a_forwarded_hop_with_a_port_is_charged_to_its_client_not_the_proxy(app: FastAPI, key: str, engine: Engine) -> None:
    """Issue 20.3: ``ip:port`` and ``[v6]:port`` hops were charged to the proxy's own address."""
    async with client_for(app, ip="10.1.2.3") as proxy:
        for forwarded in ("192.0.2.1:5555", "[2001:db8::7]:443"):
            for _ in range(2):
                problem(await proxy.get(STATUS, headers={"X-Forwarded-For": forwarded, "X-API-Key": "nope"}), 401, "unauthorized")
            problem(await proxy.get(STATUS, headers={"X-Forwarded-For": forwarded, "X-API-Key": key}), 429, "client-blocked")
        # The proxy and the other clients behind it still get through.
        assert (await proxy.get(STATUS, headers={"X-API-Key": key})).status_code == 404
        assert (await proxy.get(STATUS, headers={"X-Forwarded-For": "192.0.2.2:1", "X-API-Key": key})).status_code == 404
        created = await proxy.post(CREATE, json=BODY, headers={"X-Forwarded-For": "[2001:db8::9]:8443, 10.9.9.9:80", "X-API-Key": key})
    assert created.status_code == 201
    async with engine.storage.read() as tx:
        (entry,) = await journal.list_audit(tx, action="payment.create")
    assert entry.source_ip == "2001:db8::9"


@pytest.mark.parametrize("api_overrides", [{"auth_failures_before_block": 2, "trusted_proxies": ["10.0.0.0/8"]}])
async def test_an_unreadable_forwarded_hop_is_refused_not_blamed_on_the_proxy(app: FastAPI, key: str) -> None:
    async with client_for(app, ip="10.1.2.3") as proxy, client_for(app) as direct:
        for _ in range(5):
            refused = problem(await proxy.get(STATUS, headers={"X-Forwarded-For": "not-an-ip", "X-API-Key": "nope"}), 400, "bad-request")
        assert "not-an-ip" in refused["detail"]
        assert (await proxy.get(STATUS, headers={"X-Forwarded-For": "192.0.2.1, garbage", "X-API-Key": key})).status_code == 400
        # Nobody was charged: the proxy, its clients and direct clients all still get through.
        assert (await proxy.get(STATUS, headers={"X-API-Key": key})).status_code == 404
        assert (await proxy.get(STATUS, headers={"X-Forwarded-For": "192.0.2.1", "X-API-Key": key})).status_code == 404
        # A client talking directly is not a proxy: its header is ignored, not refused.
        assert (await direct.get(STATUS, headers={"X-Forwarded-For": "not-an-ip", "X-API-Key": key})).status_code == 404
    assert app.state.api.metrics.auth_failures == 0


@pytest.mark.parametrize("api_overrides", [{"auth_failures_before_block": 2, "block_seconds": 600}])
async def test_failed_logins_and_blocks_are_logged_and_blocks_audited(
    app: FastAPI, key: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 18.13: a log line per failure and per block (address, key prefix, reason), an audit
    row per block; never the presented key itself."""
    wrong = "bk_abcdefgh_" + "s" * 43
    caplog.set_level("WARNING", logger="bakong_console.api.security")
    async with client_for(app, ip="192.0.2.66") as attacker:
        problem(await attacker.get(STATUS), 401, "unauthorized")
        problem(await attacker.get(STATUS, headers={"X-API-Key": wrong}), 401, "unauthorized")
        problem(await attacker.get(STATUS, headers={"X-API-Key": key}), 429, "client-blocked")
    lines = [r.getMessage() for r in caplog.records if r.name == "bakong_console.api.security"]
    assert lines == [
        "API authentication failed: address=192.0.2.66 key=(none) reason=no API key",
        "API authentication failed: address=192.0.2.66 key=bk_abcdefgh reason=invalid API key",
        "API address blocked: address=192.0.2.66 key=bk_abcdefgh reason=invalid API key failures=2 seconds=600",
    ]
    assert "s" * 43 not in caplog.text
    async with engine.storage.read() as tx:
        (entry,) = await journal.list_audit(tx, action="api.client_blocked")
    assert (entry.actor_type, entry.subject_type, entry.subject_id, entry.source_ip) == ("system", "client_ip", "192.0.2.66", "192.0.2.66")
    assert entry.after == {"key_prefix": "bk_abcdefgh", "failures": 2, "block_seconds": 600}
    assert entry.reason == "invalid API key"


@pytest.mark.parametrize("api_overrides", [{"rate_limit_per_minute": 3}])
async def test_rate_limit_per_key_answers_429_with_retry_after(
    app: FastAPI, make_key: KeyFactory, clock: ManualClock
) -> None:
    first = {"X-API-Key": await make_key("first")}
    second = {"X-API-Key": await make_key("second")}
    async with client_for(app) as client:
        remaining = [int((await client.get(STATUS, headers=first)).headers["ratelimit-remaining"]) for _ in range(3)]
        assert remaining == [2, 1, 0]
        refused = await client.get(STATUS, headers=first)
        body = problem(refused, 429, "rate-limited")
        assert int(refused.headers["retry-after"]) == body["retry_after"] >= 1
        assert (await client.get(STATUS, headers=second)).status_code == 404
        clock.advance(body["retry_after"])
        assert (await client.get(STATUS, headers=first)).status_code == 404
        # Sliding window: shortly after the minute turns, the previous minute still counts.
        clock.advance(60)
        results = [(await client.get(STATUS, headers=first)).status_code for _ in range(4)]
        assert results.count(429) >= 1
    assert app.state.api.metrics.rate_limited >= 2


@pytest.mark.parametrize("api_overrides", [{"max_body_bytes": 200}])
async def test_request_body_size_is_limited(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    big = {"amount": "1.00", "currency": "USD", "description": "x" * 300}
    body = problem(await client.post(CREATE, json=big, headers=auth), 413, "payload-too-large")
    assert "200" in body["detail"]

    async def chunks():  # no Content-Length: the limit applies while streaming
        yield b'{"amount": "1.00", "currency": "USD", "description": "'
        for _ in range(10):
            yield b"y" * 50
        yield b'"}'

    streamed = await client.post(CREATE, content=chunks(), headers={**auth, "content-type": "application/json"})
    problem(streamed, 413, "payload-too-large")
    assert (await client.post(CREATE, json=BODY, headers=auth)).status_code == 201


async def test_unexpected_failures_answer_a_bare_500_problem(engine: Engine, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(engine)

    async def broken(md5: str) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(engine.payments, "get_by_md5", broken)
    async with client_for(app, raise_app_exceptions=False) as client:
        response = await client.get(STATUS, headers={"X-API-Key": key})
    problem(response, 500, "internal-error")
    assert "hunter2" not in response.text and "RuntimeError" not in response.text


async def test_storage_failures_do_not_reveal_the_database(engine: Engine, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(engine)

    async def down(md5: str) -> None:
        raise StorageError("database postgresql://db.internal:5432/bakong: connection refused")

    monkeypatch.setattr(engine.payments, "get_by_md5", down)
    async with client_for(app) as client:
        response = await client.get(STATUS, headers={"X-API-Key": key})
    problem(response, 503, "storage-error")
    assert "db.internal" not in response.text


async def test_unknown_paths_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    problem(await client.get("/api/nowhere"), 404, "not-found")
    problem(await client.delete(CREATE), 405, "method-not-allowed")
    problem(await client.get("/api/problems/no-such-kind"), 404, "not-found")
    described = (await client.get("/api/problems/idempotency-conflict")).json()["data"]
    assert described == {
        "type": "/api/problems/idempotency-conflict",
        "title": "The idempotency key was already used for a different request.",
        "status": 409,
    }


async def test_request_id_is_echoed_when_sane(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/health", headers={"X-Request-ID": "trace-42"})).headers["x-request-id"] == "trace-42"
    odd = (await client.get("/api/health", headers={"X-Request-ID": "bad id; drop"})).headers["x-request-id"]
    assert odd != "bad id; drop" and len(odd) == 16


@pytest.mark.parametrize("api_overrides", [{"rate_limit_per_minute": 0}])
async def test_a_zero_rate_limit_means_no_limit(client: httpx.AsyncClient, key: str) -> None:
    for _ in range(5):
        response = await client.get(STATUS, headers={"X-API-Key": key})
        assert response.status_code == 404 and "ratelimit-limit" not in response.headers
