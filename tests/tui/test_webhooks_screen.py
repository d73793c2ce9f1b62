"""The Webhooks screen's tools, on SQLite and PostgreSQL, against a real loopback receiver: replay
a delivery the deliverer gave up on, and disable, enable and recover an endpoint. Each asserts
what reached the receiver, the delivery and attempt rows, and the audit log, as well as the screen.
"""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable, Input, Static

from bakong_console.tui.screens.webhooks import RecoverDialog, WebhooksScreen
from engine.clock import ManualClock
from engine.records import Payment, PaymentStatus, WebhookDelivery
from engine.runtime import Engine
from engine.webhooks.policy import MAX_ATTEMPTS
from tests.support.engine import run_for, settle
from tests.support.receiver import Answer, Receiver
from tests.tui.conftest import OPERATOR, console_app, quiet, shown, wait_until, workers_done


async def paid_payment(engine: Engine, clock: ManualClock, amount: str, reference: str) -> Payment:
    payment = (await engine.payments.initiate(amount, "USD", actor=OPERATOR, reference=reference)).payment
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=payment.khqr)
    await engine.payments.request_check(payment.id, actor=OPERATOR)
    await run_for(engine, clock, 6)
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PAID
    return payment


async def given_up(engine: Engine, clock: ManualClock, endpoint_id: str) -> WebhookDelivery:
    """Follow the retry schedule (about 75 hours) until the deliverer gives the delivery up."""
    for _ in range(MAX_ATTEMPTS + 1):
        [delivery], _ = await engine.webhooks.list_deliveries(endpoint_id=endpoint_id)
        if delivery.status == "FAILED":
            return delivery
        assert delivery.next_attempt_at is not None
        clock.set(max(clock.now(), delivery.next_attempt_at))
        await asyncio.sleep(0)
        await settle(engine)
    raise AssertionError(f"the delivery was not given up: {delivery}")


def cells(table: DataTable, row: int) -> list[str]:
    return [str(cell) for cell in table.get_row_at(row)]


async def test_replay_a_given_up_delivery_then_disable_enable_and_recover(
    engine: Engine, clock: ManualClock, receiver: Receiver
) -> None:
    receiver.default = Answer(500, body=b"backend down")
    endpoint, _ = await engine.webhooks.add_endpoint(receiver.url, ["payment.completed"], "main backend", actor=OPERATOR)
    first = await paid_payment(engine, clock, "7.77", "order-1")
    failed = await given_up(engine, clock, endpoint.id)
    assert (failed.attempt_count, failed.last_status_code) == (MAX_ATTEMPTS, 500)
    assert len(receiver.requests) == MAX_ATTEMPTS
    receiver.default = Answer(200, body=b"ok")  # the backend is fixed

    app = console_app(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("w")
        screen = app.screen
        assert isinstance(screen, WebhooksScreen)
        endpoints = screen.query_one("#webhooks-endpoints", DataTable)
        deliveries = screen.query_one("#webhooks-deliveries", DataTable)
        attempts = screen.query_one("#webhooks-attempts", Static)
        await wait_until(pilot, lambda: deliveries.row_count == 1, what="the given-up delivery")
        await workers_done(app)
        assert cells(deliveries, 0)[1:6] == ["payment.completed", receiver.url, "FAILED", str(MAX_ATTEMPTS), "HTTP 500"]
        assert f"#{MAX_ATTEMPTS} " in shown(attempts) and "backend down" in shown(attempts)

        # Replay: queued again at once, sent with the same webhook-id, delivered this time.
        await pilot.press("p")
        await wait_until(pilot, lambda: len(receiver.requests) == MAX_ATTEMPTS + 1, what="the replayed message")
        await settle(engine)
        delivery = await engine.webhooks.get_delivery(failed.id)
        assert (delivery.status, delivery.attempt_count, delivery.last_status_code) == ("SUCCEEDED", MAX_ATTEMPTS + 1, 200)
        assert receiver.requests[-1].webhook_id == receiver.requests[0].webhook_id
        assert receiver.requests[-1].json["data"]["id"] == first.id
        assert [a.status_code for a in await engine.webhooks.attempts(failed.id)] == [500] * MAX_ATTEMPTS + [200]
        [replayed] = await engine.audit.list(subject_id=failed.id, action="webhook_delivery.replay")
        assert (replayed.actor_type, replayed.actor) == ("cashier", "dara")
        assert replayed.before == {"status": "FAILED", "attempt_count": MAX_ATTEMPTS} and replayed.after == {"status": "PENDING"}
        assert any("will be sent again" in n.message for n in app._notifications)
        # The screen's next re-read (its timer): nothing has failed any more.
        screen.reload()
        await workers_done(app)
        assert deliveries.row_count == 0 and "No failed deliveries." in shown(attempts)
        await pilot.press("f")
        await workers_done(app)
        assert cells(deliveries, 0)[3:6] == ["SUCCEEDED", str(MAX_ATTEMPTS + 1), "HTTP 200"]

        # Disable the endpoint from the screen; a payment completes while it is disabled.
        await pilot.press("e")
        await quiet(pilot, engine)
        assert not (await engine.webhooks.get_endpoint(endpoint.id)).enabled
        assert "DISABLED" in cells(endpoints, 0)[1]
        missed = await paid_payment(engine, clock, "3.00", "order-2")
        await settle(engine)
        assert len(receiver.requests) == MAX_ATTEMPTS + 1
        assert not any(r.json["data"]["id"] == missed.id for r in receiver.requests)

        # Enable it again and recover the last day: the missed event is delivered.
        await pilot.press("e")
        await quiet(pilot, engine)
        assert (await engine.webhooks.get_endpoint(endpoint.id)).enabled
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, RecoverDialog), what="the recover dialog")
        assert app.screen.query_one("#recover-since", Input).value == "24h"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(receiver.requests) == MAX_ATTEMPTS + 2, what="the recovered message")
        await settle(engine)
        recovered = receiver.requests[-1]
        assert (recovered.type, recovered.json["data"]["id"], recovered.json["data"]["status"]) == ("payment.completed", missed.id, "PAID")
        [audit] = await engine.audit.list(subject_id=endpoint.id, action="webhook_endpoint.recover")
        assert (audit.actor_type, audit.actor, audit.after["deliveries"]) == ("cashier", "dara", 1)
        assert any("1 delivery queued again" in n.message for n in app._notifications)
        page, _ = await engine.webhooks.list_deliveries(endpoint_id=endpoint.id)
        assert sorted(d.status for d in page) == ["SUCCEEDED", "SUCCEEDED"]
