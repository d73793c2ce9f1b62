"""A payment paid in the embedded sandbox reaches a real receiver as a signed payment.completed."""

from __future__ import annotations

from standardwebhooks import Webhook

from engine import events as ev
from engine.clock import ManualClock
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from tests.support.engine import run_for
from tests.support.receiver import Receiver
from tests.webhooks.conftest import OPERATOR

CASHIER = Actor(ActorType.CASHIER, "dara")


async def test_paid_payment_is_posted_signed_to_the_receiver(engine: Engine, clock: ManualClock, receiver: Receiver) -> None:
    endpoint, secret = await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
    payment = (await engine.payments.initiate("12.50", "USD", actor=CASHIER, reference="order-7")).payment
    await run_for(engine, clock, 3)
    await engine.sandbox.pay(qr=payment.khqr)
    await run_for(engine, clock, 10)
    assert (await engine.payments.get(payment.id)).status is PaymentStatus.PAID

    completed = receiver.of_type(ev.PAYMENT_COMPLETED)
    assert len(completed) == 1
    request = completed[0]
    assert request.method == "POST" and request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    body = Webhook(secret).verify(request.body, request.headers)
    assert body["type"] == "payment.completed"
    assert body["data"]["id"] == payment.id and body["data"]["status"] == "PAID"
    assert body["data"]["amount"] == "12.50" and body["data"]["currency"] == "USD"
    assert set(body) == {"type", "timestamp", "data"}
    # created went first (same subject, event order), and each message id is its event id
    assert [r.type for r in receiver.requests] == [ev.PAYMENT_CREATED, ev.PAYMENT_COMPLETED]
    deliveries = await engine.webhooks.deliveries_for_subject("payment", payment.id)
    assert [(d.event_type, d.status, d.endpoint_id) for d in deliveries] == [
        (ev.PAYMENT_CREATED, "SUCCEEDED", endpoint.id),
        (ev.PAYMENT_COMPLETED, "SUCCEEDED", endpoint.id),
    ]
    assert request.webhook_id == deliveries[1].event_id
