"""Routes dispatched directly (``routing.ApiRoute``, no dependency solving) answer exactly what
FastAPI's own handler answers: the same statuses, bodies and headers, for good requests, refused
keys and invalid parameters, in the same order (the key check before the parameters)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.responses import PlainTextResponse

from bakong_console.api.routing import ApiRoute, StaticPaths
from tests.api.conftest import KeyFactory
from tests.api.test_payments_api import create

_VARYING = {"x-request-id", "ratelimit-remaining", "ratelimit-reset"}


def _route(app: FastAPI, path: str, method: str) -> APIRoute:
    return next(r for r in app.routes if isinstance(r, APIRoute) and r.path == path and method in r.methods)


def _without_request_id(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_request_id(v) for k, v in value.items() if k != "request_id"}
    return value


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in _VARYING}
    try:
        body = _without_request_id(response.json())
    except ValueError:
        body = response.content
    return response.status_code, headers, body


async def _both(app: FastAPI, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[Any, Any]:
    """The answer of the direct dispatch, then of FastAPI's handler (any override forces it)."""
    direct = _answer(await client.get(url, headers=headers))
    app.dependency_overrides[_both] = _both
    try:
        solved = _answer(await client.get(url, headers=headers))
    finally:
        app.dependency_overrides.clear()
    return direct, solved


def test_the_keyed_reads_are_dispatched_directly_and_bodies_are_not(app: FastAPI) -> None:
    for path in (
        "/api/payments/status/{md5}", "/api/payments/history", "/api/events", "/api/payments/{payment_id}/qr.svg",
        "/api/subscriptions/status/{user_id}", "/api/health", "/metrics",
    ):  # fmt: skip
        route = _route(app, path, "GET")
        assert isinstance(route, ApiRoute) and route.direct, path
    for path in ("/api/payments/create", "/api/payments/monitor", "/api/payments/{payment_id}/cancel"):
        route = _route(app, path, "POST")
        assert isinstance(route, ApiRoute) and not route.direct, path


@pytest.mark.parametrize(
    ("url", "who"),
    [
        ("/api/payments/status/{md5}", "key"),
        ("/api/payments/status/" + "b" * 32, "key"),  # no such payment: 404
        ("/api/payments/status/not-an-md5", "key"),  # 422 naming md5
        ("/api/payments/status/not-an-md5", "nobody"),  # the key check first: 401
        ("/api/payments/status/not-an-md5", "reader-of-events"),  # 403 before the 422
        ("/api/payments/history?limit=0&status=BOGUS&from=yesterday", "key"),  # three field errors
        ("/api/payments/history?amount=1.00", "key"),  # the endpoint's own 422
        ("/api/payments/history?status=PENDING&status=PAID&limit=2", "key"),
        ("/api/events?since=-1&type=payment.nothing", "key"),
        ("/api/events?type=payment.created&type=payment.paid", "key"),
        ("/api/payments/{id}/qr.svg?size=0", "key"),
        ("/api/payments/{id}/qr.svg?size=200", "key"),
        ("/api/payments/{id}/qr.svg", "etag"),  # If-None-Match (a header parameter): 304
        ("/api/problems/not-a-kind", "nobody"),
        ("/api/problems/NOT_A_KIND!", "nobody"),
        ("/api/health", "nobody"),
    ],
)
async def test_a_direct_route_answers_what_fastapis_handler_answers(
    app: FastAPI, client: httpx.AsyncClient, auth: dict[str, str], make_key: KeyFactory, url: str, who: str
) -> None:
    payment = await create(client, auth)
    url = url.replace("{md5}", payment["md5"]).replace("{id}", payment["id"])
    headers = {"nobody": {}, "key": auth, "etag": auth}.get(who)
    if who == "reader-of-events":
        headers = {"X-API-Key": await make_key("events-only", scopes=["events:read"])}
    elif who == "etag":
        first = await client.get(url, headers=auth)
        headers = {**auth, "If-None-Match": first.headers["etag"]}
    assert headers is not None
    direct, solved = await _both(app, client, url, headers)
    assert direct == solved
    assert direct[0] in (200, 304, 401, 403, 404, 422)


async def test_static_paths_go_where_the_walk_of_the_routes_would(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert isinstance(app.router.routes[0], StaticPaths)

    async def by_name(name: str) -> PlainTextResponse:
        return PlainTextResponse(f"by name {name}")

    async def fixed() -> PlainTextResponse:
        return PlainTextResponse("fixed")

    async def late() -> PlainTextResponse:
        return PlainTextResponse("late")

    # Added after the app was made (as bench/ routes are): the table follows; a parameterless
    # path that an earlier route also matches stays with the earlier route.
    app.add_api_route("/api/lookup/{name}", by_name, methods=["GET"], include_in_schema=False)
    app.add_api_route("/api/lookup/fixed", fixed, methods=["GET", "POST"], include_in_schema=False)
    app.add_api_route("/api/late", late, methods=["GET"], include_in_schema=False)
    assert (await client.get("/api/late")).text == "late"
    assert (await client.get("/api/lookup/fixed")).text == "by name fixed"
    assert (await client.post("/api/lookup/fixed")).text == "fixed"
    refused = await client.post("/api/late")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET"
    health = await client.get("/api/health")
    assert health.status_code == 200 and health.headers["x-request-id"]
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/health"' in metrics and 'route="/api/late"' in metrics

    requests = [("GET", "/api/late"), ("POST", "/api/late"), ("GET", "/api/lookup/fixed"), ("POST", "/api/lookup/fixed"),
                ("GET", "/api/health"), ("HEAD", "/api/health"), ("GET", "/api/health/"), ("GET", "/api/openapi.json"),
                ("GET", "/api/problems/not-found"), ("GET", "/nowhere")]  # fmt: skip

    async def answers() -> list[tuple[int, dict[str, str], Any]]:
        return [_answer(await client.request(method, url)) for method, url in requests]

    with_table = await answers()
    table = app.router.routes.pop(0)
    try:
        assert with_table == await answers()
    finally:
        app.router.routes.insert(0, table)
    assert app.url_path_for("by_name", name="x") == "/api/lookup/x"


async def test_native_telemetry_is_on_for_the_signals_an_sdk_has_set_up(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace

    from bakong_console.api.app import create_app, native_telemetry

    assert native_telemetry() == {"tracing": False, "metrics": False, "logs": False}

    class SdkTracerProvider:  # any provider but the API's stand-in
        pass

    monkeypatch.setattr(trace, "get_tracer_provider", SdkTracerProvider)
    assert native_telemetry() == {"tracing": True, "metrics": False, "logs": False}
    app = create_app(engine)
    # FastAPI labels a request's span with the route its own walk selected: no table then.
    assert not any(isinstance(route, StaticPaths) for route in app.router.routes)
    await app.state.api.aclose()
