"""Operator tools on both databases: endpoints and their secrets, the delivery log, replay, recover,
health and the test message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from engine import events as ev
from engine.clock import ManualClock
from engine.db.models import AuditLogRow, WebhookEndpointRow
from engine.db.webhooks import SECRET_CONTEXT
from engine.errors import InvalidInput, InvalidTransition, NotFound
from engine.runtime import Engine
from tests.support.engine import open_engine, run_for, settle
from tests.support.receiver import Answer, Receiver
from tests.support.settings import make_settings
from tests.webhooks.conftest import OPERATOR, emit, jump


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "required"),
        ("ftp://example.com/hook", "http:// or https://"),
        ("https:///nohost", "no host"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://example.com/hook#frag", "fragment"),
        ("https://example.com:99999/hook", "port"),
        ("https://exa mple.com/", "spaces"),
    ],
)
async def test_add_endpoint_refuses_bad_urls(engine: Engine, url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        await engine.webhooks.add_endpoint(url, actor=OPERATOR)
    assert info.value.field == "url"
    assert await engine.webhooks.list_endpoints() == []


async def test_add_endpoint_validates_types_and_description(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="unknown event type 'payment.paid'") as info:
        await engine.webhooks.add_endpoint("https://backend.example/hooks", ["payment.paid"], actor=OPERATOR)
    assert info.value.field == "event_types"
    with pytest.raises(InvalidInput, match="description"):
        await engine.webhooks.add_endpoint("https://backend.example/hooks", description="x" * 501, actor=OPERATOR)
    endpoint, _ = await engine.webhooks.add_endpoint(
        "https://backend.example/hooks", ["payment.completed,payment.timeout", "payment.completed"], " main ", actor=OPERATOR
    )
    assert endpoint.event_types == ("payment.completed", "payment.timeout") and endpoint.description == "main"


async def test_secret_is_stored_encrypted_and_never_audited(engine: Engine) -> None:
    endpoint, secret = await engine.webhooks.add_endpoint("https://backend.example/hooks", actor=OPERATOR)
    _, rotated = await engine.webhooks.rotate_secret(endpoint.id, actor=OPERATOR)
    async with engine.storage.read() as tx:
        row = await tx.session.get(WebhookEndpointRow, endpoint.id)
        audits = (await tx.session.scalars(select(AuditLogRow).where(AuditLogRow.subject_id == endpoint.id))).all()
        assert tx.cipher.decrypt(row.secret_enc, context=SECRET_CONTEXT) == rotated
    for stored in (row.secret_enc, row.previous_secret_enc):
        assert stored.startswith("v1:") and secret[6:] not in stored and rotated[6:] not in stored
    assert [a.action for a in audits] == ["webhook_endpoint.create", "webhook_endpoint.rotate_secret"]
    assert all(secret[6:] not in str(a.after) and rotated[6:] not in str(a.after) for a in audits)


async def test_disable_and_enable(engine: Engine, clock: ManualClock, receiver: Receiver) -> None:
    endpoint, _ = await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
    disabled = await engine.webhooks.disable(endpoint.id, actor=OPERATOR, reason="backend migration")
    assert not disabled.enabled and disabled.disabled_reason == "backend migration" and disabled.disabled_at == clock.now()
    with pytest.raises(InvalidTransition, match="already disabled"):
        await engine.webhooks.disable(endpoint.id, actor=OPERATOR)
    await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
    await settle(engine)
    assert receiver.requests == []
    enabled = await engine.webhooks.enable(endpoint.id, actor=OPERATOR)
    assert enabled.enabled and enabled.disabled_reason is None
    with pytest.raises(InvalidTransition, match="already enabled"):
        await engine.webhooks.enable(endpoint.id, actor=OPERATOR)
    with pytest.raises(NotFound):
        await engine.webhooks.disable("ep_missing", actor=OPERATOR)
    await emit(engine, ev.PAYMENT_COMPLETED, "pay_2")
    await settle(engine)
    assert [r.json["data"]["id"] for r in receiver.requests] == ["pay_2"]


async def test_replay_sends_the_same_message_again(engine: Engine, clock: ManualClock, receiver: Receiver) -> None:
    endpoint, secret = await engine.webhooks.add_endpoint(receiver.url, actor=OPERATOR)
    event = await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")
    await settle(engine)
    (delivery,) = await engine.webhooks.deliveries_for_subject("payment", "pay_1")
    assert delivery.status == "SUCCEEDED"
    await run_for(engine, clock, 30, step=10)
    replayed = await engine.webhooks.replay(delivery.id, actor=OPERATOR)
    assert replayed.status == "PENDING"
    await settle(engine)
    first, again = receiver.requests
    assert first.webhook_id == again.webhook_id == event.id and first.body == again.body
    Webhook(secret).verify(again.body, again.headers)
    after = await engine.webhooks.get_delivery(delivery.id)
    assert after.status == "SUCCEEDED" and after.attempt_count == 2
    assert [a.attempt for a in await engine.webhooks.attempts(delivery.id)] == [1, 2]
    with pytest.raises(NotFound, match="no webhook delivery"):
        await engine.webhooks.replay("dlv_missing", actor=OPERATOR)
    await engine.webhooks.disable(endpoint.id, actor=OPERATOR)
    with pytest.raises(InvalidTransition, match="enable it"):
        await engine.webhooks.replay(delivery.id, actor=OPERATOR)
    async with engine.storage.read() as tx:
        actions = (await tx.session.scalars(select(AuditLogRow.action).where(AuditLogRow.subject_id == delivery.id))).all()
    assert actions == ["webhook_delivery.replay"]


async def test_recover_resends_failures_and_what_was_missed_while_disabled(
    db_url: str, clock: ManualClock, receiver: Receiver
) -> None:
    async with open_engine(make_settings(db_url, webhooks={"jitter": 0.0}), clock) as engine:
        receiver.default = Answer(500)
        endpoint, secret = await engine.webhooks.add_endpoint(receiver.url, ["payment.completed"], actor=OPERATOR)
        before = clock.now()
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_old")
        await jump(engine, clock, clock.now() + timedelta(hours=1))
        since = clock.now()
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_1")  # will be given up after ten attempts
        await settle(engine)
        for _ in range(12):
            pending = [d for d in (await engine.webhooks.list_deliveries(endpoint.id))[0] if d.status == "PENDING"]
            if not pending:
                break
            await jump(engine, clock, min(d.next_attempt_at for d in pending))
        failed, _ = await engine.webhooks.list_deliveries(endpoint.id, failed_only=True)
        assert {d.status for d in failed} == {"FAILED"} and len(failed) == 2
        await engine.webhooks.disable(endpoint.id, actor=OPERATOR, reason="receiver rebuilt")
        with pytest.raises(InvalidTransition, match="enable it"):
            await engine.webhooks.recover(endpoint.id, since, actor=OPERATOR)
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_2")  # missed: the endpoint is disabled
        await emit(engine, ev.PAYMENT_CREATED, "pay_2")  # not a type it takes
        await emit(engine, ev.PAYMENT_COMPLETED, "pay_3")
        await settle(engine)
        received_while_down = len(receiver.requests)
        await engine.webhooks.enable(endpoint.id, actor=OPERATOR)
        receiver.default = Answer(204)
        with pytest.raises(InvalidInput, match="future"):
            await engine.webhooks.recover(endpoint.id, clock.now() + timedelta(minutes=1), actor=OPERATOR)
        count = await engine.webhooks.recover(endpoint.id, since, actor=OPERATOR)
        await settle(engine)
        old = await engine.webhooks.deliveries_for_subject("payment", "pay_old")

    assert count == 3  # pay_1 (failed) + pay_2 and pay_3 (missed); pay_old is before `since`
    recovered = receiver.requests[received_while_down:]
    assert sorted(r.json["data"]["id"] for r in recovered) == ["pay_1", "pay_2", "pay_3"]
    for r in recovered:
        assert r.type == "payment.completed"
        assert r.webhook_id.startswith("msg_")
    assert [d.status for d in old] == ["FAILED"]
    assert before < since


async def test_list_deliveries_pages_and_filters(engine: Engine, clock: ManualClock, receiver: Receiver) -> None:
    receiver.default = lambda r: Answer(500 if r.path == "/bad" else 200)
    good, _ = await engine.webhooks.add_endpoint(receiver.url_for("/good"), actor=OPERATOR)
    bad, _ = await engine.webhooks.add_endpoint(receiver.url_for("/bad"), actor=OPERATOR)
    for n in range(5):
        await emit(engine, ev.PAYMENT_COMPLETED, f"pay_{n}")
        await run_for(engine, clock, 1)
    page, cursor = await engine.webhooks.list_deliveries(limit=4)
    rest, end = await engine.webhooks.list_deliveries(limit=10, cursor=cursor)
    assert len(page) == 4 and len(rest) == 6 and end is None
    assert len({d.id for d in page + rest}) == 10
    assert [d.created_at for d in page + rest] == sorted((d.created_at for d in page + rest), reverse=True)
    failing, _ = await engine.webhooks.list_deliveries(failed_only=True)
    assert {d.endpoint_id for d in failing} == {bad.id} and len(failing) == 5
    only_good, _ = await engine.webhooks.list_deliveries(endpoint_id=good.id)
    assert {d.status for d in only_good} == {"SUCCEEDED"} and len(only_good) == 5
    with pytest.raises(InvalidInput, match="cursor"):
        await engine.webhooks.list_deliveries(cursor="not-a-cursor")
    with pytest.raises(InvalidInput, match="limit"):
        await engine.webhooks.list_deliveries(limit=0)
    with pytest.raises(NotFound):
        await engine.webhooks.list_deliveries(endpoint_id="ep_missing")
    (attempt,) = await engine.webhooks.attempts(failing[0].id)
    assert attempt.status_code == 500 and attempt.attempt == 1
    with pytest.raises(NotFound):
        await engine.webhooks.attempts("dlv_missing")

    health = {h.endpoint.id: h for h in await engine.webhooks.endpoint_health()}
    assert health[good.id].enabled and health[good.id].failing_since is None
    assert health[good.id].pending == 0 and health[good.id].last_success_at is not None
    assert health[bad.id].pending == 5 and health[bad.id].failed == 0 and health[bad.id].last_success_at is None
    assert health[bad.id].failing_since is not None


async def test_send_test_reaches_only_that_endpoint(engine: Engine, receiver: Receiver) -> None:
    receiver.default = lambda r: Answer(200 if r.path == "/one" else 503)
    one, secret = await engine.webhooks.add_endpoint(receiver.url_for("/one"), ["payment.completed"], actor=OPERATOR)
    two, _ = await engine.webhooks.add_endpoint(receiver.url_for("/two"), actor=OPERATOR)
    outcome = await engine.webhooks.send_test(one.id)
    await settle(engine)
    assert outcome.succeeded and outcome.result.status_code == 200
    assert outcome.delivery.status == "SUCCEEDED" and outcome.delivery.event_type == ev.WEBHOOK_TEST
    (request,) = receiver.requests
    body = Webhook(secret).verify(request.body, request.headers)
    assert body["type"] == "webhook.test" and body["data"]["endpoint_id"] == one.id
    failing = await engine.webhooks.send_test(two.id)
    await settle(engine)
    assert not failing.succeeded and failing.result.status_code == 503
    assert failing.delivery.status == "PENDING" and failing.delivery.attempt_count == 1
    assert len(receiver.at("/one")) == 1
    await engine.webhooks.disable(two.id, actor=OPERATOR)
    with pytest.raises(InvalidTransition):
        await engine.webhooks.send_test(two.id)
    with pytest.raises(NotFound):
        await engine.webhooks.send_test("ep_missing")
