"""Per-payment order without head-of-line delay (issue 18 item 3).

A payment's later event waits while an earlier one of the same payment is PENDING for the same
endpoint, so the backend never sees ``payment.completed`` before ``payment.created``. When the
earlier one failed and is waiting for its retry, the later one brings that retry forward: the
completion follows the retried creation at once instead of waiting out the retry schedule. These
tests measure that delay on the manual clock and check the limits: an endpoint that asked to slow
down (429/503, ``Retry-After``), that does not answer, or that fails as a whole keeps its backoff.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engine import events as ev
from engine.clock import ManualClock
from engine.db import journal
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from tests.support.engine import open_engine, run_for, settle
from tests.support.receiver import Answer, Received, Receiver
from tests.support.settings import make_settings
from tests.webhooks.conftest import OPERATOR, emit

CASHIER = Actor(ActorType.CASHIER, "dara")
#: The promise: a completion queued while an earlier event of its payment waits for a retry reaches
#: the backend in the deliverer pass that picks the completion up, right after that retry. On the
#: manual clock that is no time at all; one step of ``run_for`` is the tolerance.
HEAD_OF_LINE_BOUND = timedelta(seconds=1)


class Backend:
    """What the receiving backend saw: every request with the manual-clock time it arrived.

    ``fail`` scripts the first answers per key (``"<path> <subject id>:<type>"``, or without the
    path for any endpoint); every other request is answered 200."""

    def __init__(self, receiver: Receiver, clock: ManualClock, fail: dict[str, list[Answer]] | None = None) -> None:
        self.clock = clock
        self.fail = fail or {}
        self.log: list[tuple[datetime, str, int]] = []
        receiver.default = self.answer

    def answer(self, request: Received) -> Answer:
        key = f"{request.json['data']['id']}:{request.type}"
        scripted = self.fail.get(f"{request.path} {key}") or self.fail.get(key)
        answer = scripted.pop(0) if scripted else Answer(200)
        self.log.append((self.clock.now(), key, answer.status))
        return answer

    def seen(self, subject_id: str) -> list[tuple[str, int]]:
        """(type, status answered) for one subject, in arrival order."""
        return [(key.split(":", 1)[1], status) for _, key, status in self.log if key.split(":", 1)[0] == subject_id]

    def delivered_at(self, key: str) -> datetime:
        (at,) = {at for at, k, status in self.log if k == key and 200 <= status < 300}
        return at


async def completed_event(engine: Engine, payment_id: str):  # noqa: ANN201
    async with engine.storage.read() as tx:
        found = [e for e in await journal.events_since(tx, 0, limit=10_000, types=[ev.PAYMENT_COMPLETED]) if e.subject_id == payment_id]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("failures", "found_paid_after"),
    [
        # fails once; found paid before its retry (due 5 s ±20% after the failure)
        (1, (1.0, 2.0, 3.0, 4.0)),
        # fails twice (at once and 5 s later); found paid before the next retry, due 5 min ±20% later
        (2, (10.0, 120.0)),
    ],
)
async def test_a_completion_is_not_held_behind_the_retry_of_a_failed_creation(
    engine: Engine, clock: ManualClock, receiver: Receiver, failures: int, found_paid_after: tuple[float, ...]
) -> None:
    """The reported case: payment.created fails and the payment is PAID while that creation waits
    for its retry. Measured, on the manual clock, from the PAID change to the completion's arrival."""
    backend = Backend(receiver, clock)
    await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
    delays: dict[float, timedelta] = {}
    for n, paid_after in enumerate(found_paid_after):
        # no await in between: the deliverer cannot have sent the creation before it is scripted
        payment = (await engine.payments.initiate("12.50", "USD", actor=CASHIER, reference=f"order-{n}")).payment
        backend.fail[f"{payment.id}:{ev.PAYMENT_CREATED}"] = [Answer(500, body=b"not ready")] * failures
        await settle(engine)
        await run_for(engine, clock, paid_after, step=1 if paid_after < 10 else 5)
        assert backend.seen(payment.id) == [(ev.PAYMENT_CREATED, 500)] * failures
        await engine.sandbox.pay(qr=payment.khqr)
        # the customer says they paid: the payment is checked now, not at the poller's next turn
        await engine.payments.check_now(payment.id, actor=CASHIER)
        for _ in range(400):
            if any(k == f"{payment.id}:{ev.PAYMENT_COMPLETED}" for _, k, _ in backend.log):
                break
            await run_for(engine, clock, 1)
        assert (await engine.payments.get(payment.id)).status is PaymentStatus.PAID
        paid = await completed_event(engine, payment.id)
        delays[paid_after] = backend.delivered_at(f"{payment.id}:{ev.PAYMENT_COMPLETED}") - paid.occurred_at
        # order as the backend observes it: the creation's retry succeeds before the completion
        assert backend.seen(payment.id) == [(ev.PAYMENT_CREATED, 500)] * failures + [
            (ev.PAYMENT_CREATED, 200), (ev.PAYMENT_COMPLETED, 200),
        ]  # fmt: skip
        await run_for(engine, clock, 10, step=5)  # nothing else follows: no duplicate, no stray retry
        assert len(backend.seen(payment.id)) == failures + 2
    worst = max(delays.values())
    print(f"\nworst delay of payment.completed behind a payment.created that failed {failures}x: {worst.total_seconds():g} s")
    assert worst <= HEAD_OF_LINE_BOUND, delays


async def test_a_retry_brought_forward_that_fails_again_keeps_the_order(db_url: str, clock: ManualClock, receiver: Receiver) -> None:
    """Order is the promise: when the earlier event fails again, the later one keeps waiting for
    it (on its schedule), and each later event brings it forward at most once."""
    backend = Backend(receiver, clock, {f"pay_1:{ev.PAYMENT_CREATED}": [Answer(500), Answer(500)]})
    async with open_engine(make_settings(db_url, webhooks={"jitter": 0.0}), clock) as engine:
        await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
        t0 = clock.now()
        await emit(engine, ev.PAYMENT_CREATED, "pay_1")
        await settle(engine)
        await run_for(engine, clock, 2)
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
        await settle(engine)
        # brought forward once (attempt 2, at t0+2 s), failed again: the completion still waits
        assert backend.seen("pay_1") == [(ev.PAYMENT_CREATED, 500), (ev.PAYMENT_CREATED, 500)]
        created, completed = await engine.webhooks.deliveries_for_subject("payment", "pay_1")
        assert created.attempt_count == 2 and created.next_attempt_at == t0 + timedelta(seconds=2 + 300)
        assert completed.status == "PENDING" and completed.attempt_count == 0
        await run_for(engine, clock, 297, step=20)
        assert len(backend.log) == 2  # no storm: nothing until the scheduled retry
        await run_for(engine, clock, 5)
        created, completed = await engine.webhooks.deliveries_for_subject("payment", "pay_1")
    assert backend.seen("pay_1") == [
        (ev.PAYMENT_CREATED, 500), (ev.PAYMENT_CREATED, 500), (ev.PAYMENT_CREATED, 200), (ev.PAYMENT_COMPLETED, 200),
    ]  # fmt: skip
    assert backend.delivered_at(f"pay_1:{ev.PAYMENT_CREATED}") == backend.delivered_at(f"pay_1:{ev.PAYMENT_COMPLETED}")
    assert created.status == completed.status == "SUCCEEDED"


async def test_a_retry_after_is_honoured_even_with_a_later_event_waiting(db_url: str, clock: ManualClock, receiver: Receiver) -> None:
    backend = Backend(receiver, clock, {f"pay_1:{ev.PAYMENT_CREATED}": [Answer(503, {"Retry-After": "120"})]})
    async with open_engine(make_settings(db_url, webhooks={"jitter": 0.0}), clock) as engine:
        await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
        t0 = clock.now()
        await emit(engine, ev.PAYMENT_CREATED, "pay_1")
        await settle(engine)
        await run_for(engine, clock, 2)
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
        await run_for(engine, clock, 117, step=10)
        assert backend.seen("pay_1") == [(ev.PAYMENT_CREATED, 503)]  # the endpoint asked for two minutes
        await run_for(engine, clock, 2)
    assert backend.seen("pay_1") == [(ev.PAYMENT_CREATED, 503), (ev.PAYMENT_CREATED, 200), (ev.PAYMENT_COMPLETED, 200)]
    assert backend.delivered_at(f"pay_1:{ev.PAYMENT_CREATED}") == t0 + timedelta(seconds=120)
    assert backend.delivered_at(f"pay_1:{ev.PAYMENT_COMPLETED}") == t0 + timedelta(seconds=120)


async def test_an_endpoint_that_does_not_answer_keeps_its_backoff(db_url: str, clock: ManualClock) -> None:
    """Nothing listens at the endpoint: a refused connection is the endpoint being down, not
    something about one message, so the completion brings no retry forward."""
    async with open_engine(make_settings(db_url, webhooks={"jitter": 0.0}), clock) as engine:
        await engine.webhooks.add_endpoint("http://127.0.0.1:9/hooks", actor=OPERATOR)
        t0 = clock.now()
        await emit(engine, ev.PAYMENT_CREATED, "pay_1")
        await settle(engine)
        await run_for(engine, clock, 2)
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
        await settle(engine)
        created, completed = await engine.webhooks.deliveries_for_subject("payment", "pay_1")
    assert created.attempt_count == 1 and created.last_status_code is None
    assert created.last_error is not None and created.last_error.startswith("cannot connect")
    assert created.next_attempt_at == t0 + timedelta(seconds=5)
    assert completed.status == "PENDING" and completed.attempt_count == 0


async def test_an_endpoint_failing_as_a_whole_keeps_its_backoff(db_url: str, clock: ManualClock, receiver: Receiver) -> None:
    """5xx for everything: later events bring no retry forward, each creation follows its own
    schedule, and the completions wait behind them (no extra attempt at all)."""
    receiver.default = Answer(500, body=b"down")
    async with open_engine(make_settings(db_url, webhooks={"jitter": 0.0}), clock) as engine:
        await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
        t0 = clock.now()
        async with engine.storage.transaction() as tx:
            for n in range(3):
                await journal.append_event(tx, ev.PAYMENT_CREATED, "payment", f"pay_{n}", {"id": f"pay_{n}"})
        await settle(engine)
        assert len(receiver.requests) == 3
        await run_for(engine, clock, 2)
        for n in range(3):
            await emit(engine, ev.PAYMENT_COMPLETED, f"pay_{n}")
        await settle(engine)
        assert len(receiver.requests) == 3  # nothing brought forward
        await run_for(engine, clock, 3)
        assert len(receiver.requests) == 6  # the creations' 5 s retries, on schedule
        await run_for(engine, clock, 299, step=30)
        assert len(receiver.requests) == 6
        await run_for(engine, clock, 1)
        assert len(receiver.requests) == 9  # and their 5 min retries
        rows = [d for n in range(3) for d in await engine.webhooks.deliveries_for_subject("payment", f"pay_{n}")]
    assert {r.type for r in receiver.requests} == {ev.PAYMENT_CREATED}
    created = [d for d in rows if d.event_type == ev.PAYMENT_CREATED]
    assert all(d.attempt_count == 3 and d.next_attempt_at == t0 + timedelta(seconds=5 + 300 + 1800) for d in created)
    assert all(d.attempt_count == 0 for d in rows if d.event_type == ev.PAYMENT_COMPLETED)


async def test_only_the_same_subject_and_endpoint_is_brought_forward(db_url: str, clock: ManualClock, receiver: Receiver) -> None:
    """pay_1's and pay_2's creations each failed once at /a (with a success in between, so no run
    of failures covers two messages): pay_1's completion brings forward pay_1's creation at /a,
    not pay_2's, and sends nothing extra to /b, where both creations succeeded."""
    backend = Backend(
        receiver, clock, {f"/a pay_1:{ev.PAYMENT_CREATED}": [Answer(500)], f"/a pay_2:{ev.PAYMENT_CREATED}": [Answer(500)]}
    )
    async with open_engine(make_settings(db_url, webhooks={"jitter": 0.0}), clock) as engine:
        a, _ = await engine.webhooks.add_endpoint(receiver.url_for("/a"), actor=OPERATOR)
        await engine.webhooks.add_endpoint(receiver.url_for("/b"), [ev.PAYMENT_CREATED, ev.PAYMENT_COMPLETED], actor=OPERATOR)
        await emit(engine, ev.PAYMENT_CREATED, "pay_1")
        await settle(engine)
        await emit(engine, ev.SUBSCRIPTION_RENEWED, "sub_1", subject_type="subscription")
        await settle(engine)
        await run_for(engine, clock, 1)
        await emit(engine, ev.PAYMENT_CREATED, "pay_2")
        await settle(engine)
        await run_for(engine, clock, 1)
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
        await settle(engine)
        pay_2_at_a = [d for d in await engine.webhooks.deliveries_for_subject("payment", "pay_2") if d.endpoint_id == a.id]
    assert len(backend.log) == 8
    assert [(r.json["data"]["id"], r.type) for r in receiver.at("/a")] == [
        ("pay_1", ev.PAYMENT_CREATED), ("sub_1", ev.SUBSCRIPTION_RENEWED), ("pay_2", ev.PAYMENT_CREATED),
        ("pay_1", ev.PAYMENT_CREATED), ("pay_1", ev.PAYMENT_COMPLETED),
    ]  # fmt: skip
    assert [(r.json["data"]["id"], r.type) for r in receiver.at("/b")] == [
        ("pay_1", ev.PAYMENT_CREATED), ("pay_2", ev.PAYMENT_CREATED), ("pay_1", ev.PAYMENT_COMPLETED),
    ]  # fmt: skip
    (waiting,) = pay_2_at_a
    assert waiting.status == "PENDING" and waiting.attempt_count == 1 and waiting.next_attempt_at > clock.now()


async def test_events_queued_together_wait_at_most_the_first_retry_gap(engine: Engine, clock: ManualClock, receiver: Receiver) -> None:
    """The other half of the bound: both events queued before the earlier one's first attempt
    (committed together, or while the deliverer was behind). Nothing is waiting to bring forward
    when the completion is queued, so it follows the creation's first retry: 5 s ±20%."""
    backend = Backend(receiver, clock, {f"pay_1:{ev.PAYMENT_CREATED}": [Answer(500)]})
    await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
    async with engine.storage.transaction() as tx:
        await journal.append_event(tx, ev.PAYMENT_CREATED, "payment", "pay_1", {"id": "pay_1"})
        await journal.append_event(tx, ev.PAYMENT_COMPLETED, "payment", "pay_1", {"id": "pay_1"})
    completed = (await journal.committed_events(engine.storage, tx))[1]
    await settle(engine)
    assert backend.seen("pay_1") == [(ev.PAYMENT_CREATED, 500)]
    await run_for(engine, clock, 7)
    assert backend.seen("pay_1") == [(ev.PAYMENT_CREATED, 500), (ev.PAYMENT_CREATED, 200), (ev.PAYMENT_COMPLETED, 200)]
    delay = backend.delivered_at(f"pay_1:{ev.PAYMENT_COMPLETED}") - completed.occurred_at
    assert timedelta(seconds=4) <= delay <= timedelta(seconds=6)
