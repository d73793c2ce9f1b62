"""The hosted checkout page in a real browser (Debian's Chromium through Playwright), served by
`serve`'s app on a loopback port with the engine's workers running against the built-in sandbox.

Each test keeps a screenshot of every state it reaches (paths printed, shown on failure).
"""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from engine.db import journal
from engine.records import PaymentStatus
from tests.web.conftest import KHMER_NAME, Browser, Served

pytestmark = pytest.mark.slow


@pytest.fixture
def paid_url(shop: str) -> str:
    return f"{shop}/orders/1042/paid"


@pytest.fixture
def cancel_url(shop: str) -> str:
    return f"{shop}/orders/1042/cart"


async def _open(browser: Browser, served: Served, path: str, **kwargs: object):  # noqa: ANN202
    page = await browser.page()
    response = await page.goto(served.url(path), **kwargs)
    return page, response


async def _state(page) -> str:  # noqa: ANN001
    return await page.get_attribute("#checkout", "data-state")


async def test_page_turns_paid_after_a_sandbox_payment_and_follows_success_url(served: Served, browser: Browser, paid_url: str, cancel_url: str) -> None:
    payment = await served.create(success_url=paid_url, cancel_url=cancel_url, reference="order-1042")
    page, response = await _open(browser, served, payment["checkout_url"])
    assert response.status == 200
    assert await _state(page) == "pending"
    assert await page.inner_text("#amount") == "12.50 USD"
    assert await page.inner_text("#merchant") == "Sandbox Shop"
    assert await page.inner_text("#merchant-other") == KHMER_NAME
    assert await page.locator("#card svg").count() == 1
    await browser.shot(page, "pending")

    started = time.monotonic()
    await served.engine.sandbox.pay(qr=payment["khqr"])
    await page.wait_for_selector('#checkout[data-state="paid"]', timeout=10_000)
    took = time.monotonic() - started
    assert await page.locator(".when-paid").is_visible()
    await browser.shot(page, "paid")
    await page.wait_for_url(paid_url, timeout=10_000)
    assert await page.inner_text("h1") == "The shop"
    # The poller checks every second here: paid within the interval plus the bus and the stream.
    assert took < 5, f"the page showed PAID {took:.1f} s after the payment"
    stored = await served.engine.payments.get(payment["id"])
    assert stored.status is PaymentStatus.PAID
    assert browser.csp_violations == []


async def test_polling_fallback_without_event_streams_still_turns_paid(served: Served, browser: Browser, paid_url: str) -> None:
    payment = await served.create(success_url=paid_url)
    blocked: list[str] = []

    async def refuse(route) -> None:  # noqa: ANN001
        blocked.append(route.request.url)
        await route.abort()

    await browser.context.route("**/events", refuse)
    page, _ = await _open(browser, served, payment["checkout_url"])
    async with page.expect_request("**/state", timeout=10_000):
        pass  # EventSource failed: the script polls
    await browser.shot(page, "pending-polling")
    await served.engine.sandbox.pay(qr=payment["khqr"])
    await page.wait_for_selector('#checkout[data-state="paid"]', timeout=10_000)
    await browser.shot(page, "paid-polling")
    await page.wait_for_url(paid_url, timeout=10_000)
    assert blocked, "the page never tried the event stream"


async def test_expiry_turns_the_page_expired_and_goes_to_cancel_url(served: Served, browser: Browser, paid_url: str, cancel_url: str) -> None:
    payment = await served.create(success_url=paid_url, cancel_url=cancel_url, timeout_minutes=1)
    page, _ = await _open(browser, served, payment["checkout_url"])
    countdown = await page.inner_text("#countdown")
    minutes, _, seconds = countdown.partition(":")
    # a live countdown from 1:00; opening the page on a busy machine can take a few seconds
    assert 45 <= int(minutes) * 60 + int(seconds) <= 60, countdown
    served.clock.forward(61)
    served.engine.poke("expirer")
    await page.wait_for_selector('#checkout[data-state="expired"]', timeout=10_000)
    assert await page.locator(".when-expired").is_visible()
    await browser.shot(page, "expired")
    await page.wait_for_url(cancel_url, timeout=10_000)
    assert (await served.engine.payments.get(payment["id"])).status is PaymentStatus.TIMEOUT


async def test_cancel_button_cancels_the_payment_as_the_payer_and_goes_to_cancel_url(served: Served, browser: Browser, paid_url: str, cancel_url: str) -> None:
    payment = await served.create(success_url=paid_url, cancel_url=cancel_url)
    page, _ = await _open(browser, served, payment["checkout_url"])
    async with page.expect_navigation(url=cancel_url, timeout=10_000):
        await page.click("#cancel")
    await browser.shot(page, "after-cancel")
    assert (await served.engine.payments.get(payment["id"])).status is PaymentStatus.CANCELLED
    async with served.engine.storage.read() as tx:
        (entry,) = await journal.list_audit(tx, action="payment.cancelled", subject_id=payment["id"])
    assert (entry.actor_type, entry.actor, entry.source_ip) == ("payer", "checkout page", "127.0.0.1")
    # The ended page still shows the result for the grace period, without the buttons.
    page2, response = await _open(browser, served, payment["checkout_url"])
    assert response.status == 200
    assert await _state(page2) == "cancelled"
    await browser.shot(page2, "cancelled")
    assert browser.csp_violations == []


async def test_i_have_paid_checks_now_and_is_rate_limited(served: Served, browser: Browser, cancel_url: str) -> None:
    payment = await served.create(cancel_url=cancel_url)
    page, _ = await _open(browser, served, payment["checkout_url"])
    async with page.expect_response("**/paid") as first:
        await page.click("#paid")
    assert (await first.value).status == 200
    await page.wait_for_function("document.getElementById('message').textContent.length > 0")
    assert "Checking" in await page.inner_text("#message")
    async with served.engine.storage.read() as tx:
        (entry,) = await journal.list_audit(tx, action="payment.request_check", subject_id=payment["id"])
    assert (entry.actor_type, entry.actor) == ("payer", "checkout page")
    async with page.expect_response("**/paid") as second:
        await page.click("#paid")
    assert (await second.value).status == 429
    await page.wait_for_function("document.getElementById('message').textContent.indexOf('wait') >= 0")
    await browser.shot(page, "paid-claim-rate-limited")
    # Without the script: a plain 429 page with a way back.
    response = await served.client.post(payment["checkout_url"] + "/paid")
    assert response.status_code == 429 and "text/html" in response.headers["content-type"]
    assert int(response.headers["retry-after"]) >= 1
    async with served.engine.storage.read() as tx:
        assert len(await journal.list_audit(tx, action="payment.request_check", subject_id=payment["id"])) == 1


async def test_khmer_page_draws_khmer_glyphs_and_remembers_the_choice(served: Served, browser: Browser) -> None:
    payment = await served.create(checkout=True)
    page, _ = await _open(browser, served, payment["checkout_url"] + "?lang=km")
    assert await page.get_attribute("html", "lang") == "km"
    assert await page.inner_text("#merchant") == KHMER_NAME
    assert await page.inner_text("#merchant-other") == "Sandbox Shop"
    await browser.shot(page, "pending-km")
    hint = page.locator(".hint")
    drawn = Image.open(io.BytesIO(await hint.screenshot())).convert("L")
    # The same box with its text made invisible: what "no glyphs" would look like.
    await page.evaluate("document.querySelector('.hint').style.color = 'transparent'")
    blank = Image.open(io.BytesIO(await hint.screenshot())).convert("L")
    ink = sum(1 for a, b in zip(drawn.tobytes(), blank.tobytes(), strict=True) if abs(a - b) > 64)
    assert ink > 0.02 * drawn.width * drawn.height, f"the Khmer text drew {ink} pixels"
    # Missing glyphs would draw one tofu box per character: Khmer clusters draw narrower than that.
    notdef = await page.evaluate(
        """() => { const s = document.createElement('span'); s.style.fontSize = '16px';
                  s.textContent = '\\u0378'.repeat(10); document.body.appendChild(s);
                  const w = s.getBoundingClientRect().width; s.remove(); return w; }"""
    )
    khmer = await page.evaluate(
        """() => { const s = document.createElement('span'); s.style.fontSize = '16px'; s.lang = 'km';
                  s.textContent = 'ខ្មែរខ្មែរ'; document.body.appendChild(s);
                  const w = s.getBoundingClientRect().width; s.remove(); return w; }"""
    )
    assert khmer != notdef
    # The choice sticks (cookie) until the payer switches back.
    page2, _ = await _open(browser, served, payment["checkout_url"])
    assert await page2.get_attribute("html", "lang") == "km"
    await page2.click('a[hreflang="en"]')
    await page2.wait_for_function("document.documentElement.lang === 'en'")
    assert await page2.inner_text("#merchant") == "Sandbox Shop"
    assert browser.csp_violations == []


async def test_bank_app_button_shows_on_phones_only(served: Served, browser: Browser, paid_url: str) -> None:
    payment = await served.create(success_url=paid_url)
    assert payment["deep_link"], "a checkout asks Bakong for a deep link once, at create"
    page, _ = await _open(browser, served, payment["checkout_url"])
    assert await page.get_attribute("#bank-app", "href") == payment["deep_link"]
    assert not await page.locator("#bank-app").is_visible()
    phone = await browser.context.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        mobile = await phone.new_page()
        await mobile.goto(served.url(payment["checkout_url"]))
        assert await mobile.locator("#bank-app").is_visible()
        await browser.shot(mobile, "pending-phone")
    finally:
        await phone.close()


async def test_unknown_and_ended_links_are_plain_404_and_410_pages(served: Served, browser: Browser, cancel_url: str) -> None:
    page, response = await _open(browser, served, "/pay/" + "x" * 43)
    assert response.status == 404
    assert "not valid" in await page.inner_text("main")
    await browser.shot(page, "not-found")
    payment = await served.create(cancel_url=cancel_url)
    await served.engine.payments.cancel(payment["id"], actor=_admin(), reason="test")
    served.clock.forward(served.engine.settings.web.checkout_grace_seconds + 1)
    page, response = await _open(browser, served, payment["checkout_url"])
    assert response.status == 410
    assert "ended" in await page.inner_text("main")
    assert "Traceback" not in await page.content()
    await browser.shot(page, "ended")
    state = await served.client.get(payment["checkout_url"] + "/state")
    assert state.status_code == 410 and state.json()["error"] == 410


def _admin():  # noqa: ANN202
    from engine.records import Actor, ActorType

    return Actor(ActorType.CLI, "test-admin")


async def test_an_open_page_follows_a_change_made_by_another_process(served: Served, browser: Browser, cancel_url: str) -> None:
    """The event bus tails the events table: a cancel committed by another engine reaches the page."""
    from engine.runtime import Engine

    payment = await served.create(cancel_url=cancel_url)
    page, _ = await _open(browser, served, payment["checkout_url"])
    async with Engine.open(served.engine.settings, holder="other-process") as other:
        await other.payments.cancel(payment["id"], actor=_admin(), reason="cashier cancelled")
    await page.wait_for_selector('#checkout[data-state="cancelled"]', timeout=10_000)
    await page.wait_for_url(cancel_url, timeout=10_000)
