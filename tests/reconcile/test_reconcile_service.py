"""Reconciliation with Bakong through the built-in sandbox, on SQLite and PostgreSQL: each kind of
drift flagged with its event and one alert; the budget share never exceeded; refusals change nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine import events as ev
from engine.bakong.budget import bakong_day
from engine.clock import ManualClock
from engine.config import Settings
from engine.db import journal
from engine.db import reconciliation as repo
from engine.db.ledger import DatabaseRequestLedger
from engine.records import Actor, ActorType, Payment, PaymentStatus
from engine.runtime import Engine
from engine.services.reconciliation import BudgetShare
from tests.support.engine import run_for
from tests.support.settings import make_settings

CASHIER = Actor(ActorType.CASHIER, "dara")
OPERATOR = Actor(ActorType.CLI, "owner")

#: One payment per outcome, the amounts distinct so a mix-up shows.
AMOUNTS = {"ok": "1.00", "not_found": "2.00", "amount": "3.00", "currency": "4.00", "account": "5.00", "failed": "6.00"}


async def paid_payments(engine: Engine, clock: ManualClock, amounts: list[str]) -> list[Payment]:
    """Payments made and paid in the sandbox, found PAID by the poller."""
    made = [(await engine.payments.initiate(a, "USD", actor=CASHIER)).payment for a in amounts]
    assert engine.sandbox is not None
    for p in made:
        await engine.sandbox.pay(qr=p.khqr)
    await run_for(engine, clock, 130, step=5)  # a 1000-request day puts the poller on its scarce schedule
    paid = [await engine.payments.get(p.id) for p in made]
    assert all(p.status is PaymentStatus.PAID and p.bakong_hash for p in paid), [(p.status, p.check_count, p.last_check_result, p.next_check_at, clock.now()) for p in paid]
    return paid


async def events_of(engine: Engine, type_: str) -> list:
    async with engine.storage.read() as tx:
        return [e for e in await journal.events_since(tx, 0, limit=10_000) if e.type == type_]


async def reconcile_requests(engine: Engine) -> int:
    async with engine.storage.read() as tx:
        return (await repo.requests_on(tx, bakong_day(engine.clock.now())))[1]


@pytest.mark.parametrize("hash_list_blocked", [False, True], ids=["bulk", "single"])
async def test_each_drift_is_flagged_with_its_event_and_one_alert(engine: Engine, clock: ManualClock, hash_list_blocked: bool) -> None:
    paid = await paid_payments(engine, clock, list(AMOUNTS.values()))
    by_kind = dict(zip(AMOUNTS, paid, strict=True))
    assert engine.sandbox is not None
    engine.sandbox.faults = engine.sandbox.faults.updated({
        "hash_list_blocked": hash_list_blocked,
        "hash_drift": {p.bakong_hash: kind for kind, p in by_kind.items() if kind != "ok"},
    })  # fmt: skip
    today = bakong_day(clock.now())

    run = await engine.reconciliation.reconcile(actor=OPERATOR, day=today)

    expected = {"ok": "ok", "not_found": "not_found", "amount": "amount_mismatch", "currency": "currency_mismatch",
                "account": "account_mismatch", "failed": "failed"}  # fmt: skip
    for kind, p in by_kind.items():
        now = await engine.payments.get(p.id)
        assert now.reconcile_status == expected[kind], kind
        assert now.reconciled_at == clock.now()
        assert now.status is PaymentStatus.PAID, "a flag does not change the payment's status"
    assert [p.id for p in run.reconciled] == [by_kind["ok"].id]
    # one request for all six on the list endpoint; blocked: its HTML 403, then one per hash
    assert run.requests == (7 if hash_list_blocked else 1)
    assert await reconcile_requests(engine) == run.requests

    failed = await events_of(engine, ev.PAYMENT_RECONCILIATION_FAILED)
    assert {e.subject_id: e.payload["reconcile_status"] for e in failed} == {
        by_kind[k].id: expected[k] for k in AMOUNTS if k != "ok"
    }
    amount_event = next(e for e in failed if e.subject_id == by_kind["amount"].id)
    assert amount_event.payload["found"]["amount"] == "3.01" and amount_event.payload["amount"] == "3.00"
    alerts = await events_of(engine, ev.ALERT_RECONCILIATION_FAILED)
    assert len(alerts) == 1
    assert alerts[0].payload["counts"] == {
        "account_mismatch": 1, "amount_mismatch": 1, "currency_mismatch": 1, "failed": 1, "not_found": 1,
    }  # fmt: skip

    counts = await engine.reconciliation.summary(today)
    assert (counts.paid, counts.reconciled, counts.flagged_total, counts.unchecked) == (6, 1, 5, 0)

    # nothing left to check: a second run sends nothing and raises no second alert
    again = await engine.reconciliation.reconcile(actor=OPERATOR, day=today)
    assert again.requests == 0 and not again.flagged
    assert len(await events_of(engine, ev.ALERT_RECONCILIATION_FAILED)) == 1


async def test_clean_day_is_all_reconciled_without_events(engine: Engine, clock: ManualClock) -> None:
    await paid_payments(engine, clock, ["1.00", "2.50"])
    today = bakong_day(clock.now())
    run = await engine.reconciliation.reconcile(actor=OPERATOR, day=today)
    assert len(run.reconciled) == 2 and run.requests == 1
    assert await events_of(engine, ev.PAYMENT_RECONCILIATION_FAILED) == []
    assert await events_of(engine, ev.ALERT_RECONCILIATION_FAILED) == []
    counts = await engine.reconciliation.summary(today)
    assert (counts.paid, counts.reconciled, counts.flagged, counts.unchecked) == (2, 2, {}, 0)
    # another day holds none of them
    assert (await engine.reconciliation.summary(today - timedelta(days=1))).paid == 0


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    return make_settings(db_url, bakong={"daily_budget": 1000}, payments={"reserve_requests": 3})


async def spend_yesterday(engine: Engine, clock: ManualClock, n: int, endpoint: str = "check_transaction_by_md5_list") -> None:
    """Live polling's requests of the previous Bakong day, as the ledger records them."""
    ledger = DatabaseRequestLedger(engine.storage)
    for _ in range(n):
        await ledger.reserve(engine.client.fingerprint, endpoint, now=clock.now() - timedelta(days=1), daily_budget=1000)


async def test_the_share_is_what_live_polling_left_yesterday_and_never_more(engine: Engine, clock: ManualClock) -> None:
    paid = await paid_payments(engine, clock, [f"{i}.00" for i in range(1, 11)])
    await spend_yesterday(engine, clock, 990)  # 1000 - 3 reserved - 990 live = 7 for reconciliation
    await spend_yesterday(engine, clock, 2, endpoint="check_transaction_by_hash")  # last night's reconciliation
    share = await engine.reconciliation.share()
    assert (share.live_previous_day, share.allowed, share.spent, share.left) == (990, 7, 0, 7)
    assert engine.sandbox is not None
    engine.sandbox.faults = engine.sandbox.faults.updated({"hash_list_blocked": True})
    today = bakong_day(clock.now())

    run = await engine.reconciliation.reconcile(actor=OPERATOR, day=today)

    assert run.requests == 7 and await reconcile_requests(engine) == 7
    assert len(run.reconciled) == 6, "the 403 of the list endpoint spent one of the seven"
    assert "share" in (run.stopped or "")
    oldest_first = sorted(paid, key=lambda p: (p.paid_at, p.id))
    checked = [(await engine.payments.get(p.id)).reconcile_status for p in oldest_first]
    assert checked == ["ok"] * 6 + [None] * 4, "oldest paid first"
    assert (await engine.reconciliation.summary(today)).unchecked == 4
    later = await engine.reconciliation.reconcile(actor=OPERATOR, day=today)
    assert later.requests == 0 and await reconcile_requests(engine) == 7


async def test_max_requests_caps_a_run_below_the_share(engine: Engine, clock: ManualClock) -> None:
    await paid_payments(engine, clock, ["1.00", "2.00", "3.00"])
    assert engine.sandbox is not None
    engine.sandbox.faults = engine.sandbox.faults.updated({"hash_list_blocked": True})
    run = await engine.reconciliation.reconcile(actor=OPERATOR, day=bakong_day(clock.now()), max_requests=2)
    assert run.requests == 2 and len(run.reconciled) == 1


def test_share_keeps_the_reserve_of_what_is_left_today() -> None:
    day = date(2026, 1, 15)
    roomy = BudgetShare(day=day, budget=100, reserve=3, live_previous_day=40, spent=10, remaining_today=80)
    assert (roomy.allowed, roomy.left) == (57, 47)
    tight = BudgetShare(day=day, budget=100, reserve=3, live_previous_day=40, spent=10, remaining_today=12)
    assert tight.left == 9, "today's last reserve_requests stay for live polling"
    busy = BudgetShare(day=day, budget=100, reserve=3, live_previous_day=99, spent=0, remaining_today=100)
    assert (busy.allowed, busy.left) == (0, 0)


async def test_a_refusal_leaves_every_payment_unchecked(engine: Engine, clock: ManualClock) -> None:
    paid = await paid_payments(engine, clock, ["1.00", "2.00"])
    assert engine.sandbox is not None
    engine.sandbox.faults = engine.sandbox.faults.updated({"error_rate": 1.0})
    run = await engine.reconciliation.reconcile(actor=OPERATOR, day=bakong_day(clock.now()))
    assert run.stopped and "503" in run.stopped
    assert run.requests == 1, "no retry: what was not answered waits for the next pass"
    assert [(await engine.payments.get(p.id)).reconcile_status for p in paid] == [None, None]
    assert await events_of(engine, ev.PAYMENT_RECONCILIATION_FAILED) == []
    assert await events_of(engine, ev.ALERT_RECONCILIATION_FAILED) == []


async def test_a_future_day_is_refused(engine: Engine, clock: ManualClock) -> None:
    from engine.errors import InvalidInput

    with pytest.raises(InvalidInput, match="in the future"):
        await engine.reconciliation.reconcile(actor=OPERATOR, day=bakong_day(clock.now()) + timedelta(days=1))


async def test_again_rechecks_a_reconciled_day_and_catches_a_later_drift(engine: Engine, clock: ManualClock) -> None:
    first, second = await paid_payments(engine, clock, ["1.00", "2.00"])
    today = bakong_day(clock.now())
    assert len((await engine.reconciliation.reconcile(actor=OPERATOR, day=today)).reconciled) == 2
    assert engine.sandbox is not None
    engine.sandbox.faults = engine.sandbox.faults.updated({"hash_drift": {second.bakong_hash: "account"}})
    assert (await engine.reconciliation.reconcile(actor=OPERATOR, day=today)).requests == 0, "done once, not again"
    run = await engine.reconciliation.reconcile(actor=OPERATOR, day=today, include_checked=True)
    assert run.requests == 1 and [p.id for p in run.flagged] == [second.id]
    assert [(await engine.payments.get(p.id)).reconcile_status for p in (first, second)] == ["ok", "account_mismatch"]
    assert [e.subject_id for e in await events_of(engine, ev.PAYMENT_RECONCILIATION_FAILED)] == [second.id]
