"""The customer display's routes over HTTP (`serve`'s app on loopback): bad and malformed codes
are the form again with the reason (422, 429 with Retry-After), a token reaches its own terminal
only, unknown terminals are plain 404 pages, and the state carries nothing about a payment."""

from __future__ import annotations

import asyncio
import re

import httpx

from engine.db import journal
from engine.records import Actor, ActorType
from engine.services.displays import DISPLAY_PATH
from tests.web.conftest import Served

CASHIER = Actor(ActorType.CASHIER, "dara")


async def _pair(served: Served, terminal: str) -> httpx.AsyncClient:
    """A client holding a device token for ``terminal`` (paired through the form)."""
    code = await served.engine.displays.start_pairing(terminal, actor=CASHIER)
    client = httpx.AsyncClient(base_url=served.base_url, timeout=10)
    response = await client.post(f"{DISPLAY_PATH}/{terminal}/pair", data={"code": code.code})
    assert response.status_code == 303 and response.headers["location"] == f"{DISPLAY_PATH}/{terminal}"
    assert "bk_display" in client.cookies
    return client


async def test_bad_codes_get_the_form_again_with_the_reason(served: Served) -> None:
    url = f"{DISPLAY_PATH}/counter-1/pair"
    none = await served.client.post(url, data={"code": "123456"})
    assert none.status_code == 422 and "no pairing code is waiting" in none.text and 'id="code-error"' in none.text
    code = await served.engine.displays.start_pairing("counter-1", actor=CASHIER)
    malformed = await served.client.post(url, data={"code": "12ab"})
    assert malformed.status_code == 422 and "6 digits" in malformed.text
    wrong = f"{(int(code.code) + 1) % 10**6:06d}"
    first = await served.client.post(url, data={"code": wrong})
    assert first.status_code == 422 and "4 tries left" in first.text
    again = await served.client.post(url, data={"code": code.code})
    assert again.status_code == 429 and int(again.headers["retry-after"]) == 1 and "wait a second" in again.text
    too_long = await served.client.post(url, content=b"code=" + b"1" * 2000, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert too_long.status_code == 422 and "6 digits" in too_long.text
    assert "Traceback" not in first.text + again.text + too_long.text
    await asyncio.sleep(1.05)
    good = await served.client.post(url, data={"code": code.code})
    assert good.status_code == 303
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and f"Path={DISPLAY_PATH}/counter-1" in cookie
    async with served.engine.storage.read() as tx:
        (entry,) = await journal.list_audit(tx, action="display.pair")
    assert (entry.actor_type, entry.actor, entry.source_ip) == ("payer", "customer display", "127.0.0.1")


async def test_a_token_reaches_its_own_terminal_only(served: Served) -> None:
    client = await _pair(served, "counter-1")
    try:
        mine = await client.get(f"{DISPLAY_PATH}/counter-1/state")
        assert mine.status_code == 200 and mine.json()["state"] == "idle"
        other = (await served.engine.payments.initiate("9.00", "USD", actor=CASHIER, terminal="counter-2")).payment
        # The cookie is scoped to its terminal's path; sent there by hand, it still opens nothing.
        token = client.cookies["bk_display"]
        for path in ("/state", "/events"):
            response = await served.client.get(f"{DISPLAY_PATH}/counter-2{path}", headers={"Cookie": f"bk_display={token}"})
            assert response.status_code == 401 and response.json() == {"error": 401, "message": "this display is not paired"}
        page = await served.client.get(f"{DISPLAY_PATH}/counter-2", headers={"Cookie": f"bk_display={token}"})
        assert page.status_code == 200 and 'id="pairing"' in page.text and "9.00" not in page.text
        made = (await served.engine.payments.initiate("12.50", "USD", actor=CASHIER, terminal="counter-1")).payment
        state = (await client.get(f"{DISPLAY_PATH}/counter-1/state")).json()
        assert set(state) == {"state", "key", "seconds_left"} and state["state"] == "pending"
        assert made.id not in str(state) and other.id not in str(state)
        page = await client.get(f"{DISPLAY_PATH}/counter-1")
        assert "12.50 USD" in page.text and made.md5 not in page.text and made.id not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert re.search(r'<script src="/display/static/display\.js\?v=[0-9a-f]{12}" defer>', page.text)
        assert (await client.get(f"{DISPLAY_PATH}/static/display.js")).status_code == 200
    finally:
        await client.aclose()


async def test_unpaired_requests_and_unknown_terminals(served: Served) -> None:
    assert (await served.client.get(f"{DISPLAY_PATH}/counter-1/state")).status_code == 401
    assert (await served.client.get(f"{DISPLAY_PATH}/counter-1/events")).status_code == 401
    forged = await served.client.get(f"{DISPLAY_PATH}/counter-1/state", headers={"Cookie": "bk_display=" + "A" * 43})
    assert forged.status_code == 401
    for bad in ("Counter-1", "a" * 65, "-x"):
        page = await served.client.get(f"{DISPLAY_PATH}/{bad}")
        assert page.status_code == 404 and "No such display" in page.text and "Traceback" not in page.text
