"""Subscription fixtures: a whole engine (renewer included) on the manual clock, with plans."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from engine.clock import ManualClock
from engine.config import Settings
from engine.records import Actor, ActorType, Payment, PaymentStatus, Plan
from engine.runtime import Engine
from tests.support.engine import events_for, open_engine, run_for, settle
from tests.support.plans import add_plans
from tests.support.settings import make_settings

OPERATOR = Actor(ActorType.CLI, "sophea")
BACKEND = Actor(ActorType.API_KEY, "backend")


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    # no client-side retries: a retry sleeps on the manual clock inside the client
    return make_settings(db_url, bakong={"max_retries": 0})


@pytest.fixture
async def plans(engine: Engine) -> dict[str, Plan]:
    return await add_plans(engine, OPERATOR)


async def event_types(engine: Engine, subject_id: str) -> list[str]:
    return [e.type for e in await events_for(engine, subject_id) if e.type.startswith("subscription.")]


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
async def quiet_engine(engine_settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    """An engine without running workers: tests drive the renewer pass by pass and settle
    payments by hand (``mark_paid``), jumping the clock freely."""
    async with open_engine(engine_settings, clock, run_workers=False) as eng:
        yield eng


@pytest.fixture
async def quiet_plans(quiet_engine: Engine) -> dict[str, Plan]:
    return await add_plans(quiet_engine, OPERATOR, ("basic", "pro", "max", "trial", "usd", "weekly"))


async def mark_paid(engine: Engine, payment_id: str) -> Payment:
    return await engine.payments.mark_paid(payment_id, actor=OPERATOR, reason="seen in the bank app")


async def subscribe_paid(engine: Engine, user: str, plan: str) -> None:
    """Subscribe ``user`` to ``plan`` and mark its first KHQR paid (the renewer has not acted yet)."""
    view = await engine.subscriptions.create(user, plan, BACKEND)
    (item,) = view.open_invoices
    assert item.payment is not None
    await mark_paid(engine, item.payment.id)
