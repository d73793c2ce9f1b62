"""Customer displays in the engine: pairing codes (short-lived, single use, limited tries), device
tokens (stored hashed, bound to one terminal, revocable) and what a terminal's display shows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.clock import ManualClock
from engine.crypto import secret_digest
from engine.db import journal
from engine.db.models import DisplayRow
from engine.errors import InvalidInput, InvalidTransition, NotFound, RateLimitExceeded, Unauthorized
from engine.records import Actor, ActorType
from engine.runtime import Engine
from engine.services.displays import ScreenState

CASHIER = Actor(ActorType.CASHIER, "dara")
PAYER = Actor(ActorType.PAYER, "display page", source_ip="192.0.2.7")


async def _events(engine: Engine, type_: str) -> list:
    async with engine.storage.read() as tx:
        return [e for e in await journal.events_since(tx, 0, limit=1000) if e.type == type_]


async def test_pairing_swaps_the_code_for_a_token_stored_hashed(engine: Engine) -> None:
    code = await engine.displays.start_pairing("counter-1", actor=CASHIER)
    assert len(code.code) == 6 and code.code.isdigit()
    assert [d.status(engine.clock.now()) for d in await engine.displays.list()] == ["pairing"]
    paired = await engine.displays.pair("counter-1", f"{code.code[:3]} {code.code[3:]}", actor=PAYER)
    assert len(paired.token) == 43
    assert paired.display.paired and paired.display.id == code.display.id
    async with engine.storage.read() as tx:
        row = (await tx.session.scalars(select(DisplayRow))).one()
    # Neither the code nor the token is stored; the token's digest is.
    assert row.token_hash == secret_digest(paired.token) and row.pairing_code_hash is None
    assert paired.token not in repr(row.__dict__) and code.code not in (row.token_hash or "")
    assert (await engine.displays.authenticate("counter-1", paired.token)).id == code.display.id
    (event,) = await _events(engine, "display.paired")
    assert event.subject_id == code.display.id and event.payload == {"id": code.display.id, "terminal": "counter-1"}
    async with engine.storage.read() as tx:
        actions = [(a.action, a.actor_type, a.source_ip) for a in await journal.list_audit(tx, subject_id=code.display.id)]
    assert sorted(actions) == sorted([("display.pairing_code", "cashier", None), ("display.pair", "payer", "192.0.2.7")])


async def test_a_code_works_once(engine: Engine) -> None:
    code = await engine.displays.start_pairing("counter-1", actor=CASHIER)
    await engine.displays.pair("counter-1", code.code, actor=PAYER)
    with pytest.raises(InvalidInput, match="no pairing code is waiting"):
        await engine.displays.pair("counter-1", code.code, actor=PAYER)


async def test_a_code_expires(engine: Engine, clock: ManualClock) -> None:
    code = await engine.displays.start_pairing("counter-1", actor=CASHIER)
    clock.advance(engine.settings.display.pairing_code_seconds + 1)
    with pytest.raises(InvalidInput, match="no pairing code is waiting"):
        await engine.displays.pair("counter-1", code.code, actor=PAYER)
    assert await engine.displays.list() == []  # an ended code is not listed
    assert len(await engine.displays.list(include_ended=True)) == 1


async def test_a_code_belongs_to_its_terminal_and_a_new_code_ends_the_old(engine: Engine) -> None:
    first = await engine.displays.start_pairing("counter-1", actor=CASHIER)
    with pytest.raises(InvalidInput, match="no pairing code is waiting"):
        await engine.displays.pair("counter-2", first.code, actor=PAYER)
    second = await engine.displays.start_pairing("counter-1", actor=CASHIER)
    if first.code != second.code:
        with pytest.raises(InvalidInput, match="wrong pairing code"):
            await engine.displays.pair("counter-1", first.code, actor=PAYER)
    assert [d.id for d in await engine.displays.list(include_ended=True)] == [second.display.id]


async def test_wrong_codes_are_rate_limited_and_end_the_code(engine: Engine, clock: ManualClock) -> None:
    code = await engine.displays.start_pairing("counter-1", actor=CASHIER)
    wrong = f"{(int(code.code) + 1) % 10**6:06d}"
    with pytest.raises(InvalidInput, match=r"wrong pairing code \(4 tries left\)"):
        await engine.displays.pair("counter-1", wrong, actor=PAYER)
    with pytest.raises(RateLimitExceeded) as limited:
        await engine.displays.pair("counter-1", code.code, actor=PAYER)  # even the right one, too soon
    assert 0 < limited.value.retry_after <= 1
    for left in (3, 2, 1):
        clock.advance(1)
        with pytest.raises(InvalidInput, match=rf"\({left} tr"):
            await engine.displays.pair("counter-1", wrong, actor=PAYER)
    clock.advance(1)
    with pytest.raises(InvalidInput, match="last try"):
        await engine.displays.pair("counter-1", wrong, actor=PAYER)
    clock.advance(1)
    with pytest.raises(InvalidInput, match="no pairing code is waiting"):
        await engine.displays.pair("counter-1", code.code, actor=PAYER)


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "12 34 5x"])
async def test_malformed_codes_are_refused_without_counting(engine: Engine, bad: str) -> None:
    code = await engine.displays.start_pairing("counter-1", actor=CASHIER)
    with pytest.raises(InvalidInput, match="6 digits"):
        await engine.displays.pair("counter-1", bad, actor=PAYER)
    assert (await engine.displays.pair("counter-1", code.code, actor=PAYER)).display.paired


async def test_a_token_opens_its_own_terminal_only_until_revoked(engine: Engine) -> None:
    code = await engine.displays.start_pairing("counter-1", actor=CASHIER)
    token = (await engine.displays.pair("counter-1", code.code, actor=PAYER)).token
    for terminal, presented in [("counter-2", token), ("counter-1", token[:-1] + ("A" if token[-1] != "A" else "B")),
                                ("counter-1", ""), ("counter-1", None), ("counter-1", "x" * 43)]:  # fmt: skip
        with pytest.raises(Unauthorized):
            await engine.displays.authenticate(terminal, presented)
    revoked = await engine.displays.revoke(code.display.id, actor=CASHIER)
    assert revoked.revoked_at is not None and revoked.status(engine.clock.now()) == "revoked"
    with pytest.raises(Unauthorized):
        await engine.displays.authenticate("counter-1", token)
    with pytest.raises(InvalidTransition, match="already revoked"):
        await engine.displays.revoke(code.display.id, actor=CASHIER)
    with pytest.raises(NotFound):
        await engine.displays.revoke("dsp_unknown", actor=CASHIER)
    (event,) = await _events(engine, "display.revoked")
    assert event.payload["terminal"] == "counter-1"


async def test_bad_terminal_names_are_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound):
        await engine.displays.start_pairing("Counter 1", actor=CASHIER)
    with pytest.raises(NotFound):
        await engine.displays.screen("../x")


async def test_the_screen_follows_the_terminals_newest_payment(engine: Engine, clock: ManualClock) -> None:
    assert (await engine.displays.screen("counter-1")).state == ScreenState.IDLE
    other = (await engine.payments.initiate("9.00", "USD", actor=CASHIER, terminal="counter-2")).payment
    api = (await engine.payments.initiate("7.00", "USD", actor=CASHIER)).payment
    assert (await engine.displays.screen("counter-1")).state == ScreenState.IDLE  # others' payments never show
    made = (await engine.payments.initiate("12.50", "USD", actor=CASHIER, terminal="counter-1")).payment
    screen = await engine.displays.screen("counter-1")
    assert (screen.state, screen.payment.id) == (ScreenState.PENDING, made.id)
    assert screen.seconds_left == int((made.expires_at - clock.now()).total_seconds())
    await engine.payments.mark_paid(made.id, actor=CASHIER, reason="test")
    paid = await engine.displays.screen("counter-1")
    assert (paid.state, paid.payment.id) == (ScreenState.PAID, made.id)
    assert paid.key != screen.key
    assert paid.seconds_left == int(engine.settings.display.paid_seconds)
    clock.advance(engine.settings.display.paid_seconds + 0.5)
    assert (await engine.displays.screen("counter-1")).state == ScreenState.IDLE
    # Cancelled goes straight back to idle; so does an expired one, even before the expirer runs.
    cancelled = (await engine.payments.initiate("3.00", "USD", actor=CASHIER, terminal="counter-1")).payment
    await engine.payments.cancel(cancelled.id, actor=CASHIER, reason="test")
    assert (await engine.displays.screen("counter-1")).state == ScreenState.IDLE
    late = (await engine.payments.initiate("4.00", "USD", actor=CASHIER, terminal="counter-1", timeout_minutes=1)).payment
    assert (await engine.displays.screen("counter-1")).state == ScreenState.PENDING
    clock.set(late.expires_at)
    assert (await engine.displays.screen("counter-1")).state == ScreenState.IDLE
    assert {other.id, api.id}.isdisjoint({screen.payment.id, paid.payment.id})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("port = 0", r"display\.port: must be from 1 to 65535"),
        ('public_url = "ftp://shop"', r"display\.public_url: must be an http:// or https:// address"),
        ("pairing_code_seconds = 5.0", r"display\.pairing_code_seconds: must be at least 10"),
        ("pairing_attempts = 0", r"display\.pairing_attempts: must be from 1 to 20"),
        ("paid_seconds = 0.0", r"display\.paid_seconds: must be greater than 0"),
    ],
)
def test_config_refuses_bad_display_settings(toml: str, message: str) -> None:
    from engine.config import parse_config_text
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_config_text(f"[display]\n{toml}\n")


def test_the_display_address(engine: Engine) -> None:
    import dataclasses

    assert engine.displays.url("counter-1") == "http://127.0.0.1:8082/display/counter-1"
    assert engine.displays.url("counter-1", served_at="http://10.0.0.5:9000/") == "http://10.0.0.5:9000/display/counter-1"
    settings = dataclasses.replace(engine.settings, display=dataclasses.replace(engine.settings.display, public_url="https://shop.example"))
    from engine.services.displays import DisplayService

    assert DisplayService(engine.storage, settings, clock=engine.clock).url("counter-1") == "https://shop.example/display/counter-1"
    with pytest.raises(NotFound):
        engine.displays.url("../etc")
