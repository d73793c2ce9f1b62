"""``GET /api/payments/status/{md5}`` through the point read answers byte for byte what a read
through a session answers (paid with the payer's sealed account and Bakong's record, pending,
timed out), on both databases; on PostgreSQL a server that is down is a 503 problem, and
closing the engine closes the point read's connections."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from bakong_console.api import create_app
from engine.clock import ManualClock
from engine.db import payments as repo
from engine.db.point_pool import PointReadPool
from engine.db.pointread import PointRead
from engine.records import Actor, ActorType, Payment, PaymentStatus
from engine.runtime import Engine
from tests.api.conftest import client_for
from tests.db.test_point_pool import gone, live
from tests.support.engine import open_engine, run_for
from tests.support.settings import make_settings

CASHIER = Actor(ActorType.CASHIER, "dara")
PAYER = "abaakhppxxx@abaa"


def status_url(payment: Payment) -> str:
    return f"/api/payments/status/{payment.md5.upper()}"


async def test_status_answers_exactly_what_a_session_read_answers(
    app: FastAPI, auth: dict[str, str], engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    paid = (await engine.payments.initiate("12.35", "USD", actor=CASHIER, reference="order-1", description="ទឹកក្រូច")).payment
    pending = (await engine.payments.initiate("40000", "KHR", actor=CASHIER, bill_number="INV-9")).payment
    expiring = (await engine.payments.initiate("1.00", "USD", actor=CASHIER, timeout_minutes=1)).payment
    await engine.sandbox.pay(qr=paid.khqr, from_account=PAYER)
    await run_for(engine, clock, 120, step=5)
    payments = [await engine.payments.get(p.id) for p in (paid, pending, expiring)]
    assert [p.status for p in payments] == [PaymentStatus.PAID, PaymentStatus.PENDING, PaymentStatus.TIMEOUT]
    assert payments[0].payer_account == PAYER and payments[0].bakong_record

    async def answers() -> list[bytes]:
        async with client_for(app) as client:
            out = []
            for i, payment in enumerate(payments):
                response = await client.get(status_url(payment), headers={**auth, "X-Request-ID": f"req-{i}"})
                assert response.status_code == 200, response.text
                out.append(response.content)
            return out

    point_read = await answers()

    async def through_a_session(md5: str) -> Payment:
        async with engine.storage.lookup() as tx:
            return await repo.get_by_md5(tx, md5)

    monkeypatch.setattr(engine.payments, "get_by_md5", through_a_session)
    assert await answers() == point_read
    data = [httpx.Response(200, content=body).json()["data"] for body in point_read]
    assert [d["status"] for d in data] == ["PAID", "PENDING", "TIMEOUT"]
    assert data[0]["payer_account"] == PAYER and data[0]["description"] == "ទឹកក្រូច"


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_status_while_postgresql_is_down_is_a_503_problem(
    app: FastAPI, auth: dict[str, str], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    payment = (await engine.payments.initiate("1.00", "USD", actor=CASHIER)).payment
    db = engine.storage.db
    down = PointReadPool("postgresql+asyncpg://postgres@127.0.0.1:1/bakong", db.engine.dialect, size=2)
    monkeypatch.setattr(db, "point_pool", down)
    async with client_for(app) as client:
        response = await client.get(status_url(payment), headers=auth)
    assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/api/problems/storage-error" and body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text and "127.0.0.1" not in response.text and "asyncpg" not in response.text


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_closing_the_engine_closes_the_status_reads_connections(db_url: str, clock: ManualClock) -> None:
    async with open_engine(make_settings(db_url), clock, run_workers=False) as engine:
        payment = (await engine.payments.initiate("1.00", "USD", actor=CASHIER)).payment
        app = create_app(engine)
        try:
            async with client_for(app) as client:
                _, key = await engine.api_keys.create("backend", None, actor=CASHIER)
                answers = await asyncio.gather(*(client.get(status_url(payment), headers={"X-API-Key": key}) for _ in range(8)))
        finally:
            await app.state.api.aclose()
        assert {a.status_code for a in answers} == {200}
        row = await PointRead.of(engine.storage.db, select(func.pg_backend_pid().label("pid"))).one({})
        assert row is not None and await live([row.pid]) == {row.pid}
    assert await gone({row.pid})
