"""Paid before the KHQR expired never ends PAID_LATE: the expirer's final check, and the
correction of a timeout when the transfer turns out to have been made in time. On SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import events as ev
from engine.clock import ManualClock
from engine.config import Settings
from engine.db import payments as repo
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from tests.support.engine import events_for, run_for
from tests.support.settings import make_settings

CASHIER = Actor(ActorType.CASHIER, "dara")


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    # a check at ~5 s and ~10 s, then none before the 2-minute expiry (as with checks every 30 s,
    # a payment made in the last seconds is not seen before the expiry); no client retries (a
    # retry sleeps on the manual clock inside the client)
    return make_settings(
        db_url,
        payments={"dense_window_seconds": 10.0, "sparse_interval_seconds": 600.0, "jitter": 0.0},
        bakong={"max_retries": 0},
    )


def _faults(engine: Engine, **changes: object) -> None:
    assert engine.sandbox is not None
    engine.sandbox.faults = engine.sandbox.faults.updated(dict(changes))


async def _history(engine: Engine, payment_id: str) -> list[str]:
    async with engine.storage.read() as tx:
        return [change.to_status for change in await repo.history(tx, payment_id)]


async def test_paid_seconds_before_expiry_is_paid_without_a_timeout(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("1.00", "USD", actor=CASHIER, timeout_minutes=2)).payment
    await run_for(engine, clock, 112, step=4)
    await engine.sandbox.pay(qr=payment.khqr)  # 8 s before the expiry; no check is due before it
    await run_for(engine, clock, 30, step=2)
    done = await engine.payments.get(payment.id)
    assert done.status is PaymentStatus.PAID
    assert done.paid_at is not None and done.paid_at <= done.expires_at
    assert [e.type for e in await events_for(engine, payment.id)] == [ev.PAYMENT_CREATED, ev.PAYMENT_COMPLETED]
    assert await _history(engine, payment.id) == ["PENDING", "PAID"]


async def test_unpaid_expiry_asks_once_and_times_out(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("1.00", "USD", actor=CASHIER, timeout_minutes=2)).payment
    await run_for(engine, clock, 112, step=4)
    calls = engine.sandbox.stats["total"]
    await run_for(engine, clock, 30, step=2)
    timed_out = await engine.payments.get(payment.id)
    assert timed_out.status is PaymentStatus.TIMEOUT
    assert engine.sandbox.stats["total"] == calls + 1, "one final check, and no second look at the same instant"
    assert timed_out.last_check_result == "not_found" and timed_out.last_checked_at == timed_out.expires_at
    assert timed_out.next_check_at is not None and timed_out.next_check_at > clock.now()


async def test_one_final_check_sends_no_bulk_probe(engine: Engine, clock: ManualClock) -> None:
    """Where the bulk endpoint answers 403, one expiring payment's final check costs one request."""
    _faults(engine, bulk_blocked=True)
    payment = (await engine.payments.initiate("1.00", "USD", actor=CASHIER, timeout_minutes=2)).payment
    await run_for(engine, clock, 112, step=4)
    calls = engine.sandbox.stats["total"]
    await run_for(engine, clock, 30, step=2)
    timed_out = await engine.payments.get(payment.id)
    assert timed_out.status is PaymentStatus.TIMEOUT and timed_out.last_checked_at == timed_out.expires_at
    assert engine.sandbox.stats["total"] == calls + 1


async def test_a_timeout_found_paid_in_time_is_corrected_to_paid_never_paid_late(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("1.00", "USD", actor=CASHIER, timeout_minutes=2)).payment
    await run_for(engine, clock, 112, step=4)
    await engine.sandbox.pay(qr=payment.khqr)
    _faults(engine, error_rate=1.0)  # Bakong down across the expiry: no final check can be had
    await run_for(engine, clock, 20, step=2)
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.TIMEOUT
    _faults(engine, error_rate=0.0)
    await run_for(engine, clock, 600, step=10)
    done = await engine.payments.get(payment.id)
    assert done.status is PaymentStatus.PAID
    assert done.paid_at is not None and done.paid_at < done.expires_at
    events = await events_for(engine, payment.id)
    assert [e.type for e in events] == [ev.PAYMENT_CREATED, ev.PAYMENT_TIMEOUT, ev.PAYMENT_COMPLETED]
    completed = events[-1].payload
    assert completed["corrected"] is True and completed["previous_status"] == "TIMEOUT"
    assert await _history(engine, payment.id) == ["PENDING", "TIMEOUT", "PAID"]


async def test_a_transfer_made_after_the_expiry_is_paid_late(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("1.00", "USD", actor=CASHIER, timeout_minutes=2)).payment
    await run_for(engine, clock, 130, step=5)
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.TIMEOUT
    await engine.sandbox.pay(qr=payment.khqr, late_seconds=20)
    await run_for(engine, clock, 400, step=20)
    late = await engine.payments.get(payment.id)
    assert late.status is PaymentStatus.PAID_LATE
    assert late.paid_at is not None and late.paid_at > late.expires_at + timedelta(seconds=19)
    events = await events_for(engine, payment.id)
    assert [e.type for e in events] == [ev.PAYMENT_CREATED, ev.PAYMENT_TIMEOUT, ev.PAYMENT_PAID_LATE]
    assert "corrected" not in events[-1].payload
