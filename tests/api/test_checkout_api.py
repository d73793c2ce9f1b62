"""The API side of the payer's screens: create with a checkout (checkout_url, 422 on a bad URL,
replays), the card images (ETag, 304, sizes), and the pages' headers and plain errors over ASGI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from engine.config import Settings
from engine.runtime import Engine
from tests.support.settings import make_settings


@pytest.fixture
def web_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def engine_settings(db_url: str, web_overrides: dict[str, Any]) -> Settings:
    return make_settings(db_url, bakong={"max_retries": 0}, web=web_overrides)


async def _create(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post("/api/payments/create", json={"amount": "12.50", "currency": "USD", **body}, headers=auth)


@pytest.mark.parametrize(
    "field, value",
    [("success_url", "ftp://shop.example/ok"), ("cancel_url", "javascript:alert(1)"), ("success_url", "/paid"), ("cancel_url", 42)],
)
async def test_a_bad_redirect_url_is_a_422_naming_the_field_and_creates_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, field: str, value: Any
) -> None:
    response = await _create(client, auth, **{field: value}, reference="order-9")
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/api/problems/invalid-input"
    assert problem["errors"][0]["field"] == field
    history = await client.get("/api/payments/history", headers=auth)
    assert history.json()["data"] == []


async def test_create_with_a_checkout_answers_a_relative_checkout_url_and_a_deep_link(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await _create(client, auth, success_url="https://shop.example/ok")
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["checkout_url"].startswith("/pay/") and len(data["checkout_url"]) == len("/pay/") + 43
    assert data["deep_link"].startswith("https://")  # asked for once, for the page's phone button
    page = await client.get(data["checkout_url"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    plain = (await _create(client, auth, amount="3.00")).json()["data"]
    assert plain.get("checkout_url") is None and plain["deep_link"] is None


@pytest.mark.parametrize("web_overrides", [{"public_url": "https://pay.example.com/", "deep_links": False}])
async def test_checkout_url_is_absolute_under_public_url(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    data = (await _create(client, auth, checkout=True)).json()["data"]
    assert data["checkout_url"].startswith("https://pay.example.com/pay/")
    assert data["deep_link"] is None


async def test_replays_get_links_of_their_own_and_must_ask_the_same(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = {"reference": "order-77", "success_url": "https://shop.example/ok"}
    first = (await _create(client, auth, **body)).json()["data"]
    again = await _create(client, auth, **body)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    second = again.json()["data"]
    assert second["id"] == first["id"] and second["checkout_url"] != first["checkout_url"]
    for url in (first["checkout_url"], second["checkout_url"]):
        assert (await client.get(url + "/state")).json()["state"] == "pending"
    other = await _create(client, auth, reference="order-77", success_url="https://evil.example/ok")
    assert other.status_code == 409
    without = await _create(client, auth, reference="order-77")
    assert without.status_code == 409


async def test_pages_carry_a_strict_policy_and_answer_plain_errors(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    data = (await _create(client, auth, success_url="https://shop.example/ok", cancel_url="http://127.0.0.1:9000/cart")).json()["data"]
    page = await client.get(data["checkout_url"])
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self' https://shop.example http://127.0.0.1:9000;" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "<script src=\"/pay/static/pay.js?v=" in page.text and "<script>" not in page.text and " style=" not in page.text
    assert data["md5"] not in page.text and data["id"] not in page.text  # nothing the payer does not need
    state = (await client.get(data["checkout_url"] + "/state")).json()
    assert set(state) == {"state", "seconds_left", "redirect_url", "redirect_seconds"}
    missing = await client.get("/pay/" + "A" * 43)
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"] and "Traceback" not in missing.text
    assert (await client.get("/pay/" + "A" * 43 + "/state")).json() == {"error": 404, "message": "no such checkout"}
    assert (await client.get("/pay/nothing/here/at/all")).status_code == 404
    assert (await client.post(data["checkout_url"])).status_code == 405
    script = await client.get("/pay/static/pay.js")
    assert script.status_code == 200 and "immutable" in script.headers["cache-control"]


async def test_card_images_are_cacheable_with_an_etag(client: httpx.AsyncClient, auth: dict[str, str], make_key) -> None:  # noqa: ANN001
    data = (await _create(client, auth)).json()["data"]
    png = await client.get(f"/api/payments/{data['id']}/qr.png", headers=auth)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    etag = png.headers["etag"]
    assert etag.startswith('"') and png.headers["cache-control"] == "private, max-age=86400"
    again = await client.get(f"/api/payments/{data['id']}/qr.png", headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = await client.get(f"/api/payments/{data['id']}/qr.png", headers={**auth, "If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    svg = await client.get(f"/api/payments/{data['id']}/qr.svg?size=300", headers=auth)
    assert svg.headers["content-type"].startswith("image/svg+xml") and b'width="300"' in svg.content
    assert svg.headers["etag"] != etag
    bigger = await client.get(f"/api/payments/{data['id']}/qr.png?size=900", headers=auth)
    assert bigger.headers["etag"] != etag and len(bigger.content) > len(png.content)
    assert (await client.get(f"/api/payments/{data['id']}/qr.png?size=0", headers=auth)).status_code == 422
    assert (await client.get(f"/api/payments/{data['id']}/qr.png?size=20", headers=auth)).status_code == 422
    assert (await client.get("/api/payments/pay_unknown/qr.svg", headers=auth)).status_code == 404
    assert (await client.get(f"/api/payments/{data['id']}/qr.svg")).status_code == 401
    writer = await make_key("writer-only", scopes=["payments:write"])
    assert (await client.get(f"/api/payments/{data['id']}/qr.svg", headers={"X-API-Key": writer})).status_code == 403
