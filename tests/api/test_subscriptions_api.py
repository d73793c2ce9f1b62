"""/api/subscriptions on both databases: create, status, upgrade (preview and prorated invoice),
downgrade, cancel; refusals as problems; changes audited with the key and its address."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from engine import events as ev
from engine.clock import ManualClock
from engine.db import journal
from engine.records import Plan
from engine.runtime import Engine
from tests.api.conftest import ADMIN, CLIENT_IP, KeyFactory
from tests.api.test_payments_api import problem
from tests.support.engine import events_for, run_for
from tests.support.plans import add_plans

SUBS = "/api/subscriptions"


@pytest.fixture
async def plans(engine: Engine) -> dict[str, Plan]:
    return await add_plans(engine, ADMIN)


async def pay(engine: Engine, clock: ManualClock, khqr: str) -> None:
    """The customer scans and pays; the poller finds it and the renewer acts."""
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=khqr)
    await run_for(engine, clock, 30, step=5)


async def subscribe(client: httpx.AsyncClient, auth: dict[str, str], user: str, plan: str) -> dict[str, Any]:
    response = await client.post(SUBS, json={"user_id": user, "plan": plan}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def active(client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock, user: str, plan: str) -> dict[str, Any]:
    created = await subscribe(client, auth, user, plan)
    await pay(engine, clock, created["open_invoices"][0]["payment"]["khqr"])
    status = (await client.get(f"{SUBS}/status/{user}", headers=auth)).json()["data"]
    assert status["status"] == "ACTIVE", status
    return status


async def test_create_issues_the_first_invoice_and_payment_activates(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock, plans: dict[str, Plan]
) -> None:
    created = await subscribe(client, auth, "user-1", "basic")
    assert created["status"] == "INCOMPLETE" and created["has_access"] is False
    assert created["plan"] == {
        "code": "basic", "name": "Basic", "price": "20000", "price_minor": 20000, "currency": "KHR", "cycle_days": 30, "trial_days": 0,
    }  # fmt: skip
    (invoice,) = created["open_invoices"]
    assert invoice["kind"] == "initial" and invoice["amount"] == "20000" and invoice["plan"] == "basic"
    assert invoice["payment"]["status"] == "PENDING" and invoice["payment"]["subscription_id"] == created["id"]

    await pay(engine, clock, invoice["payment"]["khqr"])
    status = await client.get(f"{SUBS}/status/user-1", headers=auth)
    assert status.status_code == 200
    data = status.json()["data"]
    assert data["status"] == "ACTIVE" and data["has_access"] is True and data["open_invoices"] == []
    assert data["current_period_end"] is not None
    async with engine.storage.read() as tx:
        audit = await journal.list_audit(tx, subject_id=created["id"], action="subscription.create")
    assert [(a.actor_type, a.actor, a.source_ip) for a in audit] == [("api_key", "main-backend", CLIENT_IP)]


async def test_trial_plan_starts_trialing_with_access(client: httpx.AsyncClient, auth: dict[str, str], plans: dict[str, Plan]) -> None:
    created = await subscribe(client, auth, "user-t", "trial")
    assert created["status"] == "TRIALING" and created["has_access"] is True and created["trial_end"] is not None
    assert created["open_invoices"] == []


async def test_create_refusals(client: httpx.AsyncClient, auth: dict[str, str], plans: dict[str, Plan], make_key: KeyFactory) -> None:
    await subscribe(client, auth, "user-1", "basic")
    problem(await client.post(SUBS, json={"user_id": "user-1", "plan": "pro"}, headers=auth), 409, "conflict")
    problem(await client.post(SUBS, json={"user_id": "user-2", "plan": "gold"}, headers=auth), 404, "not-found")
    problem(await client.post(SUBS, json={"user_id": "", "plan": "basic"}, headers=auth), 422, "invalid-input")
    problem(await client.post(SUBS, json={"user_id": "u\x01", "plan": "basic"}, headers=auth), 422, "invalid-input")
    problem(await client.post(SUBS, json={"user_id": "user-2", "plan": "Basic!"}, headers=auth), 422, "invalid-input")
    reader = {"X-API-Key": await make_key(scopes=["subscriptions:read", "payments:write"])}
    problem(await client.post(SUBS, json={"user_id": "user-3", "plan": "basic"}, headers=reader), 403, "forbidden")
    assert (await client.get(f"{SUBS}/status/user-1", headers=reader)).status_code == 200
    writer_only = {"X-API-Key": await make_key(scopes=["subscriptions:write"])}
    problem(await client.get(f"{SUBS}/status/user-1", headers=writer_only), 403, "forbidden")
    problem(await client.get(f"{SUBS}/status/nobody", headers=auth), 404, "not-found")


async def test_upgrade_preview_then_prorated_invoice_applied_when_paid(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock, plans: dict[str, Plan]
) -> None:
    status = await active(client, auth, engine, clock, "user-1", "basic")
    sub_id = status["id"]
    end = datetime.fromisoformat(status["current_period_end"].replace("Z", "+00:00"))
    clock.set(end - timedelta(days=10))
    payments_before = len((await engine.payments.search(_filter(), limit=100))[0])

    preview = await client.post(f"{SUBS}/upgrade", json={"user_id": "user-1", "plan": "pro", "preview": True}, headers=auth)
    assert preview.status_code == 200
    quote = preview.json()["data"]
    assert quote["preview"] is True and quote["subscription"] is None and quote["invoice"] is None
    assert quote["quote"]["amount"] == "10000" and quote["quote"]["amount_minor"] == 10000  # 30000 x 10/30
    assert quote["quote"]["from_plan"] == "basic" and quote["quote"]["to_plan"] == "pro"
    assert len((await engine.payments.search(_filter(), limit=100))[0]) == payments_before

    response = await client.post(f"{SUBS}/upgrade", json={"user_id": "user-1", "plan": "pro"}, headers=auth)
    assert response.status_code == 200
    change = response.json()["data"]
    assert change["applied"] is False and change["subscription"]["pending_change"] == "upgrade"
    assert change["subscription"]["pending_plan"]["code"] == "pro" and change["subscription"]["plan"]["code"] == "basic"
    invoice = change["invoice"]
    assert invoice["kind"] == "upgrade" and invoice["amount_minor"] == 10000 and invoice["plan"] == "pro"

    await pay(engine, clock, invoice["payment"]["khqr"])
    after = (await client.get(f"{SUBS}/status/user-1", headers=auth)).json()["data"]
    assert after["plan"]["code"] == "pro" and after["pending_change"] is None and after["price_minor"] == 50000
    async with engine.storage.read() as tx:
        types = [e.type for e in await journal.events_since(tx, 0, limit=10_000) if e.subject_id == sub_id]
        audit = await journal.list_audit(tx, subject_id=sub_id, action="subscription.upgrade_requested")
    assert ev.SUBSCRIPTION_UPGRADED in types
    assert [(a.actor, a.source_ip) for a in audit] == [("main-backend", CLIENT_IP)]


async def test_upgrade_refusals(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock, plans: dict[str, Plan]
) -> None:
    await active(client, auth, engine, clock, "user-1", "pro")
    url = f"{SUBS}/upgrade"
    assert "use downgrade" in problem(await client.post(url, json={"user_id": "user-1", "plan": "basic"}, headers=auth), 422, "invalid-input")["detail"]
    problem(await client.post(url, json={"user_id": "user-1", "plan": "usd", "preview": True}, headers=auth), 422, "invalid-input")
    problem(await client.post(url, json={"user_id": "nobody", "plan": "pro"}, headers=auth), 404, "not-found")
    problem(await client.post(url, json={"user_id": "user-1", "plan": "pro", "preview": "maybe"}, headers=auth), 422, "invalid-input")


async def test_downgrade_is_scheduled_for_period_end_and_cancel(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock, plans: dict[str, Plan]
) -> None:
    status = await active(client, auth, engine, clock, "user-1", "pro")
    response = await client.post(f"{SUBS}/downgrade", json={"user_id": "user-1", "plan": "basic"}, headers=auth)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["pending_change"] == "downgrade" and data["pending_plan"]["code"] == "basic"
    assert data["pending_change_at"] == status["current_period_end"] and data["plan"]["code"] == "pro"
    problem(await client.post(f"{SUBS}/downgrade", json={"user_id": "user-1", "plan": "pro"}, headers=auth), 422, "invalid-input")

    cancelled = await client.post(f"{SUBS}/cancel", json={"user_id": "user-1", "reason": "moving abroad"}, headers=auth)
    assert cancelled.status_code == 200
    later = cancelled.json()["data"]
    assert later["status"] == "ACTIVE" and later["cancel_at_period_end"] is True and later["has_access"] is True
    problem(
        await client.post(f"{SUBS}/downgrade", json={"user_id": "user-1", "plan": "basic"}, headers=auth), 409, "invalid-transition"
    )
    now = await client.post(f"{SUBS}/cancel", json={"user_id": "user-1", "at_period_end": False}, headers=auth)
    assert now.status_code == 200
    ended = now.json()["data"]
    assert ended["status"] == "CANCELLED" and ended["has_access"] is False and ended["cancelled_at"] is not None
    problem(await client.post(f"{SUBS}/cancel", json={"user_id": "user-1"}, headers=auth), 404, "not-found")
    async with engine.storage.read() as tx:
        audit = await journal.list_audit(tx, subject_id=status["id"], action="subscription.cancel")
    assert [(a.actor, a.source_ip) for a in audit] == [("main-backend", CLIENT_IP)]


def _filter() -> Any:
    from engine.services.payments import PaymentFilter

    return PaymentFilter()


async def test_a_retried_upgrade_with_its_idempotency_key_keeps_the_first_invoice(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock, plans: dict[str, Plan]
) -> None:
    await active(client, auth, engine, clock, "user-1", "basic")
    keyed = {**auth, "Idempotency-Key": "upgrade-7f3a"}
    body = {"user_id": "user-1", "plan": "pro"}
    first = await client.post(f"{SUBS}/upgrade", json=body, headers=keyed)
    assert first.status_code == 200, first.text
    invoice = first.json()["data"]["invoice"]
    retry = await client.post(f"{SUBS}/upgrade", json=body, headers=keyed)  # the answer was lost
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["data"] == first.json()["data"]
    assert (await engine.payments.get(invoice["payment"]["id"])).status.value == "PENDING", "the first invoice stands"
    sub_id = first.json()["data"]["subscription"]["id"]
    assert [e.type for e in await events_for(engine, sub_id)].count(ev.SUBSCRIPTION_UPGRADE_PENDING) == 1

    other = await client.post(f"{SUBS}/upgrade", json={"user_id": "user-1", "plan": "max"}, headers=keyed)
    assert problem(other, 409, "idempotency-conflict")
    assert (await engine.payments.get(invoice["payment"]["id"])).status.value == "PENDING"


async def test_downgrade_and_cancel_retried_with_their_keys_change_once(
    client: httpx.AsyncClient, auth: dict[str, str], engine: Engine, clock: ManualClock, plans: dict[str, Plan]
) -> None:
    status = await active(client, auth, engine, clock, "user-2", "pro")
    down = {"user_id": "user-2", "plan": "basic"}
    answers = [await client.post(f"{SUBS}/downgrade", json=down, headers={**auth, "Idempotency-Key": "down-1"}) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and "Idempotent-Replayed" not in answers[0].headers
    assert answers[1].headers["Idempotent-Replayed"] == "true" and answers[1].json()["data"] == answers[0].json()["data"]
    cancel = {"user_id": "user-2", "at_period_end": True}
    answers = [await client.post(f"{SUBS}/cancel", json=cancel, headers={**auth, "Idempotency-Key": "cancel-1"}) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[1].headers["Idempotent-Replayed"] == "true"
    types = [e.type for e in await events_for(engine, status["id"])]
    assert types.count(ev.SUBSCRIPTION_DOWNGRADE_SCHEDULED) == 1 and types.count(ev.SUBSCRIPTION_CANCEL_SCHEDULED) == 1
    reused = await client.post(f"{SUBS}/cancel", json={**cancel, "at_period_end": False}, headers={**auth, "Idempotency-Key": "cancel-1"})
    assert problem(reused, 409, "idempotency-conflict")
    failed = await client.post(f"{SUBS}/downgrade", json={"user_id": "nobody", "plan": "basic"}, headers={**auth, "Idempotency-Key": "down-2"})
    assert failed.status_code == 404
    again = await client.post(f"{SUBS}/downgrade", json={"user_id": "nobody", "plan": "basic"}, headers={**auth, "Idempotency-Key": "down-2"})
    assert again.status_code == 404, "a failed change leaves no claim: its retry runs again"
