"""Subscription fixtures: a whole engine (renewer included) on the manual clock, with plans."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from engine.clock import ManualClock
from engine.config import Settings
from engine.db import journal
from engine.records import Actor, ActorType, Event, Payment, PaymentStatus, Plan
from engine.runtime import Engine
from tests.engine.conftest import engine, make_settings, run_for, settle  # noqa: F401 (engine: the fixture)

OPERATOR = Actor(ActorType.CLI, "sophea")
BACKEND = Actor(ActorType.API_KEY, "backend")


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    # no client-side retries: a retry sleeps on the manual clock inside the client
    return make_settings(db_url, bakong={"max_retries": 0})


@pytest.fixture
async def plans(engine: Engine) -> dict[str, Plan]:
    subs = engine.subscriptions
    return {
        "basic": await subs.add_plan("basic", "Basic", "20000", "KHR", 30, 0, actor=OPERATOR),
        "pro": await subs.add_plan("pro", "Pro", "50000", "KHR", 30, 0, actor=OPERATOR),
        "trial": await subs.add_plan("trial", "Basic with trial", "20000", "KHR", 30, 7, actor=OPERATOR),
        "usd": await subs.add_plan("usd", "Dollar plan", "5.00", "USD", 30, 0, actor=OPERATOR),
    }


async def events_of(engine: Engine, subject_id: str) -> list[Event]:
    async with engine.storage.read() as tx:
        return [e for e in await journal.events_since(tx, 0, limit=100_000) if e.subject_id == subject_id]


async def event_types(engine: Engine, subject_id: str) -> list[str]:
    return [e.type for e in await events_of(engine, subject_id) if e.type.startswith("subscription.")]


async def pay(engine: Engine, clock: ManualClock, payment: Payment) -> Payment:
    """Pay a KHQR in the built-in sandbox and let the poller find it (and the renewer act)."""
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=payment.khqr)
    await engine.payments.request_check(payment.id, actor=BACKEND)
    await run_for(engine, clock, 20, step=5)
    done = await engine.payments.get(payment.id)
    assert done.status is PaymentStatus.PAID, (done.status, done.last_check_result)
    return done


async def advance_to(engine: Engine, clock: ManualClock, when: datetime, *, step: float = 12 * 3600) -> None:
    """Move the clock to ``when`` in steps, letting the engine work at each step."""
    await settle(engine)
    while clock.now() < when:
        dt = min(step, (when - clock.now()).total_seconds())
        clock.advance(dt)
        await asyncio.sleep(0)
        await settle(engine)





@pytest.fixture
async def quiet_engine(engine_settings: Settings, clock: ManualClock):  # noqa: ANN201
    """An engine without running workers: tests drive the renewer pass by pass and settle
    payments by hand (``mark_paid``), jumping the clock freely."""
    from tests.engine.conftest import open_engine

    async with open_engine(engine_settings, clock, run_workers=False) as eng:
        yield eng


@pytest.fixture
async def quiet_plans(quiet_engine: Engine) -> dict[str, Plan]:
    subs = quiet_engine.subscriptions
    return {
        "basic": await subs.add_plan("basic", "Basic", "20000", "KHR", 30, 0, actor=OPERATOR),
        "pro": await subs.add_plan("pro", "Pro", "50000", "KHR", 30, 0, actor=OPERATOR),
        "max": await subs.add_plan("max", "Max", "80000", "KHR", 30, 0, actor=OPERATOR),
        "trial": await subs.add_plan("trial", "Basic with trial", "20000", "KHR", 30, 7, actor=OPERATOR),
        "usd": await subs.add_plan("usd", "Dollar plan", "5.00", "USD", 30, 0, actor=OPERATOR),
        "weekly": await subs.add_plan("weekly", "Weekly", "5000", "KHR", 7, 0, actor=OPERATOR),
    }


async def mark_paid(engine: Engine, payment_id: str) -> Payment:
    return await engine.payments.mark_paid(payment_id, actor=OPERATOR, reason="seen in the bank app")
