"""/api/events (the pull feed), /api/health (no key, nothing secret) and /metrics (Prometheus)."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from engine import events as ev
from engine.clock import ManualClock
from engine.errors import StorageError
from engine.runtime import Engine
from tests.api.conftest import KeyFactory
from tests.api.test_payments_api import create, problem
from tests.support.engine import run_for


async def test_events_feed_pages_by_sequence(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    first = await create(client, auth, reference="e-1")
    second = await create(client, auth, reference="e-2")
    await client.post(f"/api/payments/{first['id']}/cancel", headers=auth)
    response = await client.get("/api/events", params={"since": 0}, headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert [(e["type"], e["subject_id"]) for e in body["data"]] == [
        (ev.PAYMENT_CREATED, first["id"]),
        (ev.PAYMENT_CREATED, second["id"]),
        (ev.PAYMENT_CANCELLED, first["id"]),
    ]
    sequences = [e["sequence"] for e in body["data"]]
    assert sequences == sorted(sequences) and body["meta"]["next_since"] == sequences[-1]
    assert body["data"][2]["data"]["status"] == "CANCELLED" and body["data"][0]["id"].startswith("msg_")

    page = (await client.get("/api/events", params={"since": sequences[0], "limit": 1}, headers=auth)).json()
    assert [e["sequence"] for e in page["data"]] == [sequences[1]]
    done = (await client.get("/api/events", params={"since": sequences[-1]}, headers=auth)).json()
    assert done["data"] == [] and done["meta"]["next_since"] == sequences[-1]
    only = (await client.get("/api/events", params={"type": ev.PAYMENT_CANCELLED}, headers=auth)).json()
    assert [e["type"] for e in only["data"]] == [ev.PAYMENT_CANCELLED]


async def test_events_feed_validation(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for params in ({"since": -1}, {"since": 2**63}, {"limit": 0}, {"type": "payment.exploded"}):
        problem(await client.get("/api/events", params=params, headers=auth), 422, "invalid-input")


async def test_health_is_public_and_reveals_nothing_secret(client: httpx.AsyncClient, engine: Engine) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "ok" and data["reasons"] == []
    assert data["database"] == {"ok": True, "engine": engine.storage.db.dialect}
    assert data["bakong"]["sandbox"] is True and data["bakong"]["token"]["state"] == "valid"
    assert data["bakong"]["budget"]["remaining_today"] > 0
    assert {w["name"]: w["held"] for w in data["workers"]}["poller"] is True
    assert data["outbox"]["pending_webhook_deliveries"] == 0
    text = response.text
    info = engine.client.token_info()
    for secret in (engine.holder, engine.sandbox.token, info.fingerprint, engine.storage.db.describe(), engine.settings.security.data_key):
        assert secret not in text


async def test_health_degraded_when_polling_is_paused_and_down_without_database(
    client: httpx.AsyncClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.poller_state, "paused_reason", "Bakong token expired")
    degraded = await client.get("/api/health")
    assert degraded.status_code == 200
    assert degraded.json()["data"]["status"] == "degraded" and degraded.json()["data"]["bakong"]["polling"] == "paused"
    assert degraded.json()["data"]["reasons"] == ["polling is paused: Bakong refused the token"]
    assert "token expired" not in degraded.text

    async def unreachable() -> None:
        raise StorageError("database postgresql://db.internal/x: connection refused")

    monkeypatch.setattr(engine.storage.db, "ping", unreachable)
    down = await client.get("/api/health")
    assert down.status_code == 503 and down.headers["content-type"] == "application/json"
    body = down.json()["data"]
    assert body["status"] == "down" and body["database"]["ok"] is False and "db.internal" not in down.text
    assert body["reasons"][0] == "the database is unreachable"


@pytest.mark.parametrize(
    "fault", [{"error_rate": 1.0}, {"geo_blocked": True}], ids=["bakong-5xx", "geo-403"]
)
async def test_health_degraded_while_bakong_answers_no_check_beyond_the_threshold(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock, fault: dict[str, object]
) -> None:
    threshold = engine.settings.bakong.unhealthy_after_seconds
    await create(client, auth)
    await run_for(engine, clock, 8)
    assert engine.poller_state.last_answer_at is not None
    engine.sandbox.faults = engine.sandbox.faults.updated(fault)
    await run_for(engine, clock, threshold - 20, step=5)
    early = (await client.get("/api/health")).json()["data"]
    # A short outage is the poller's own back-off, not yet a degraded service.
    assert early["status"] == "ok" and early["reasons"] == [] and early["bakong"]["failing_since"] is not None
    await run_for(engine, clock, 40, step=5)
    response = await client.get("/api/health")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "degraded", data
    assert len(data["reasons"]) == 1 and data["reasons"][0].startswith("Bakong has answered no check for ")
    assert ("bakong-geo-blocked" if "geo_blocked" in fault else "bakong-server-error") in data["reasons"][0]
    engine.sandbox.faults = engine.sandbox.faults.updated({"error_rate": 0.0, "geo_blocked": False})
    await run_for(engine, clock, 400, step=10)  # the poller's back-off ends and a check is answered
    recovered = (await client.get("/api/health")).json()["data"]
    assert recovered["status"] == "ok" and recovered["reasons"] == [] and recovered["bakong"]["failing_since"] is None


def _sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in metrics"
    return float(match.group(1))


@pytest.mark.parametrize("api_overrides", [{"rate_limit_per_minute": 4}])
async def test_metrics_in_prometheus_text(app: FastAPI, client: httpx.AsyncClient, make_key: KeyFactory) -> None:
    auth = {"X-API-Key": await make_key()}
    first = await create(client, auth, reference="m-1")
    await create(client, auth, reference="m-2")
    await client.post(f"/api/payments/{first['id']}/cancel", headers=auth)
    await client.get(f"/api/payments/status/{first['md5']}", headers=auth)
    problem(await client.get(f"/api/payments/status/{first['md5']}", headers=auth), 429, "rate-limited")
    await client.get("/api/payments/status/" + "c" * 32, headers={"X-API-Key": "wrong"})
    await client.get("/no/such/path/123")
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert _sample(text, "bakong_console_payments", '{status="PENDING"}') == 1
    assert _sample(text, "bakong_console_payments", '{status="CANCELLED"}') == 1
    assert _sample(text, "bakong_console_payments", '{status="PAID"}') == 0
    assert _sample(text, "bakong_console_bakong_requests_remaining_today") > 0
    assert _sample(text, "bakong_console_webhook_backlog") == 0
    assert _sample(text, "bakong_console_api_rate_limited_total") == 1
    assert _sample(text, "bakong_console_api_auth_failures_total") == 1
    assert _sample(text, "bakong_console_api_requests_total", '{method="POST",route="/api/payments/create",status="201"}') == 2
    assert _sample(text, "bakong_console_api_requests_total", '{method="GET",route="/api/payments/status/{md5}",status="429"}') == 1
    assert _sample(text, "bakong_console_api_requests_total", '{method="GET",route="(unmatched)",status="404"}') == 1
    assert _sample(text, "bakong_console_api_request_duration_seconds_count", '{route="/api/payments/create"}') == 2
    assert "/no/such/path" not in text
    for line in text.splitlines():
        assert line.startswith("# ") or re.match(r'^[a-z_]+(\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$', line), line


async def test_health_and_metrics_show_the_webhook_backlog(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock
) -> None:
    from tests.api.conftest import ADMIN

    await engine.webhooks.add_endpoint("http://127.0.0.1:9/hooks", actor=ADMIN)  # nothing listens there
    await create(client, auth, reference="w-1")
    await run_for(engine, clock, 2)
    outbox = (await client.get("/api/health")).json()["data"]["outbox"]
    assert outbox["pending_webhook_deliveries"] == 1 and outbox["webhook_endpoints"] == 1
    assert outbox["failing_endpoints"] == 1 and outbox["disabled_endpoints"] == 0
    assert _sample((await client.get("/metrics")).text, "bakong_console_webhook_backlog") == 1


async def test_api_docs_load_every_asset_from_this_server_not_a_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/api/") for s in sources), sources  # nothing from another host
    assert "url: '/api/openapi.json'" in page.text
    for source, kind, marker in (
        ("/api/docs/assets/swagger-ui-bundle.js", "javascript", "SwaggerUIBundle"),
        ("/api/docs/assets/swagger-ui.css", "text/css", ".swagger-ui"),
    ):
        assert source in sources
        asset = await client.get(source)
        assert asset.status_code == 200 and kind in asset.headers["content-type"] and marker in asset.text
    assert (await client.get("/api/docs/assets/favicon.png")).content.startswith(b"\x89PNG")
