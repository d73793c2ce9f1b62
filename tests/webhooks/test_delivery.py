"""The deliverer against a real loopback receiver: retries on the manual clock, backpressure, 410,
five days of failure, rotation, filters, per-subject order, and a crash mid-flight."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceVerificationError

from engine import events as ev
from engine.clock import ManualClock
from engine.db import journal
from engine.db.models import AuditLogRow, WebhookAttemptRow
from engine.runtime import Engine
from engine.webhooks import verify
from tests.support.engine import open_engine, run_for, settle
from tests.support.receiver import Answer, Received, Receiver
from tests.support.settings import make_settings
from tests.webhooks.conftest import OPERATOR, emit, jump

SCHEDULE_GAPS = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


async def only_delivery(engine: Engine, subject_id: str, endpoint_id: str | None = None):  # noqa: ANN201
    found = [d for d in await engine.webhooks.deliveries_for_subject("payment", subject_id) if endpoint_id in (None, d.endpoint_id)]
    assert len(found) == 1, found
    return found[0]


async def drive_until_settled(engine: Engine, clock: ManualClock, subject_id: str, *, limit: int = 15):  # noqa: ANN201
    """Jump from one scheduled attempt to the next until the delivery stops being PENDING."""
    for _ in range(limit):
        delivery = await only_delivery(engine, subject_id)
        if delivery.status != "PENDING":
            return delivery
        await jump(engine, clock, delivery.next_attempt_at)
    raise AssertionError("delivery still pending")


@pytest.mark.parametrize("jitter", [0.0, 0.2])
async def test_retries_follow_the_schedule_then_give_up(db_url: str, clock: ManualClock, receiver: Receiver, jitter: float) -> None:
    receiver.default = Answer(500, body=b"database is down")
    async with open_engine(make_settings(db_url, webhooks={"jitter": jitter}), clock) as engine:
        endpoint, secret = await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
        event = await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
        await settle(engine)
        delivery = await drive_until_settled(engine, clock, "pay_1")
        attempts = await engine.webhooks.attempts(delivery.id)
        again = await engine.webhooks.get_endpoint(endpoint.id)

    assert delivery.status == "FAILED" and delivery.attempt_count == 10 and delivery.next_attempt_at is None
    starts = [a.started_at for a in attempts]
    assert starts[0] == event.occurred_at  # attempt 1: immediately
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    if jitter == 0.0:
        assert gaps == SCHEDULE_GAPS
    else:
        assert all(base * 0.8 <= gap <= base * 1.2 for gap, base in zip(gaps, SCHEDULE_GAPS, strict=True)), gaps
        assert gaps != SCHEDULE_GAPS
    assert [a.attempt for a in attempts] == list(range(1, 11))
    assert all(a.status_code == 500 and a.response_excerpt == "database is down" and a.duration_ms >= 0 for a in attempts)
    # ten requests, one message id, each signed afresh at its own time
    assert len(receiver.requests) == 10
    assert {r.webhook_id for r in receiver.requests} == {event.id}
    assert [int(r.headers["webhook-timestamp"]) for r in receiver.requests] == [int(s.timestamp()) for s in starts]
    assert len({r.body for r in receiver.requests}) == 1
    for request, start in zip(receiver.requests, starts, strict=True):
        assert verify(request.body, request.headers, secret, now=start)["data"]["id"] == "pay_1"
    # 75 hours of failure is not yet five days: the endpoint stays enabled
    assert again.enabled and again.failing_since == starts[0]


async def test_429_retry_after_and_503_minimum_wait(db_url: str, clock: ManualClock, receiver: Receiver) -> None:
    async with open_engine(make_settings(db_url, webhooks={"jitter": 0.0}), clock) as engine:
        await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
        receiver.script = [Answer(429, {"Retry-After": "120"}, b"slow down")]
        t0 = clock.now()
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_a")
        await settle(engine)
        first = await only_delivery(engine, "pay_a")
        assert first.last_status_code == 429 and first.next_attempt_at == t0 + timedelta(seconds=120)
        await run_for(engine, clock, 119, step=10)  # the 5 s retry does not happen before Retry-After
        assert len(receiver.requests) == 1

        receiver.script = [Answer(503, body=b"maintenance")]
        t1 = clock.now()
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_b")
        await settle(engine)
        other = await only_delivery(engine, "pay_b")
        assert other.last_status_code == 503 and other.next_attempt_at == t1 + timedelta(seconds=60)

        await run_for(engine, clock, 61, step=10)
        assert (await only_delivery(engine, "pay_a")).status == "SUCCEEDED"
        assert (await only_delivery(engine, "pay_b")).status == "SUCCEEDED"
    assert [r.json["data"]["id"] for r in receiver.requests] == ["pay_a", "pay_b", "pay_a", "pay_b"]


async def test_410_disables_the_endpoint_at_once(engine: Engine, clock: ManualClock, receiver: Receiver) -> None:
    receiver.default = lambda r: Answer(410, body=b"gone") if r.path == "/gone" else Answer(200)
    gone, _ = await engine.webhooks.add_endpoint(receiver.url_for("/gone"), actor=OPERATOR)
    ops, ops_secret = await engine.webhooks.add_endpoint(receiver.url_for("/ops"), [ev.ALERT_WEBHOOK_ENDPOINT_DISABLED], actor=OPERATOR)
    await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
    await settle(engine)
    await run_for(engine, clock, 2)

    endpoint = await engine.webhooks.get_endpoint(gone.id)
    assert not endpoint.enabled and "410" in (endpoint.disabled_reason or "")
    assert (await only_delivery(engine, "pay_1", gone.id)).status == "FAILED"
    # the alert reached the other endpoint, signed
    (alert,) = receiver.at("/ops")
    body = Webhook(ops_secret).verify(alert.body, alert.headers)
    assert body["type"] == ev.ALERT_WEBHOOK_ENDPOINT_DISABLED and body["data"]["endpoint_id"] == gone.id
    # nothing more goes to the disabled endpoint
    await emit(engine, ev.PAYMENT_COMPLETED, "pay_2")
    await run_for(engine, clock, 120, step=10)
    assert len(receiver.at("/gone")) == 1
    assert await engine.webhooks.deliveries_for_subject("payment", "pay_2") == []


async def test_five_days_of_failure_disables_with_an_alert(db_url: str, clock: ManualClock, receiver: Receiver) -> None:
    receiver.default = lambda r: Answer(503 if r.path == "/down" else 200)
    t0 = clock.now()
    async with open_engine(make_settings(db_url, webhooks={"jitter": 0.0}), clock) as engine:
        down, _ = await engine.webhooks.add_endpoint(receiver.url_for("/down"), actor=OPERATOR)
        ops, _ = await engine.webhooks.add_endpoint(receiver.url_for("/ops"), [ev.ALERT_WEBHOOK_ENDPOINT_DISABLED], actor=OPERATOR)
        for n in range(60):
            endpoint = await engine.webhooks.get_endpoint(down.id)
            if not endpoint.enabled:
                break
            pending = [d for d in (await engine.webhooks.list_deliveries(down.id, limit=100))[0] if d.status == "PENDING"]
            if not pending:  # the previous message was given up: the backend keeps producing events
                await emit(engine, ev.PAYMENT_COMPLETED, f"pay_{n}")
                await settle(engine)
                continue
            await jump(engine, clock, min(d.next_attempt_at for d in pending))
        await run_for(engine, clock, 2)
        async with engine.storage.read() as tx:
            alerts = [e for e in await journal.events_since(tx, 0, limit=1000) if e.type == ev.ALERT_WEBHOOK_ENDPOINT_DISABLED]
            audits = (await tx.session.scalars(select(AuditLogRow).where(AuditLogRow.action == "webhook_endpoint.disable"))).all()
        deliveries, _ = await engine.webhooks.list_deliveries(down.id, limit=100)

    assert not endpoint.enabled
    assert endpoint.failing_since == t0
    assert endpoint.disabled_at - t0 >= timedelta(days=5)
    assert endpoint.disabled_at - t0 < timedelta(days=6)
    assert "failing continuously" in endpoint.disabled_reason
    assert len(alerts) == 1 and alerts[0].subject_id == down.id and alerts[0].payload["reason"] == endpoint.disabled_reason
    assert [a.actor for a in audits] == ["deliverer"]
    assert {d.status for d in deliveries} <= {"FAILED", "DISABLED"} and "DISABLED" in {d.status for d in deliveries}
    (alert,) = receiver.at("/ops")
    assert alert.json["data"]["endpoint_id"] == down.id
    assert alert.webhook_id == alerts[0].id


async def test_rotation_signs_with_both_secrets_inside_the_window(db_url: str, clock: ManualClock, receiver: Receiver) -> None:
    async with open_engine(make_settings(db_url, webhooks={"rotation_window_hours": 0.05}), clock) as engine:
        endpoint, old = await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
        rotated, new = await engine.webhooks.rotate_secret(endpoint.id, actor=OPERATOR)
        assert new != old and new.startswith("whsec_")
        assert rotated.previous_secret_expires_at == clock.now() + timedelta(minutes=3)
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
        await settle(engine)
        await run_for(engine, clock, 200, step=50)  # past the three-minute window
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_2")
        await settle(engine)

    during, after = receiver.requests
    assert len(during.headers["webhook-signature"].split()) == 2
    assert Webhook(old).verify(during.body, during.headers)["data"]["id"] == "pay_1"
    assert Webhook(new).verify(during.body, during.headers)["data"]["id"] == "pay_1"
    assert len(after.headers["webhook-signature"].split()) == 1
    assert Webhook(new).verify(after.body, after.headers)["data"]["id"] == "pay_2"
    with pytest.raises(ReferenceVerificationError):
        Webhook(old).verify(after.body, after.headers)


async def test_endpoints_receive_only_the_event_types_they_asked_for(engine: Engine, receiver: Receiver) -> None:
    paid_only, _ = await engine.webhooks.add_endpoint(receiver.url_for("/paid"), ["payment.completed"], actor=OPERATOR)
    everything, _ = await engine.webhooks.add_endpoint(receiver.url_for("/all"), actor=OPERATOR)
    await emit(engine, ev.PAYMENT_CREATED, "pay_1")
    await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
    await emit(engine, ev.SUBSCRIPTION_RENEWED, "sub_1", subject_type="subscription")
    await settle(engine)
    assert [r.type for r in receiver.at("/paid")] == [ev.PAYMENT_COMPLETED]
    assert sorted(r.type for r in receiver.at("/all")) == sorted([ev.PAYMENT_CREATED, ev.PAYMENT_COMPLETED, ev.SUBSCRIPTION_RENEWED])
    rows = await engine.webhooks.deliveries_for_subject("payment", "pay_1")
    assert sorted((d.endpoint_id, d.event_type) for d in rows) == sorted(
        [(paid_only.id, ev.PAYMENT_COMPLETED), (everything.id, ev.PAYMENT_CREATED), (everything.id, ev.PAYMENT_COMPLETED)]
    )


async def test_events_of_one_subject_arrive_in_order_even_across_a_retry(engine: Engine, clock: ManualClock, receiver: Receiver) -> None:
    failed_once: set[str] = set()

    def answer(r: Received) -> Answer:
        key = f"{r.json['data']['id']}:{r.type}"
        if key == "pay_1:payment.created" and key not in failed_once:
            failed_once.add(key)
            return Answer(500)
        return Answer(200)

    receiver.default = answer
    await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
    # Committed together, so all three are queued before the first attempt. (A completion queued
    # after its creation had failed would bring that retry forward instead: test_head_of_line.)
    async with engine.storage.transaction() as tx:
        for event_type, subject_id in ((ev.PAYMENT_CREATED, "pay_1"), (ev.PAYMENT_COMPLETED, "pay_1"), (ev.PAYMENT_CREATED, "pay_2")):
            await journal.append_event(tx, event_type, "payment", subject_id, {"id": subject_id})
    await settle(engine)
    # pay_2 is not held up by pay_1; pay_1's completion waits for its creation
    assert sorted(f"{r.json['data']['id']}:{r.type}" for r in receiver.requests) == ["pay_1:payment.created", "pay_2:payment.created"]
    await run_for(engine, clock, 8, step=2)
    keys = [f"{r.json['data']['id']}:{r.type}" for r in receiver.requests]
    assert keys[2:] == ["pay_1:payment.created", "pay_1:payment.completed"]
    assert {d.status for d in await engine.webhooks.deliveries_for_subject("payment", "pay_1")} == {"SUCCEEDED"}


async def test_a_delivery_in_flight_when_the_process_dies_is_sent_again_after_restart(
    engine_settings, clock: ManualClock, receiver: Receiver  # noqa: ANN001
) -> None:
    receiver.hold()
    async with open_engine(engine_settings, clock, holder="daemon-1") as first:
        endpoint, secret = await first.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
        event = await emit(first, ev.PAYMENT_COMPLETED, "pay_1")
        await asyncio.wait_for(receiver.holding.wait(), 10)
        # the process dies with the request in flight: its deliverer task is simply gone
        (task,) = [t for t in first._tasks if t.get_name() == "engine.worker.deliverer"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        delivery = await only_delivery(first, "pay_1")
        assert delivery.status == "PENDING" and delivery.attempt_count == 0
        assert delivery.next_attempt_at > clock.now()  # claimed: not due until the in-flight window passes
    receiver.release()
    receiver.default = Answer(200)

    async with open_engine(engine_settings, clock, holder="daemon-2") as second:
        await settle(second)
        assert len(receiver.requests) == 1  # not re-sent while the claim could still be in flight
        await run_for(second, clock, 65, step=5)
        delivery = await only_delivery(second, "pay_1")
        attempts = await second.webhooks.attempts(delivery.id)
        async with second.storage.read() as tx:
            attempt_rows = (await tx.session.scalars(select(WebhookAttemptRow))).all()

    assert len(receiver.requests) == 2
    lost, redelivered = receiver.requests
    assert lost.webhook_id == redelivered.webhook_id == event.id
    assert lost.body == redelivered.body
    assert int(redelivered.headers["webhook-timestamp"]) > int(lost.headers["webhook-timestamp"])
    assert Webhook(secret).verify(redelivered.body, redelivered.headers)["data"]["id"] == "pay_1"
    assert delivery.status == "SUCCEEDED" and delivery.endpoint_id == endpoint.id
    assert [a.attempt for a in attempts] == [1] and len(attempt_rows) == 1


async def test_a_long_pass_hands_back_what_it_claimed_but_did_not_start(
    db_url: str, clock: ManualClock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.workers import deliverer

    monkeypatch.setattr(deliverer, "WAVE_SECONDS", 0.2)
    receiver.hold()
    async with open_engine(make_settings(db_url, webhooks={"concurrency": 2}), clock) as engine:
        await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
        async with engine.storage.transaction() as tx:
            for n in range(6):
                await journal.append_event(tx, ev.PAYMENT_COMPLETED, "payment", f"pay_{n}", {"id": f"pay_{n}"})
        await asyncio.wait_for(receiver.holding.wait(), 10)
        await asyncio.sleep(0.5)  # real time: the pass stops claiming and gives back its queue
        rows, _ = await engine.webhooks.list_deliveries()
        in_flight = [d for d in rows if d.next_attempt_at > clock.now()]
        handed_back = [d for d in rows if d.next_attempt_at <= clock.now()]
        assert len(in_flight) == 2 and len(handed_back) == 4
        assert all(d.status == "PENDING" and d.attempt_count == 0 for d in rows)
        receiver.release()
        await settle(engine)
        rows, _ = await engine.webhooks.list_deliveries()
    assert {d.status for d in rows} == {"SUCCEEDED"}
    assert sorted(r.json["data"]["id"] for r in receiver.requests) == [f"pay_{n}" for n in range(6)]


async def test_the_fan_out_cursor_is_durable_and_costs_no_write_without_endpoints(
    engine_settings, clock: ManualClock, receiver: Receiver  # noqa: ANN001
) -> None:
    from engine.db import state as engine_state

    async def stored(engine: Engine) -> int:
        async with engine.storage.read() as tx:
            return int((await engine_state.get_state(tx, "deliverer.cursor") or {"sequence": 0})["sequence"])

    async with open_engine(engine_settings, clock) as engine:
        await settle(engine)
        first = await emit(engine, ev.PAYMENT_CREATED, "pay_0")
        await settle(engine)
        assert await stored(engine) == first.sequence  # the first pass writes it down
        for n in (1, 2):
            last = await emit(engine, ev.PAYMENT_CREATED, f"pay_{n}")
        await settle(engine)
        assert await stored(engine) == first.sequence  # no endpoint: moved in memory only
        await run_for(engine, clock, 31, step=5)
        assert await stored(engine) == last.sequence  # ...and written down now and then

        await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
        wanted = await emit(engine, ev.PAYMENT_COMPLETED, "pay_2")
        await settle(engine)
        assert await stored(engine) == wanted.sequence
    assert [r.webhook_id for r in receiver.requests] == [wanted.id]

    async with open_engine(engine_settings, clock, holder="restarted") as again:
        await run_for(again, clock, 40, step=10)
        later = await emit(again, ev.PAYMENT_TIMEOUT, "pay_1")
        await settle(again)
    assert [r.webhook_id for r in receiver.requests] == [wanted.id, later.id]  # nothing sent twice
