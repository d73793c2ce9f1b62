"""CheckoutService on SQLite and PostgreSQL (manual clock): links stored hashed and found in
constant time, one payment per link, the grace period, "I have paid" limited per payment across
links, cancel as the API would, and the replay rules of a create with a checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.clock import ManualClock
from engine.crypto import secret_digest
from engine.db import journal
from engine.db.models import CheckoutLinkRow, CheckoutRow
from engine.errors import CheckoutEnded, IdempotencyConflict, InvalidInput, InvalidTransition, NotFound, RateLimitExceeded
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from engine.services.checkout import PayerState, check_redirect_url, url_origin

BACKEND = Actor(ActorType.API_KEY, "shop-backend", source_ip="203.0.113.7")
PAYER = Actor(ActorType.PAYER, "checkout page", source_ip="198.51.100.20")


async def _checkout(engine: Engine, **urls: str | None):  # noqa: ANN202
    created = await engine.payments.initiate("4.00", "USD", actor=BACKEND)
    link = await engine.checkout.open(
        created.payment.id, success_url=urls.get("success_url"), cancel_url=urls.get("cancel_url"), actor=BACKEND
    )
    return created.payment, link


async def test_a_link_opens_its_payment_and_only_its_hash_is_stored(engine: Engine) -> None:
    payment, link = await _checkout(engine, success_url="https://shop.example/ok", cancel_url="https://shop.example/cart")
    other, other_link = await _checkout(engine)
    assert len(link.token) == 43 and link.path == f"/pay/{link.token}"
    view = await engine.checkout.view(link.token)
    assert view.payment.id == payment.id and view.state == PayerState.PENDING
    assert (await engine.checkout.view(other_link.token)).payment.id == other.id
    async with engine.storage.read() as tx:
        rows = (await tx.session.scalars(select(CheckoutLinkRow))).all()
        checkout = await tx.session.get(CheckoutRow, payment.id)
        (audit,) = await journal.list_audit(tx, action="checkout.open", subject_id=payment.id)
    assert {r.token_hash for r in rows} == {secret_digest(link.token), secret_digest(other_link.token)}
    assert all(link.token not in (r.prefix + r.token_hash) for r in rows)
    assert checkout.success_url == "https://shop.example/ok"
    assert audit.actor == "shop-backend" and audit.after == {"success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/cart"}


@pytest.mark.parametrize("mangle", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: t[:20], lambda t: "x" * 43, lambda t: t + "="])
async def test_a_wrong_token_is_not_found_whatever_is_wrong(engine: Engine, mangle) -> None:  # noqa: ANN001
    _, link = await _checkout(engine)
    with pytest.raises(NotFound):
        await engine.checkout.view(mangle(link.token))


async def test_a_link_shows_the_result_for_the_grace_period_then_is_gone(engine: Engine, clock: ManualClock) -> None:
    payment, link = await _checkout(engine, cancel_url="https://shop.example/cart")
    clock.advance(60)
    await engine.payments.cancel(payment.id, actor=BACKEND, reason="customer left")
    view = await engine.checkout.view(link.token)
    assert view.state == PayerState.CANCELLED and view.redirect_url == "https://shop.example/cart" and view.seconds_left == 0
    clock.advance(engine.settings.web.checkout_grace_seconds)
    assert (await engine.checkout.view(link.token)).state == PayerState.CANCELLED  # the last second of grace
    clock.advance(1)
    with pytest.raises(CheckoutEnded):
        await engine.checkout.view(link.token)


async def test_i_have_paid_is_acted_on_once_per_interval_per_payment(engine: Engine, clock: ManualClock) -> None:
    payment, link = await _checkout(engine)
    second = await engine.checkout.open(payment.id, success_url=None, cancel_url=None, actor=BACKEND, replay=True)
    await engine.checkout.claim_paid(link.token, actor=PAYER)
    assert (await engine.payments.get(payment.id)).check_requested_at is not None
    clock.advance(4)
    with pytest.raises(RateLimitExceeded) as refused:
        await engine.checkout.claim_paid(second.token, actor=PAYER)  # another link to the same payment
    assert refused.value.retry_after == pytest.approx(6.0)
    clock.advance(6)
    await engine.checkout.claim_paid(second.token, actor=PAYER)
    async with engine.storage.read() as tx:
        entries = await journal.list_audit(tx, action="payment.request_check", subject_id=payment.id)
    assert [(e.actor_type, e.actor, e.source_ip) for e in entries] == [("payer", "checkout page", "198.51.100.20")] * 2


async def test_cancel_follows_the_api_rule(engine: Engine) -> None:
    payment, link = await _checkout(engine)
    view = await engine.checkout.cancel(link.token, actor=PAYER)
    assert view.payment.status is PaymentStatus.CANCELLED
    with pytest.raises(InvalidTransition):
        await engine.checkout.cancel(link.token, actor=PAYER)
    history = await engine.payments.history(payment.id)
    assert history[-1].reason == "cancelled by the payer on the checkout page"


async def test_replays_must_ask_for_the_same_checkout(engine: Engine) -> None:
    payment, _ = await _checkout(engine, success_url="https://shop.example/ok")
    with pytest.raises(IdempotencyConflict):
        await engine.checkout.open(payment.id, success_url="https://evil.example/ok", cancel_url=None, actor=BACKEND, replay=True)
    plain = (await engine.payments.initiate("1.00", "USD", actor=BACKEND)).payment
    with pytest.raises(IdempotencyConflict):
        await engine.checkout.open(plain.id, success_url=None, cancel_url=None, actor=BACKEND, replay=True)
    with pytest.raises(NotFound):
        await engine.checkout.open("pay_nothing", success_url=None, cancel_url=None, actor=BACKEND)


@pytest.mark.parametrize(
    "url, problem",
    [
        ("ftp://shop.example/x", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("/relative/path", "http:// or https://"),
        ("https://", "must name a host"),
        ("https://user:pw@shop.example/", "user name or password"),
        ("https://shop.example:99999/", "invalid port"),
        ("https://shop example/", "without spaces"),
        ("https://shöp.example/", "plain ASCII"),
        ("https://shop_;x.example/", "invalid host"),
        ("", "is empty"),
        ("https://shop.example/" + "a" * 2048, "longer than"),
    ],
)
def test_redirect_urls_must_be_absolute_http(url: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_redirect_url(url, "success_url")
    assert problem in refused.value.message and refused.value.field == "success_url"


def test_origins_for_the_content_security_policy() -> None:
    assert url_origin("HTTPS://Shop.Example:8443/paid?x=1") == "https://shop.example:8443"
    assert url_origin("http://[::1]:9000/x") == "http://[::1]:9000"
    assert check_redirect_url("http://127.0.0.1:9/ok", "cancel_url") == "http://127.0.0.1:9/ok"
