"""Seeding for the console's snapshot tests: payments made through the engine on the manual clock,
in one order of events every run (the workers park between steps, so check counts, ids and Bakong
hashes come out the same)."""

from __future__ import annotations

from typing import Any

from engine.clock import ManualClock
from engine.records import Payment, PaymentStatus
from engine.runtime import Engine
from tests.support.engine import run_for, settle
from tests.tui.conftest import CASHIER, OPERATOR

#: A privileged loopback port nothing listens on: deliveries fail with a refused connection.
REFUSING_ENDPOINT = "http://127.0.0.1:9/hooks"


async def new_payment(engine: Engine, clock: ManualClock, amount: str, currency: str, reference: str | None, *, gap: float = 20) -> Payment:
    payment = (await engine.payments.initiate(amount, currency, actor=CASHIER, reference=reference)).payment
    # The workers act on it (first check, webhooks) at its creation time and are parked again
    # before anything else happens: one order of events, the same every run.
    await run_for(engine, clock, gap, step=gap)
    return payment


async def customer_pays(engine: Engine, payment: Payment, **how: Any) -> None:
    """The sandbox pays the QR and the cashier says so (a check ahead of the schedule)."""
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=payment.khqr, **how)
    await engine.payments.request_check(payment.id, actor=CASHIER)
    # The workers and the sandbox draw from one seeded Random: let the poller finish before the
    # next draw, so the draws (check times, Bakong hashes) come in the same order every run.
    await settle(engine)


async def seed_busy_board(engine: Engine, clock: ManualClock) -> dict[str, Payment]:
    """A dozen payments in every status an operator meets, KHR and USD, minutes apart."""
    p: dict[str, Payment] = {}
    p["timeout"] = await new_payment(engine, clock, "12000", "KHR", "table-2", gap=7)
    p["late"] = await new_payment(engine, clock, "4.50", "USD", "table-9", gap=7)
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=p["late"].khqr, late_seconds=30)
    # Second by second through the expiries, so the expirer and the poller never wake at one
    # instant (which of them went first would change the check counts from run to run).
    await run_for(engine, clock, 14 * 60 + 40, step=120)  # to 10:14:54
    await run_for(engine, clock, 16, step=1)  # the expiries at 10:15:00 and 10:15:07
    await run_for(engine, clock, 5 * 60 + 10, step=155)  # the late watch finds table-9 paid

    p["paid_khr"] = await new_payment(engine, clock, "25000", "KHR", "order-1041")
    p["paid_usd"] = await new_payment(engine, clock, "8.00", "USD", "order-1042")
    p["cancelled"] = await new_payment(engine, clock, "6500", "KHR", "table-5")
    p["review"] = await new_payment(engine, clock, "10.00", "USD", "order-1043")
    p["failed"] = await new_payment(engine, clock, "3.25", "USD", "table-7")
    p["paid_big"] = await new_payment(engine, clock, "150000", "KHR", "invoice-88")
    for key in ("paid_khr", "paid_usd", "paid_big"):
        await customer_pays(engine, p[key])
    for key in ("review", "failed"):
        await customer_pays(engine, p[key], wrong_amount=True)
    await engine.payments.cancel(p["cancelled"].id, actor=CASHIER, reason="customer left")
    await run_for(engine, clock, 10, step=5)
    await engine.payments.resolve(p["failed"].id, accept=False, actor=OPERATOR, reason="refunded the 3.24 USD by bank transfer")

    p["pending_khr"] = await new_payment(engine, clock, "40000", "KHR", "table-3")
    p["pending_usd"] = await new_payment(engine, clock, "2.75", "USD", "walk-in")
    p["pending_noref"] = await new_payment(engine, clock, "9900", "KHR", None)
    p["says_paid"] = await new_payment(engine, clock, "15.00", "USD", "order-1044", gap=30)
    await engine.payments.request_check(p["says_paid"].id, actor=CASHIER)
    await run_for(engine, clock, 5, step=5)
    for key, status in {
        "timeout": PaymentStatus.TIMEOUT, "late": PaymentStatus.PAID_LATE, "paid_khr": PaymentStatus.PAID,
        "paid_usd": PaymentStatus.PAID, "cancelled": PaymentStatus.CANCELLED, "review": PaymentStatus.NEEDS_REVIEW,
        "failed": PaymentStatus.FAILED, "paid_big": PaymentStatus.PAID, "pending_khr": PaymentStatus.PENDING,
    }.items():  # fmt: skip
        assert (await engine.payments.get(p[key].id)).status is status, key
    return p


async def seed_refusing_endpoint(engine: Engine, clock: ManualClock) -> Payment:
    """An endpoint whose backend is down, and a paid payment whose webhooks it failed."""
    await engine.webhooks.add_endpoint(REFUSING_ENDPOINT, description="main backend", actor=OPERATOR)
    payment = await new_payment(engine, clock, "7.77", "USD", "order-2001", gap=30)
    await customer_pays(engine, payment)
    await run_for(engine, clock, 2, step=2)
    # payment.created failed twice and waits for its next try; payment.completed queues behind it.
    page, _ = await engine.webhooks.list_deliveries(failed_only=True)
    assert [(d.event_type, d.attempt_count) for d in page] == [("payment.created", 2)]
    assert page[0].last_error is not None and page[0].last_error.startswith("cannot connect")
    return payment
