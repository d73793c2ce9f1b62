"""The customer display in a real browser (Debian's Chromium through Playwright), served by
`serve`'s app on a loopback port with the engine's workers running against the built-in sandbox:
pairing, following the terminal's new payment within a second, PAID then idle, cancel/expiry back
to idle, revoke back to pairing, the polling fallback, Khmer.

Each test keeps a screenshot of every state it reaches (paths printed, shown on failure).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from engine.records import Actor, ActorType
from engine.services.displays import DISPLAY_PATH
from tests.web.conftest import KHMER_NAME, Browser, Served

pytestmark = pytest.mark.slow

CASHIER = Actor(ActorType.CASHIER, "dara")
TERMINAL = "counter-1"
PAID_SECONDS = 2.0


@pytest.fixture
def display_overrides() -> dict[str, Any]:
    return {"paid_seconds": PAID_SECONDS}


def _url(served: Served, terminal: str = TERMINAL) -> str:
    return served.url(f"{DISPLAY_PATH}/{terminal}")


async def _state(page: Any) -> str | None:
    return await page.get_attribute("#display", "data-state")


async def _paired_page(served: Served, browser: Browser, terminal: str = TERMINAL) -> Any:
    """A page paired with ``terminal`` through its form, as a person would."""
    page = await browser.page()
    await page.goto(_url(served, terminal))
    code = await served.engine.displays.start_pairing(terminal, actor=CASHIER)
    await page.fill("#code", code.code)
    async with page.expect_navigation():
        await page.click("#pair")
    await page.wait_for_selector('#display[data-state="idle"]', timeout=5_000)
    return page


async def _new_payment(served: Served, amount: str = "12.50", terminal: str = TERMINAL, **kwargs: Any) -> Any:
    return (await served.engine.payments.initiate(amount, "USD", actor=CASHIER, terminal=terminal, **kwargs)).payment


async def test_pairing_then_the_display_follows_the_terminal_and_shows_paid_then_idles(served: Served, browser: Browser) -> None:
    page = await browser.page()
    response = await page.goto(_url(served))
    assert response.status == 200
    assert await page.locator("#pairing").is_visible()
    await browser.shot(page, "pairing")
    code = await served.engine.displays.start_pairing(TERMINAL, actor=CASHIER)
    wrong = f"{(int(code.code) + 1) % 10**6:06d}"
    await page.fill("#code", wrong)
    async with page.expect_navigation() as nav:
        await page.click("#pair")
    assert (await nav.value).status == 422
    assert "wrong pairing code (4 tries left)" in await page.inner_text("#code-error")
    assert await page.get_attribute("#code", "aria-invalid") == "true"
    await browser.shot(page, "pairing-wrong-code")
    await asyncio.sleep(1.05)  # one wrong try a second
    await page.fill("#code", code.code)
    async with page.expect_navigation():
        await page.click("#pair")
    await page.wait_for_selector('#display[data-state="idle"]', timeout=5_000)
    assert await page.inner_text("#merchant") == "Sandbox Shop"
    assert "Welcome" in await page.inner_text("#idle")
    (cookie,) = [c for c in await browser.context.cookies() if c["name"] == "bk_display"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", f"{DISPLAY_PATH}/{TERMINAL}")
    assert "bk_display" not in await page.evaluate("document.cookie")  # the script cannot read it
    await browser.shot(page, "idle")

    # Another counter's payment, and one made through the API, never show here.
    idle_key = await page.get_attribute("#display", "data-key")
    await _new_payment(served, "9.00", terminal="counter-2")
    await served.create(amount="7.00")
    await asyncio.sleep(1.5)
    assert await page.get_attribute("#display", "data-key") == idle_key

    started = time.monotonic()
    payment = await _new_payment(served)
    await page.wait_for_selector('#display[data-state="pending"]', timeout=5_000)
    took = time.monotonic() - started
    assert took <= 1.0, f"the display showed the new payment {took:.2f} s after it was made"
    assert await page.inner_text("#amount") == "12.50 USD"
    assert await page.locator("#card svg").count() == 1
    assert "9.00" not in await page.content() and payment.md5 not in await page.content()
    await browser.shot(page, "pending")

    await served.engine.sandbox.pay(qr=payment.khqr)
    await page.wait_for_selector('#display[data-state="paid"]', timeout=10_000)
    assert await page.locator("#paid").is_visible()
    assert await page.inner_text("#amount") == "12.50 USD"
    await browser.shot(page, "paid")
    await page.wait_for_selector('#display[data-state="idle"]', timeout=PAID_SECONDS * 1000 + 3_000)
    await browser.shot(page, "idle-after-paid")
    assert browser.csp_violations == []


async def test_cancelled_and_expired_payments_go_back_to_idle(served: Served, browser: Browser) -> None:
    page = await _paired_page(served, browser)
    cancelled = await _new_payment(served, "3.00")
    await page.wait_for_selector('#display[data-state="pending"]', timeout=5_000)
    await served.engine.payments.cancel(cancelled.id, actor=CASHIER, reason="customer changed their mind")
    await page.wait_for_selector('#display[data-state="idle"]', timeout=5_000)
    await browser.shot(page, "idle-after-cancel")
    await _new_payment(served, "4.00", timeout_minutes=1)
    await page.wait_for_selector('#display[data-state="pending"]', timeout=5_000)
    countdown = await page.inner_text("#countdown")
    assert countdown in ("1:00", "0:59", "0:58"), countdown
    served.clock.forward(61)
    served.engine.poke("expirer")
    await page.wait_for_selector('#display[data-state="idle"]', timeout=5_000)
    await browser.shot(page, "idle-after-expiry")


async def test_revoking_sends_the_open_page_back_to_pairing(served: Served, browser: Browser) -> None:
    page = await _paired_page(served, browser)
    (display,) = await served.engine.displays.list(terminal=TERMINAL)
    # Revoked by another process (the CLI): the bus brings its event to the open page.
    from engine.runtime import Engine

    async with Engine.open(served.engine.settings, holder="displays-cli") as other:
        await other.displays.revoke(display.id, actor=Actor(ActorType.CLI, "owner"))
    await page.wait_for_selector("#pairing", timeout=5_000)
    await browser.shot(page, "pairing-after-revoke")
    assert [c for c in await browser.context.cookies() if c["name"] == "bk_display"] == []
    # The state answers 401 to the revoked token; the page stays on the form.
    assert (await served.client.get(f"{DISPLAY_PATH}/{TERMINAL}/state")).status_code == 401


async def test_polling_fallback_without_event_streams(served: Served, browser: Browser) -> None:
    blocked: list[str] = []

    async def refuse(route: Any) -> None:
        blocked.append(route.request.url)
        await route.abort()

    await browser.context.route("**/events", refuse)
    page = await _paired_page(served, browser)
    async with page.expect_request("**/state", timeout=5_000):
        pass  # EventSource failed: the script polls
    started = time.monotonic()
    payment = await _new_payment(served)
    await page.wait_for_selector('#display[data-state="pending"]', timeout=5_000)
    assert time.monotonic() - started < 2.5  # a poll a second, then the reload
    await browser.shot(page, "pending-polling")
    await served.engine.sandbox.pay(qr=payment.khqr)
    await page.wait_for_selector('#display[data-state="paid"]', timeout=10_000)
    await browser.shot(page, "paid-polling")
    assert blocked, "the page never tried the event stream"


async def test_khmer_display(served: Served, browser: Browser) -> None:
    page = await _paired_page(served, browser)
    await page.goto(_url(served) + "?lang=km")
    assert await page.get_attribute("html", "lang") == "km"
    assert await page.inner_text("#merchant") == KHMER_NAME
    assert "សូមស្វាគមន៍" in await page.inner_text("#idle")
    await _new_payment(served)
    await page.wait_for_selector('#display[data-state="pending"]', timeout=5_000)
    assert await page.get_attribute("html", "lang") == "km"  # the choice is kept across reloads
    await browser.shot(page, "pending-km")
    assert browser.csp_violations == []
