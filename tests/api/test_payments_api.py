"""/api/payments on both databases: create (idempotent, exact amounts, strict validation), status,
monitor (long-poll), bulk check, history with cursor pagination, cancel; writes audited with the
calling key and its address."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from engine import events as ev
from engine.clock import ManualClock
from engine.db import journal
from engine.records import PaymentStatus
from engine.runtime import Engine
from tests.api.conftest import ADMIN, CLIENT_IP, KeyFactory
from tests.support.engine import run_for

CREATE = "/api/payments/create"


def problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"/api/problems/{kind}" and body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


async def create(client: httpx.AsyncClient, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"amount": "12.50", "currency": "USD", **fields}
    response = await client.post(CREATE, json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["data"]


# --- create --------------------------------------------------------------------------------------


async def test_create_answers_the_payment_and_audits_the_key_and_address(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine
) -> None:
    response = await client.post(
        CREATE,
        json={"amount": "12.50", "currency": "USD", "reference": "order-1", "bill_number": "INV-1", "customer_id": "c-9"},
        headers=auth,
    )
    assert response.status_code == 201
    assert response.headers["ratelimit-limit"] == "100" and response.headers["ratelimit-remaining"] == "99"
    body = response.json()
    assert set(body) == {"data", "meta"} and body["meta"]["request_id"] == response.headers["x-request-id"]
    data = body["data"]
    assert data["status"] == "PENDING" and data["amount"] == "12.50" and data["amount_minor"] == 1250
    assert data["reference"] == "order-1" and data["bill_number"] == "INV-1" and len(data["md5"]) == 32
    stored = await engine.payments.get(data["id"])
    assert stored.khqr == data["khqr"] and stored.api_key_id is not None and stored.created_by == "main-backend"
    async with engine.storage.read() as tx:
        audit = await journal.list_audit(tx, subject_id=data["id"])
    assert [(a.action, a.actor_type, a.actor, a.source_ip) for a in audit] == [
        ("payment.create", "api_key", "main-backend", CLIENT_IP)
    ]


EXACT_AMOUNTS = [(12.35, "USD", 1235), (0.07, "USD", 7), ("40000", "KHR", 40000), (100, "KHR", 100), (19.99, "USD", 1999)]

INVALID_CREATES = [
    ({"amount": "0", "currency": "USD"}, "amount"),
    ({"amount": "-5", "currency": "USD"}, "amount"),
    ({"amount": -5, "currency": "USD"}, "amount"),
    ({"amount": "12.345", "currency": "USD"}, "amount"),
    ({"amount": "1.5", "currency": "KHR"}, "amount"),
    ({"amount": "1e3", "currency": "USD"}, "amount"),
    ({"amount": "1,000", "currency": "USD"}, "amount"),
    ({"amount": 1e300, "currency": "USD"}, "amount"),
    ({"amount": True, "currency": "USD"}, "amount"),
    ({"amount": "10", "currency": "EUR"}, "currency"),
    ({"amount": "10", "currency": "usd"}, "currency"),
    ({"amount": "10"}, "currency"),
    ({"amount": "10", "currency": "USD", "reference": "a\nb"}, "reference"),
    ({"amount": "10", "currency": "USD", "bill_number": "x" * 26}, "bill_number"),
    ({"amount": "10", "currency": "USD", "timeout_minutes": 0}, "timeout_minutes"),
    ({"amount": "10", "currency": "USD", "surprise": 1}, "surprise"),
]


async def test_amounts_are_exact_whether_string_or_number(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for amount, currency, minor in EXACT_AMOUNTS:
        data = await create(client, auth, amount=amount, currency=currency)
        assert data["amount_minor"] == minor, (amount, currency)


async def test_invalid_create_requests_are_422_problems_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine
) -> None:
    for body, field in INVALID_CREATES:
        response = await client.post(CREATE, json=body, headers=auth)
        found = problem(response, 422, "invalid-input")
        assert field in [e["field"] for e in found["errors"]], (body, found)
    page, _ = await engine.payments.search(_filter())
    assert page == []


async def test_non_finite_and_malformed_json_are_refused(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    headers = {**auth, "content-type": "application/json"}
    for raw in (b'{"amount": NaN, "currency": "USD"}', b'{"amount": Infinity, "currency": "USD"}', b'{"amount": '):
        found = problem(await client.post(CREATE, content=raw, headers=headers), 422, "invalid-input")
        assert found["errors"][0]["field"] == "body"


async def test_idempotency_key_header_replays_and_conflicts(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine
) -> None:
    headers = {**auth, "Idempotency-Key": "checkout-77"}
    first = await client.post(CREATE, json={"amount": "5.00", "currency": "USD"}, headers=headers)
    again = await client.post(CREATE, json={"amount": 5, "currency": "USD"}, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    conflict = await client.post(CREATE, json={"amount": "6.00", "currency": "USD"}, headers=headers)
    problem(conflict, 409, "idempotency-conflict")
    page, _ = await engine.payments.search(_filter())
    assert len(page) == 1


async def test_reference_is_the_idempotency_key_scoped_per_api_key(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: KeyFactory
) -> None:
    first = await create(client, auth, reference="order-9")
    replay = await client.post(CREATE, json={"amount": "12.50", "currency": "USD", "reference": "order-9"}, headers=auth)
    assert replay.status_code == 200 and replay.json()["data"]["id"] == first["id"]
    problem(
        await client.post(CREATE, json={"amount": "13.00", "currency": "USD", "reference": "order-9"}, headers=auth),
        409,
        "idempotency-conflict",
    )
    other = {"X-API-Key": await make_key("other-backend")}
    theirs = await create(client, other, reference="order-9")
    assert theirs["id"] != first["id"]


async def test_concurrent_retries_with_one_key_create_one_payment(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine
) -> None:
    headers = {**auth, "Idempotency-Key": "double-click"}
    responses = await asyncio.gather(
        *[client.post(CREATE, json={"amount": "3.00", "currency": "USD"}, headers=headers) for _ in range(5)]
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert len({r.json()["data"]["id"] for r in responses}) == 1
    page, _ = await engine.payments.search(_filter())
    assert len(page) == 1


def _filter(**kwargs: Any) -> Any:
    from engine.services.payments import PaymentFilter

    return PaymentFilter(**kwargs)


# --- status --------------------------------------------------------------------------------------


async def test_status_by_md5(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    data = await create(client, auth)
    response = await client.get(f"/api/payments/status/{data['md5'].upper()}", headers=auth)
    assert response.status_code == 200 and response.json()["data"]["id"] == data["id"]
    problem(await client.get("/api/payments/status/" + "0" * 32, headers=auth), 404, "not-found")
    problem(await client.get("/api/payments/status/not-an-md5", headers=auth), 422, "invalid-input")


# --- monitor -------------------------------------------------------------------------------------


async def test_monitor_answers_when_the_payment_is_paid(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock
) -> None:
    data = await create(client, auth)
    waiting = asyncio.create_task(
        client.post("/api/payments/monitor", json={"md5": data["md5"], "timeout_seconds": 50}, headers=auth)
    )
    await run_for(engine, clock, 2)
    assert not waiting.done()
    await engine.sandbox.pay(qr=data["khqr"])
    await run_for(engine, clock, 10)
    response = await asyncio.wait_for(waiting, 10)
    assert response.status_code == 200 and response.json()["data"]["status"] == "PAID"
    assert response.json()["data"]["timed_out"] is False


async def test_monitor_times_out_with_the_pending_state_and_caps_the_wait(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock
) -> None:
    data = await create(client, auth)
    limit = engine.settings.api.monitor_max_seconds
    waiting = asyncio.create_task(
        client.post("/api/payments/monitor", json={"payment_id": data["id"], "timeout_seconds": 10_000}, headers=auth)
    )
    await run_for(engine, clock, limit - 5, step=5)
    assert not waiting.done()
    await run_for(engine, clock, 10, step=5)
    response = await asyncio.wait_for(waiting, 10)
    assert response.status_code == 200 and response.json()["data"]["status"] == "PENDING"
    # The answer says the wait ran out, beside every field a status answer has.
    data = response.json()["data"]
    assert data["timed_out"] is True
    status = (await client.get(f"/api/payments/status/{data['md5']}", headers=auth)).json()["data"]
    assert set(data) - {"timed_out"} == set(status) and data["id"] == status["id"] and data["status"] == status["status"]


async def test_monitor_customer_says_paid_is_audited_with_the_key(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine
) -> None:
    data = await create(client, auth)
    response = await client.post(
        "/api/payments/monitor", json={"payment_id": data["id"], "timeout_seconds": 0, "customer_says_paid": True}, headers=auth
    )
    assert response.status_code == 200
    assert (await engine.payments.get(data["id"])).check_requested_at is not None
    async with engine.storage.read() as tx:
        audit = await journal.list_audit(tx, action="payment.request_check")
    assert [(a.actor, a.source_ip) for a in audit] == [("main-backend", CLIENT_IP)]


async def test_monitor_validation(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    url = "/api/payments/monitor"
    problem(await client.post(url, json={}, headers=auth), 422, "invalid-input")
    problem(await client.post(url, json={"payment_id": "pay_x", "md5": "a" * 32}, headers=auth), 422, "invalid-input")
    problem(await client.post(url, json={"md5": "a" * 32, "timeout_seconds": -1}, headers=auth), 422, "invalid-input")
    problem(await client.post(url, json={"payment_id": "pay_missing"}, headers=auth), 404, "not-found")


# --- bulk check ----------------------------------------------------------------------------------


async def test_bulk_check_applies_bakong_answers_and_reports_unknown_md5s(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine
) -> None:
    paid = await create(client, auth, reference="a")
    unpaid = await create(client, auth, reference="b")
    await engine.sandbox.pay(qr=paid["khqr"])
    unknown = "f" * 32
    response = await client.post(
        "/api/payments/bulk-check", json={"md5s": [paid["md5"], unpaid["md5"], unknown]}, headers=auth
    )
    assert response.status_code == 200
    results = {r["md5"]: r["payment"] for r in response.json()["data"]}
    assert results[paid["md5"]]["status"] == "PAID" and results[unpaid["md5"]]["status"] == "PENDING"
    assert results[unknown] is None
    async with engine.storage.read() as tx:
        audit = await journal.list_audit(tx, subject_id=paid["id"])
    assert audit[0].actor == "main-backend" and audit[0].source_ip == CLIENT_IP


async def test_bulk_check_limits(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    url = "/api/payments/bulk-check"
    problem(await client.post(url, json={"md5s": ["a" * 32] * 51}, headers=auth), 422, "invalid-input")
    problem(await client.post(url, json={"md5s": []}, headers=auth), 422, "invalid-input")
    problem(await client.post(url, json={"md5s": ["xyz"]}, headers=auth), 422, "invalid-input")
    assert (await client.post(url, json={"md5s": ["a" * 32] * 50}, headers=auth)).status_code == 200


# --- history -------------------------------------------------------------------------------------


async def test_history_filters_and_cursor_pagination(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock
) -> None:
    ids = []
    for i in range(5):
        ids.append((await create(client, auth, amount=f"{i + 1}.00", reference=f"r-{i}", customer_id="cust-1" if i % 2 else None))["id"])
        clock.advance(60)
    await engine.payments.cancel(ids[0], actor=ADMIN)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/payments/history", params=params, headers=auth)
        assert response.status_code == 200
        seen += [p["id"] for p in response.json()["data"]]
        cursor = response.json()["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]

    async def ids_for(**params: Any) -> list[str]:
        response = await client.get("/api/payments/history", params=params, headers=auth)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["data"]]

    assert await ids_for(status="CANCELLED") == [ids[0]]
    assert await ids_for(status=["CANCELLED", "PENDING"]) == ids[::-1]
    assert await ids_for(reference="r-3") == [ids[3]]
    assert await ids_for(customer="cust-1") == [ids[3], ids[1]]
    assert await ids_for(amount="3.00", currency="USD") == [ids[2]]
    assert await ids_for(amount="3", currency="KHR") == []
    start = "2026-01-15T03:01:00Z"
    assert await ids_for(**{"from": start, "to": "2026-01-15T03:03:00Z"}) == [ids[2], ids[1]]
    md5 = (await engine.payments.get(ids[4])).md5
    assert await ids_for(md5=md5) == [ids[4]]


BAD_HISTORY_FILTERS = [
    {"status": "BOGUS"},
    {"amount": "3.00"},
    {"amount": "1.5", "currency": "KHR"},
    {"limit": 0},
    {"limit": 201},
    {"cursor": "!!"},
    {"cursor": "bm90LWEtY3Vyc29y"},
    {"from": "yesterday"},
    {"md5": "abc"},
]


async def test_history_refuses_bad_filters(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for params in BAD_HISTORY_FILTERS:
        problem(await client.get("/api/payments/history", params=params, headers=auth), 422, "invalid-input")


# --- cancel --------------------------------------------------------------------------------------


async def test_cancel_pending_then_refuse_again(client: httpx.AsyncClient, auth: dict[str, str], engine: Engine) -> None:
    data = await create(client, auth)
    response = await client.post(f"/api/payments/{data['id']}/cancel", json={"reason": "customer left"}, headers=auth)
    assert response.status_code == 200 and response.json()["data"]["status"] == "CANCELLED"
    assert (await engine.payments.get(data["id"])).status is PaymentStatus.CANCELLED
    async with engine.storage.read() as tx:
        audit = await journal.list_audit(tx, action="payment.cancelled")
        events = [e.type for e in await journal.events_since(tx, 0) if e.subject_id == data["id"]]
    assert [(a.actor, a.source_ip, a.reason) for a in audit] == [("main-backend", CLIENT_IP, "customer left")]
    assert events == [ev.PAYMENT_CREATED, ev.PAYMENT_CANCELLED]
    problem(await client.post(f"/api/payments/{data['id']}/cancel", headers=auth), 409, "invalid-transition")
    problem(await client.post("/api/payments/pay_missing/cancel", headers=auth), 404, "not-found")
    problem(await client.post("/api/payments/pay%20x/cancel", headers=auth), 422, "invalid-input")
