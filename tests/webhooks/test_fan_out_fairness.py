"""Fan-out shares SQLite's one write lock fairly: a create issued while the deliverer fans out a
large batch of events gets its turn before the batch ends (issue 19.2)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from engine.clock import ManualClock
from engine.db import journal, state
from engine.db.models import WebhookDeliveryRow
from engine.db.storage import Storage
from engine.db import webhooks as repo
from engine.services.webhooks import WebhookService
from engine.workers.deliverer import FAN_OUT_BATCH, Deliverer
from tests.support.settings import make_settings
from tests.webhooks.conftest import OPERATOR


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_write_issued_mid_fan_out_runs_before_the_batch_is_written(
    storage: Storage, db_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(db_url)
    webhooks = WebhookService(storage, settings, clock=clock)
    await webhooks.add_endpoint("http://127.0.0.1:9/hook", actor=OPERATOR)
    async with storage.transaction() as tx:
        for n in range(FAN_OUT_BATCH):
            await journal.append_event(tx, "payment.created", "payment", f"pay_{n}", {"id": f"pay_{n}"})

    fanning = asyncio.Event()
    real_fan_out = repo.fan_out

    async def fan_out_noticed(tx, events, endpoints):  # type: ignore[no-untyped-def]
        fanning.set()
        await asyncio.sleep(0)  # the create below is issued now, mid-batch
        return await real_fan_out(tx, events, endpoints)

    monkeypatch.setattr(repo, "fan_out", fan_out_noticed)
    deliverer = Deliverer(storage, settings, clock=clock, sender=webhooks.sender)
    order: list[str] = []
    seen_by_create: list[int] = []

    async def fan_out() -> None:
        assert await deliverer.fan_out() == FAN_OUT_BATCH
        order.append("fan-out")

    async def create() -> None:
        await fanning.wait()
        async with storage.transaction() as tx:
            await state.set_state(tx, "api-create", {"at": "mid-batch"})
            seen_by_create.append(int(await tx.session.scalar(select(func.count()).select_from(WebhookDeliveryRow))))
        order.append("create")

    await asyncio.wait_for(asyncio.gather(fan_out(), create()), 60)
    assert order == ["create", "fan-out"]
    (deliveries_before_create,) = seen_by_create
    assert deliveries_before_create < FAN_OUT_BATCH  # it did not wait for the whole batch
    async with storage.read() as tx:
        assert await tx.session.scalar(select(func.count()).select_from(WebhookDeliveryRow)) == FAN_OUT_BATCH
