"""Payment use cases: idempotency, validation, monitor, bulk check, operator decisions, search, CSV."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from datetime import timedelta

import pytest

from engine import events as ev
from engine.clock import ManualClock
from engine.db import journal
from engine.db.payments import PaymentFilter
from engine.errors import IdempotencyConflict, InvalidInput, InvalidTransition, NotFound
from engine.khqr import decode, verify
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from tests.support.engine import run_for, settle

CASHIER = Actor(ActorType.CASHIER, "dara")
OPERATOR = Actor(ActorType.CLI, "sokha")


async def test_initiate_makes_a_dynamic_khqr_that_expires_with_the_payment(engine: Engine, clock: ManualClock) -> None:
    p = (await engine.payments.initiate("12.50", "USD", actor=CASHIER, bill_number="INV-7", timeout_minutes=10)).payment
    assert verify(p.khqr, now_ms=int(clock.now().timestamp() * 1000))
    fields = decode(p.khqr)
    assert fields["transaction_amount"] == "12.50"
    assert fields["bill_number"] == "INV-7"
    assert int(fields["expiration_timestamp"]) == int(p.expires_at.timestamp() * 1000)
    assert (p.expires_at - p.created_at).total_seconds() == 600
    assert p.receiving_account == engine.settings.merchant.bakong_account_id


async def test_same_idempotency_key_returns_the_same_payment(engine: Engine) -> None:
    first = await engine.payments.initiate("5000", "KHR", actor=CASHIER, idempotency_key="order-9", reference="order-9")
    again = await engine.payments.initiate("5000", "KHR", actor=CASHIER, idempotency_key="order-9", reference="order-9")
    assert first.created and not again.created
    assert again.payment.id == first.payment.id
    with pytest.raises(IdempotencyConflict):
        await engine.payments.initiate("5100", "KHR", actor=CASHIER, idempotency_key="order-9", reference="order-9")
    page, _ = await engine.payments.search(PaymentFilter())
    assert len(page) == 1


async def test_concurrent_requests_with_one_key_create_one_payment(engine: Engine) -> None:
    results = await asyncio.gather(
        *[engine.payments.initiate("1.00", "USD", actor=CASHIER, idempotency_key="k1") for _ in range(5)]
    )
    assert len({r.payment.id for r in results}) == 1
    assert sum(r.created for r in results) == 1


@pytest.mark.parametrize(
    ("amount", "currency", "field"),
    [("0", "USD", "amount"), ("-1", "KHR", "amount"), ("1.005", "USD", "amount"), ("10.5", "KHR", "amount"),
     ("abc", "USD", "amount"), ("1", "EUR", "currency")],
)  # fmt: skip
async def test_bad_amounts_are_refused_and_nothing_is_written(engine: Engine, amount: str, currency: str, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        await engine.payments.initiate(amount, currency, actor=CASHIER)
    assert info.value.field == field
    page, _ = await engine.payments.search(PaymentFilter())
    assert page == []


async def test_timeout_and_text_fields_are_validated(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="timeout"):
        await engine.payments.initiate("1", "USD", actor=CASHIER, timeout_minutes=0)
    with pytest.raises(InvalidInput, match="reference"):
        await engine.payments.initiate("1", "USD", actor=CASHIER, reference="x" * 101)


async def test_monitor_returns_when_the_poller_finds_the_payment(engine: Engine, clock: ManualClock) -> None:
    p = (await engine.payments.initiate("2.00", "USD", actor=CASHIER)).payment
    waiter = asyncio.create_task(engine.payments.monitor(p.id, timeout=300))
    await engine.sandbox.pay(qr=p.khqr)
    await run_for(engine, clock, 10)
    done = await asyncio.wait_for(waiter, 5)
    assert done.status is PaymentStatus.PAID


async def test_monitor_gives_up_at_its_deadline_with_the_payment_still_pending(engine: Engine, clock: ManualClock) -> None:
    p = (await engine.payments.initiate("2.00", "USD", actor=CASHIER)).payment
    waiter = asyncio.create_task(engine.payments.monitor(p.id, timeout=30))
    await run_for(engine, clock, 31)
    await asyncio.sleep(0.05)
    done = await asyncio.wait_for(waiter, 5)
    assert done.status is PaymentStatus.PENDING


async def test_customer_says_paid_jumps_the_queue(engine: Engine, clock: ManualClock) -> None:
    p = (await engine.payments.initiate("2.00", "USD", actor=CASHIER)).payment
    await run_for(engine, clock, 400, step=10)  # into the sparse phase: next check up to 30 s away
    await engine.sandbox.pay(qr=p.khqr)
    await engine.payments.request_check(p.id, actor=CASHIER)
    await settle(engine)
    clock.advance(0.01)
    await settle(engine)
    assert (await engine.payments.get(p.id)).status is PaymentStatus.PAID


async def test_check_now_and_bulk_check_apply_answers(engine: Engine) -> None:
    a = (await engine.payments.initiate("1.00", "USD", actor=CASHIER)).payment
    b = (await engine.payments.initiate("2.00", "USD", actor=CASHIER)).payment
    await engine.sandbox.pay(qr=a.khqr)
    checked, outcome = await engine.payments.check_now(a.id, actor=OPERATOR)
    assert checked.status is PaymentStatus.PAID and outcome.paid
    with pytest.raises(InvalidTransition):
        await engine.payments.check_now(a.id, actor=OPERATOR)
    await engine.sandbox.pay(qr=b.khqr)
    result = await engine.payments.bulk_check([a.md5, b.md5.upper(), "f" * 32], actor=OPERATOR)
    assert result[a.md5].status is PaymentStatus.PAID
    assert result[b.md5].status is PaymentStatus.PAID
    assert result["f" * 32] is None
    with pytest.raises(InvalidInput):
        await engine.payments.bulk_check(["not-an-md5"], actor=OPERATOR)


async def test_cancel_only_pending(engine: Engine) -> None:
    p = (await engine.payments.initiate("1.00", "USD", actor=CASHIER)).payment
    cancelled = await engine.payments.cancel(p.id, actor=OPERATOR, reason="customer left")
    assert cancelled.status is PaymentStatus.CANCELLED
    # its KHQR can still be paid until it expires: watched until then and the late watch after
    assert cancelled.next_check_at is not None and cancelled.late_watch_until == p.expires_at + timedelta(minutes=60)
    with pytest.raises(InvalidTransition, match="only a PENDING"):
        await engine.payments.cancel(p.id, actor=OPERATOR)
    with pytest.raises(NotFound):
        await engine.payments.cancel("pay_missing", actor=OPERATOR)


async def test_resolve_needs_review_with_a_reason_and_it_is_audited(engine: Engine, clock: ManualClock) -> None:
    p = (await engine.payments.initiate("10000", "KHR", actor=CASHIER)).payment
    await engine.sandbox.pay(qr=p.khqr, wrong_amount=True)
    await run_for(engine, clock, 10)
    assert (await engine.payments.get(p.id)).status is PaymentStatus.NEEDS_REVIEW
    with pytest.raises(InvalidInput, match="reason"):
        await engine.payments.resolve(p.id, accept=True, actor=OPERATOR, reason=" ")
    accepted = await engine.payments.resolve(p.id, accept=True, actor=OPERATOR, reason="customer paid the rest in cash")
    assert accepted.status is PaymentStatus.PAID
    async with engine.storage.read() as tx:
        entries = await journal.list_audit(tx, subject_id=p.id)
    resolve = [e for e in entries if e.action == "payment.resolve"]
    assert resolve and resolve[0].reason == "customer paid the rest in cash" and resolve[0].actor == "sokha"


async def test_mark_paid_by_hand(engine: Engine) -> None:
    p = (await engine.payments.initiate("1.00", "USD", actor=CASHIER)).payment
    with pytest.raises(InvalidInput):
        await engine.payments.mark_paid(p.id, actor=OPERATOR, reason="")
    done = await engine.payments.mark_paid(p.id, actor=OPERATOR, reason="seen in the ABA app")
    assert done.status is PaymentStatus.PAID
    events = await engine.payments.events_since(0)
    completed = [e for e in events if e.type == ev.PAYMENT_COMPLETED]
    assert completed[0].payload["manual"] is True


async def test_search_pages_and_csv_export(engine: Engine, clock: ManualClock) -> None:
    for n in range(7):
        await engine.payments.initiate(f"{n + 1}.00", "USD", actor=CASHIER, reference=f"R{n}")
        clock.advance(1)
    page1, cursor = await engine.payments.search(PaymentFilter(currency="USD"), limit=3)
    page2, cursor2 = await engine.payments.search(PaymentFilter(currency="USD"), limit=3, cursor=cursor)
    page3, end = await engine.payments.search(PaymentFilter(currency="USD"), limit=3, cursor=cursor2)
    refs = [p.reference for p in page1 + page2 + page3]
    assert refs == [f"R{n}" for n in range(6, -1, -1)] and end is None
    crafted = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00", "x"]).encode()).decode().rstrip("=")
    for bad in (crafted, "not-a-cursor", "e30"):
        with pytest.raises(InvalidInput, match="invalid cursor"):
            await engine.payments.search(PaymentFilter(), cursor=bad)
    found, _ = await engine.payments.search(PaymentFilter(text="R3"))
    assert [p.reference for p in found] == ["R3"]
    out = io.StringIO()
    assert await engine.payments.export_csv(out, PaymentFilter()) == 7
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["reference"] == "R6" and rows[0]["amount"] == "7.00" and rows[0]["status"] == "PENDING"


async def test_events_since_validates(engine: Engine) -> None:
    with pytest.raises(InvalidInput):
        await engine.payments.events_since(-1)
    with pytest.raises(InvalidInput):
        await engine.payments.events_since(0, types=["payment.nope"])
