"""End to end through the built-in sandbox: create, pay, detect; wrong amount; timeout; late."""

from __future__ import annotations

from engine import events as ev
from engine.clock import ManualClock
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from tests.support.engine import events_for, run_for

CASHIER = Actor(ActorType.CASHIER, "dara")


async def _events(engine: Engine, subject_id: str) -> list[str]:
    return [e.type for e in await events_for(engine, subject_id)]


async def test_paid_payment_is_detected_once(engine: Engine, clock: ManualClock) -> None:
    created = await engine.payments.initiate("12.50", "USD", actor=CASHIER, reference="order-1")
    payment = created.payment
    assert created.created and payment.status is PaymentStatus.PENDING and payment.amount_minor == 1250
    await run_for(engine, clock, 3)
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=payment.khqr)
    await run_for(engine, clock, 10)
    done = await engine.payments.get(payment.id)
    assert done.status is PaymentStatus.PAID
    assert done.bakong_hash and done.paid_at is not None
    await run_for(engine, clock, 60)
    assert (await _events(engine, payment.id)).count(ev.PAYMENT_COMPLETED) == 1


async def test_wrong_amount_needs_review(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("5000", "KHR", actor=CASHIER)).payment
    await engine.sandbox.pay(qr=payment.khqr, wrong_amount=True)
    await run_for(engine, clock, 10)
    done = await engine.payments.get(payment.id)
    assert done.status is PaymentStatus.NEEDS_REVIEW
    assert done.bakong_hash is None
    assert ev.PAYMENT_NEEDS_REVIEW in await _events(engine, payment.id)


async def test_unpaid_times_out_and_late_payment_is_paid_late(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("1.00", "USD", actor=CASHIER, timeout_minutes=2)).payment
    await run_for(engine, clock, 130, step=5)
    timed_out = await engine.payments.get(payment.id)
    assert timed_out.status is PaymentStatus.TIMEOUT
    assert timed_out.late_watch_until is not None
    await engine.sandbox.pay(qr=payment.khqr, late_seconds=30)
    await run_for(engine, clock, 400, step=20)
    late = await engine.payments.get(payment.id)
    assert late.status is PaymentStatus.PAID_LATE, (late.check_count, late.last_check_result, late.next_check_at, late.late_watch_until, engine.poller_state)
    assert (await _events(engine, payment.id)) == [ev.PAYMENT_CREATED, ev.PAYMENT_TIMEOUT, ev.PAYMENT_PAID_LATE]
