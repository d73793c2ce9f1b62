"""The renewer: idempotent passes, crash repair, batching, and two renewers on one database."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine import events as ev
from engine.clock import ManualClock
from engine.db import journal
from engine.db import subscriptions as repo
from engine.db.models import PaymentRow, SubscriptionInvoiceRow
from engine.records import Event, Plan, SubscriptionStatus as S
from engine.runtime import Engine
from engine.services.subscriptions import subscription_payment_listener
from engine.workers.renewer import Renewer
from tests.subscriptions.conftest import OPERATOR, mark_paid, subscribe_paid
from tests.support.engine import open_engine
from tests.support.settings import make_settings

DAY = timedelta(days=1)


async def drain(renewer: Renewer) -> None:
    while await renewer.run_once() == 0.0:
        pass


async def make_active(engine: Engine, users: list[str], plan: str = "basic") -> None:
    renewer = Renewer(engine.subscriptions)
    for user in users:
        await subscribe_paid(engine, user, plan)
    await drain(renewer)


async def counts(engine: Engine) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Renewal invoices per subscription, payments per invoice, subscription events by type."""
    async with engine.storage.read() as tx:
        invoices = Counter(
            (await tx.session.scalars(select(SubscriptionInvoiceRow.subscription_id).where(SubscriptionInvoiceRow.kind == "renewal"))).all()
        )
        payments = Counter((await tx.session.scalars(select(PaymentRow.invoice_id).where(PaymentRow.invoice_id.is_not(None)))).all())
        events = Counter(e.type for e in await journal.events_since(tx, 0, limit=100_000) if e.type.startswith("subscription."))
    return invoices, payments, events


async def test_running_the_renewer_again_changes_nothing(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    users = [f"user-{n}" for n in range(6)]
    await make_active(quiet_engine, users)
    clock.advance((30 - 2) * 86400)
    renewer = Renewer(quiet_engine.subscriptions)
    await drain(renewer)
    assert renewer.last_report.billed == 6
    first = await counts(quiet_engine)
    for _ in range(3):
        await drain(renewer)
        assert renewer.last_report.changes == 0
    assert await counts(quiet_engine) == first
    invoices, payments, events = first
    assert set(invoices.values()) == {1} and len(invoices) == 6
    assert all(n == 1 for inv, n in payments.items())
    assert events[ev.SUBSCRIPTION_RENEWAL_DUE] == 6


async def test_batches_ask_to_run_again(quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]) -> None:
    await make_active(quiet_engine, [f"user-{n}" for n in range(7)])
    clock.advance(29 * 86400)
    renewer = Renewer(quiet_engine.subscriptions, batch=3)
    assert await renewer.run_once() == 0.0 and renewer.last_report.billed == 3
    assert await renewer.run_once() == 0.0 and renewer.last_report.billed == 3
    assert await renewer.run_once() is None and renewer.last_report.billed == 1
    assert await renewer.run_once() is None and renewer.last_report.changes == 0


async def test_an_invoice_committed_without_its_payment_is_repaired(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    """A crash after the renewal invoice was committed, before its KHQR was created or recorded."""
    await make_active(quiet_engine, ["user-1", "user-2"])
    subs = quiet_engine.subscriptions
    one, two = [await subs.status(u) for u in ("user-1", "user-2")]
    clock.advance(28 * 86400)
    rows = [
        dict(subscription_id=v.id, period_start=v.period_end, period_end=v.period_end + 30 * DAY,
             plan_id=v.plan.id, amount_minor=20_000, currency="KHR")
        for v in (one, two)
    ]  # fmt: skip
    async with quiet_engine.storage.transaction() as tx:
        crashed = await repo.insert_renewal_invoices(tx, rows)
    assert len(crashed) == 2
    # user-2's KHQR was even created before the crash, but never recorded on its invoice
    orphan = await subs.create_payment(crashed[1], two.subscription, "basic", previous_id=None, actor=OPERATOR)

    renewer = Renewer(subs)
    await drain(renewer)
    assert renewer.last_report.repaired == 2
    for inv in crashed:
        async with quiet_engine.storage.read() as tx:
            fixed = await repo.get_invoice(tx, inv.id)
            paid_with = await tx.session.scalar(select(func.count()).where(PaymentRow.invoice_id == inv.id))
        assert fixed.payment_id is not None and paid_with == 1
    async with quiet_engine.storage.read() as tx:
        assert (await repo.get_invoice(tx, crashed[1].id)).payment_id == orphan.id, "the same KHQR, not a second one"
    await drain(renewer)
    invoices, payments, events = await counts(quiet_engine)
    assert invoices == Counter({one.id: 1, two.id: 1})
    assert events[ev.SUBSCRIPTION_RENEWAL_DUE] == 2


async def test_the_listener_pokes_on_paid_subscription_khqrs() -> None:
    pokes: list[int] = []
    listener = subscription_payment_listener(lambda: pokes.append(1))
    now = ManualClock().now()
    listener(Event(1, "msg_1", ev.PAYMENT_COMPLETED, "payment", "pay_1", {"subscription_id": None}, now))
    listener(Event(2, "msg_2", ev.PAYMENT_CREATED, "payment", "pay_2", {"subscription_id": "sub_1"}, now))
    assert pokes == []
    listener(Event(3, "msg_3", ev.PAYMENT_COMPLETED, "payment", "pay_3", {"subscription_id": "sub_1"}, now))
    assert pokes == [1]


@pytest.mark.postgres
async def test_two_renewers_on_postgres_bill_each_period_once(pg_url: str, clock: ManualClock) -> None:
    """Two engines (two processes' worth of renewers) on one PostgreSQL database, racing every step."""
    settings = make_settings(pg_url, bakong={"max_retries": 0})
    async with open_engine(settings, clock, holder="a", seed=7, run_workers=False) as a:
        async with open_engine(settings, clock, holder="b", seed=21, run_workers=False) as b:
            for code, price in (("basic", "20000"), ("pro", "50000")):
                await a.subscriptions.add_plan(code, code.title(), price, "KHR", 30, 0, actor=OPERATOR)
            users = [f"user-{n:02d}" for n in range(40)]
            await make_active(a, users)
            first_end = (await a.subscriptions.status(users[0])).period_end
            assert first_end is not None
            renewers = [Renewer(a.subscriptions, batch=7), Renewer(b.subscriptions, batch=11)]

            async def race() -> None:
                for _ in range(3):
                    await asyncio.gather(*(drain(r) for r in renewers))

            # billing: one renewal invoice, one KHQR, one renewal_due per subscription
            clock.set(first_end - 2 * DAY)
            await race()
            invoices, payments, events = await counts(a)
            assert len(invoices) == 40 and set(invoices.values()) == {1}
            renewal_payments = {k: n for k, n in payments.items() if k}
            assert sum(renewal_payments.values()) == 80  # 40 first payments + 40 renewals: one each
            assert set(renewal_payments.values()) == {1}
            assert events[ev.SUBSCRIPTION_RENEWAL_DUE] == 40

            # half pay; at period end: 20 renewed once, 20 past due once
            for user in users[:20]:
                item = (await a.subscriptions.status(user)).open_invoice("renewal")
                assert item is not None and item.payment is not None
                await mark_paid(a, item.payment.id)
            clock.set(first_end + DAY)
            await race()
            invoices, payments, events = await counts(a)
            assert events[ev.SUBSCRIPTION_RENEWED] == 20 and events[ev.SUBSCRIPTION_PAST_DUE] == 20
            states = Counter([(await a.subscriptions.status(u)).status for u in users])
            assert states == Counter({S.ACTIVE: 20, S.PAST_DUE: 20})
            # the renewal KHQRs expired a day before the period ended: each past-due subscription got
            # exactly one fresh KHQR despite the race, each renewed one kept its single paid KHQR
            async with a.storage.read() as tx:
                rows = (
                    await tx.session.execute(
                        select(SubscriptionInvoiceRow.subscription_id, func.count(PaymentRow.id))
                        .join(PaymentRow, PaymentRow.invoice_id == SubscriptionInvoiceRow.id)
                        .where(SubscriptionInvoiceRow.kind == "renewal")
                        .group_by(SubscriptionInvoiceRow.subscription_id)
                    )
                ).all()
            per_sub = {sid: n for sid, n in rows}
            ids = {u: (await a.subscriptions.status(u)).id for u in users}
            assert [per_sub[ids[u]] for u in users] == [1] * 20 + [2] * 20


class SteppingClock(ManualClock):
    """A manual clock whose monotonic reading moves on by ``step`` at every look: a slow machine."""

    def __init__(self, inner: ManualClock, step: float) -> None:
        super().__init__(inner.now())
        self._inner = inner
        self.step = step
        self.looks = 0.0

    def now(self):  # noqa: ANN201
        return self._inner.now()

    def monotonic(self) -> float:
        self.looks += self.step
        return self.looks


async def test_a_pass_that_runs_out_of_time_hands_over_to_the_next(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    await make_active(quiet_engine, [f"user-{n}" for n in range(8)])
    clock.advance(29 * 86400)
    slow = SteppingClock(clock, step=0.5)
    renewer = Renewer(quiet_engine.subscriptions, budget_seconds=1.0)
    renewer.clock = slow
    renewer.BILL_CHUNK = 2
    assert await renewer.run_once() == 0.0, "out of time: run again at once"
    first = renewer.last_report
    assert 0 < first.billed < 8 and "bill" in first.full
    passes = 1
    while await renewer.run_once() == 0.0:
        passes += 1
        assert passes < 20
    invoices, payments, events = await counts(quiet_engine)
    assert len(invoices) == 8 and set(invoices.values()) == {1}
    assert set(payments.values()) == {1}, "one KHQR per invoice"
    assert events[ev.SUBSCRIPTION_RENEWAL_DUE] == 8
