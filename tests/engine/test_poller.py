"""The poller under Bakong's bad days: expired token, spent quota, blocked bulk endpoint, storms,
and two engines sharing one database. Every scenario on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest

from engine import events as ev
from engine.bakong.models import CheckOutcome, CheckStatus
from engine.clock import ManualClock
from engine.config import Settings
from engine.db import journal
from engine.db import payments as repo
from engine.errors import Conflict
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from engine.services.settlement import apply_outcome
from tests.support.engine import open_engine, run_for
from tests.support.settings import make_settings

CASHIER = Actor(ActorType.CASHIER, "dara")


def _faults(engine: Engine, **changes: object) -> None:
    assert engine.sandbox is not None
    engine.sandbox.faults = engine.sandbox.faults.updated(dict(changes))


def _calls(engine: Engine) -> int:
    assert engine.sandbox is not None
    return engine.sandbox.stats["total"]


async def _event_types(engine: Engine) -> Counter[str]:
    async with engine.storage.read() as tx:
        return Counter(e.type for e in await journal.events_since(tx, 0, limit=10_000))


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    # no client-side retries: a retry sleeps on the manual clock inside the client
    return make_settings(db_url, bakong={"max_retries": 0})


async def test_expired_token_pauses_polling_with_one_alert_until_a_new_token(engine: Engine, clock: ManualClock) -> None:
    _faults(engine, token_expired=True)
    payment = (await engine.payments.initiate("2.00", "USD", actor=CASHIER, timeout_minutes=60)).payment
    await run_for(engine, clock, 10)
    assert engine.poller_state.paused_reason is not None
    calls = _calls(engine)
    await run_for(engine, clock, 120, step=10)
    assert _calls(engine) == calls, "a paused poller sends nothing"
    assert (await _event_types(engine))[ev.ALERT_TOKEN_EXPIRED] == 1
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PENDING

    _faults(engine, token_expired=False)
    await engine.sandbox.pay(qr=payment.khqr)
    await engine.client.set_token(await engine.sandbox.renew_token())
    await run_for(engine, clock, 60, step=5)
    assert engine.poller_state.paused_reason is None
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PAID


async def test_spent_quota_sends_nothing_until_local_midnight(engine: Engine, clock: ManualClock) -> None:
    _faults(engine, daily_quota=3)
    payment = (await engine.payments.initiate("4000", "KHR", actor=CASHIER, timeout_minutes=24 * 60)).payment
    await run_for(engine, clock, 30)
    assert _calls(engine) == 4  # three answered, the fourth said errorCode 17
    usage = await engine.client.budget_usage()
    assert usage.exhausted_until is not None
    assert (await _event_types(engine))[ev.ALERT_QUOTA_EXHAUSTED] == 1
    await engine.sandbox.pay(qr=payment.khqr)
    # 03:00 UTC + 13h50m is still before midnight in Phnom Penh (17:00 UTC): nothing is sent
    await run_for(engine, clock, 13 * 3600 + 50 * 60, step=600)
    assert _calls(engine) == 4
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PENDING
    await run_for(engine, clock, 20 * 60, step=60)
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PAID


async def _resumes(engine: Engine) -> list[str | None]:
    async with engine.storage.read() as tx:
        return [entry.reason for entry in await journal.list_audit(tx, action="poller.resume")]


async def test_a_paused_poller_probes_the_same_token_and_resumes_when_it_works_again(engine: Engine, clock: ManualClock) -> None:
    probe = 600.0  # bakong.token_probe_seconds, the default
    _faults(engine, token_expired=True)
    payment = (await engine.payments.initiate("2.00", "USD", actor=CASHIER, timeout_minutes=24 * 60)).payment
    await run_for(engine, clock, 10)
    assert engine.poller_state.paused_reason is not None
    calls = _calls(engine)
    # Still refused: one probe after token_probe_seconds, the next only after twice that.
    await run_for(engine, clock, probe, step=10)
    assert _calls(engine) == calls + 1
    await run_for(engine, clock, probe * 2 - 30, step=10)
    assert _calls(engine) == calls + 1 and engine.poller_state.paused_reason is not None
    # The fault clears; the same token is stored again: the next probe finds it works.
    _faults(engine, token_expired=False)
    await engine.client.set_token(engine.sandbox.token)
    await engine.sandbox.pay(qr=payment.khqr)
    await run_for(engine, clock, 60, step=5)
    assert engine.poller_state.paused_reason is None
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PAID
    assert await _resumes(engine) == ["token accepted again"]
    assert (await _event_types(engine))[ev.ALERT_TOKEN_EXPIRED] == 1


async def test_a_token_renewed_during_the_quota_latch_is_taken_up_at_once(engine: Engine, clock: ManualClock) -> None:
    _faults(engine, daily_quota=3)
    payment = (await engine.payments.initiate("4000", "KHR", actor=CASHIER, timeout_minutes=24 * 60)).payment
    await run_for(engine, clock, 30)
    assert engine.poller_state.blocked_until is not None and _calls(engine) == 4
    await engine.sandbox.pay(qr=payment.khqr)
    # A renewed token is set (the sandbox's quota, as Bakong's, is per token).
    await engine.client.set_token(await engine.sandbox.renew_token())
    await run_for(engine, clock, 15, step=1)
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PAID


async def test_blocked_bulk_endpoint_falls_back_to_single_checks(engine: Engine, clock: ManualClock) -> None:
    _faults(engine, bulk_blocked=True)
    made = [(await engine.payments.initiate(f"{n}.00", "USD", actor=CASHIER)).payment for n in range(1, 5)]
    for p in made:
        await engine.sandbox.pay(qr=p.khqr)
    await run_for(engine, clock, 15)
    for p in made:
        assert (await engine.payments.get(p.id)).status is PaymentStatus.PAID
    stats = engine.sandbox.stats
    assert stats["check_transaction_by_md5"] >= 4
    assert stats["check_transaction_by_md5_list"] == 1  # one HTML 403, then single checks only


@pytest.mark.parametrize("fault", [{"error_rate": 1.0}, {"rate_limit_rate": 1.0, "retry_after_seconds": 20}])
async def test_storms_back_off_and_lose_no_payment(engine: Engine, clock: ManualClock, fault: dict[str, object]) -> None:
    _faults(engine, **fault)
    payment = (await engine.payments.initiate("9.99", "USD", actor=CASHIER, timeout_minutes=60)).payment
    await engine.sandbox.pay(qr=payment.khqr)
    await run_for(engine, clock, 120)
    assert _calls(engine) <= 8, "backing off: far fewer than one call per due check"
    assert engine.poller_state.consecutive_failures >= 3
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PENDING
    assert (await _event_types(engine))[ev.ALERT_BAKONG_UNREACHABLE] == 1
    _faults(engine, error_rate=0.0, rate_limit_rate=0.0)
    await run_for(engine, clock, 400, step=5)
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PAID
    types = await _event_types(engine)
    assert types[ev.PAYMENT_COMPLETED] == 1 and types[ev.ALERT_BAKONG_RECOVERED] == 1


async def test_static_qr_answers_make_the_payment_untrackable(engine: Engine, clock: ManualClock) -> None:
    _faults(engine, static_qr=True)
    payment = (await engine.payments.initiate("1000", "KHR", actor=CASHIER)).payment
    await run_for(engine, clock, 10)
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.UNTRACKABLE


async def test_a_bakong_hash_never_settles_two_payments(engine: Engine, clock: ManualClock) -> None:
    first = (await engine.payments.initiate("3.00", "USD", actor=CASHIER)).payment
    second = (await engine.payments.initiate("3.00", "USD", actor=CASHIER)).payment
    assert first.md5 != second.md5
    await engine.sandbox.pay(qr=first.khqr)
    await run_for(engine, clock, 10)
    assert (await engine.payments.get(first.id)).status is PaymentStatus.PAID
    # the same transfer answered for the second payment's MD5 (a replayed or forged answer)
    transfer = await engine.client.check_transaction_by_md5(first.md5)
    replayed = CheckOutcome(second.md5, CheckStatus.PAID, transaction=transfer)
    async with engine.storage.transaction() as tx:
        changed = await apply_outcome(tx, second, replayed, actor=Actor.daemon(), next_check_at=None)
    assert changed is not None and changed.status is PaymentStatus.NEEDS_REVIEW
    assert changed.bakong_hash is None
    assert "already settled" in (await engine.payments.history(second.id))[-1].reason
    # an operator cannot accept it: the transaction would be counted twice
    with pytest.raises(Conflict, match="count it twice"):
        await engine.payments.resolve(second.id, accept=True, actor=CASHIER, reason="looks fine")
    assert (await engine.payments.get(second.id)).status is PaymentStatus.NEEDS_REVIEW
    rejected = await engine.payments.resolve(second.id, accept=False, actor=CASHIER, reason="replayed answer")
    assert rejected.status is PaymentStatus.FAILED and rejected.bakong_hash is None


async def test_accepting_a_reviewed_payment_claims_its_bakong_transaction(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("3.00", "USD", actor=CASHIER)).payment
    await engine.sandbox.pay(qr=payment.khqr, amount="2.99")
    await run_for(engine, clock, 10)
    reviewed = await engine.payments.get(payment.id)
    assert reviewed.status is PaymentStatus.NEEDS_REVIEW and reviewed.bakong_hash is None
    accepted = await engine.payments.resolve(payment.id, accept=True, actor=CASHIER, reason="1 cent short, taken in cash")
    assert accepted.status is PaymentStatus.PAID
    assert accepted.bakong_hash == str(reviewed.bakong_record["hash"]).lower()


async def test_two_engines_on_one_database_poll_once_and_complete_each_payment_once(db_url: str, clock: ManualClock) -> None:
    settings = make_settings(db_url, bakong={"max_retries": 0})
    async with open_engine(settings, clock, holder="engine-a", seed=1) as a, open_engine(settings, clock, holder="engine-b", seed=2) as b:
        made = []
        for n in range(12):
            owner = a if n % 2 else b
            made.append((await owner.payments.initiate(f"{1000 + n}", "KHR", actor=CASHIER)).payment)
        await run_for([a, b], clock, 3)
        for p in made:
            await a.sandbox.pay(qr=p.khqr)
        await run_for([a, b], clock, 20)
        pollers = [e for e in (a, b) if e.runners["poller"].status.holding]
        assert len(pollers) == 1
        idle = b if pollers[0] is a else a
        assert idle.runners["poller"].status.iterations == 0
        assert _calls(idle) == 0
        for p in made:
            assert (await a.payments.get(p.id)).status is PaymentStatus.PAID
        async with a.storage.read() as tx:
            completed = Counter(e.subject_id for e in await journal.events_since(tx, 0, limit=10_000) if e.type == ev.PAYMENT_COMPLETED)
        assert completed == Counter({p.id: 1 for p in made})

        # the holder stops: the other takes the poller over once the lease lapses
        holder = pollers[0]
        await holder.close()
        late = (await idle.payments.initiate("5000", "KHR", actor=CASHIER)).payment
        await idle.sandbox.pay(qr=late.khqr)
        await run_for([idle], clock, holder.lease_ttl + 15)
        assert idle.runners["poller"].status.holding
        assert (await idle.payments.get(late.id)).status is PaymentStatus.PAID


async def test_unpaid_answers_are_recorded_and_reschedule_each_payment(engine: Engine, clock: ManualClock) -> None:
    """"Not paid yet" for a batch is written in one statement: each payment's count, time,
    result and next check move on, so the next pass does not ask about it again at once."""
    payments = [(await engine.payments.initiate(f"{n}.00", "USD", actor=CASHIER, timeout_minutes=60)).payment for n in (1, 2, 3)]
    await run_for(engine, clock, 12)
    calls = _calls(engine)
    assert calls >= 1
    for payment in payments:
        seen = await engine.payments.get(payment.id)
        assert seen.status is PaymentStatus.PENDING
        assert seen.check_count >= 1 and seen.last_check_result == "not_found", (seen.check_count, seen.last_check_result)
        assert seen.last_checked_at is not None and seen.next_check_at is not None
        assert seen.next_check_at > seen.last_checked_at
    # between two scheduled checks nothing more is sent
    await run_for(engine, clock, 0.5, step=0.1)
    assert _calls(engine) - calls <= 1, [(p.check_count, p.last_check_result) for p in payments]


async def test_a_backlog_is_asked_about_in_bulk_batches_once_each(db_url: str, clock: ManualClock) -> None:
    """230 payments due together (no jitter): five bulk requests (four in flight at once), each
    payment asked about once and rescheduled."""
    settings = make_settings(db_url, bakong={"max_retries": 0}, payments={"jitter": 0.0})
    async with open_engine(settings, clock) as engine:
        made = [(await engine.payments.initiate(f"{n + 1}.00", "USD", actor=CASHIER, timeout_minutes=60)).payment for n in range(230)]
        before = _calls(engine)
        await run_for(engine, clock, 6)
        assert _calls(engine) - before == 5
        async with engine.storage.read() as tx:
            counts = Counter([(await repo.get(tx, p.id)).check_count for p in made])
        assert counts == Counter({1: 230})
