"""Fixtures for the Bakong client and sandbox: a sandbox per test, reached in-process
(``httpx.ASGITransport``) or over real loopback HTTP (tests/conftest.py's ``loopback_server``,
pointed at each test's sandbox), and a clock whose ``sleep`` moves time so retries never hang.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from engine import khqr
from engine.bakong import BakongClient, InMemoryRequestLedger, InMemoryTokenStore
from engine.bakong.sandbox import BakongSandbox, InMemoryTransferStore, SandboxFaults, create_sandbox_app
from engine.clock import ManualClock

EMAIL = "shop@example.com"
MERCHANT = "shop@devb"


class SteppingClock(ManualClock):
    """A ManualClock whose ``sleep`` advances time at once and records how long was asked."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(datetime(2026, 1, 15, 3, 0, tzinfo=UTC))


@dataclass
class SandboxUnderTest:
    app: Any
    sandbox: BakongSandbox
    store: InMemoryTransferStore
    clock: SteppingClock

    @property
    def token(self) -> str:
        return self.sandbox.token

    def set_faults(self, **changes: Any) -> None:
        self.sandbox.faults = self.sandbox.faults.updated(changes)

    def requests(self, label: str | None = None) -> int:
        return self.sandbox.stats["total" if label is None else label]

    def qr(self, amount: Decimal | int | str | None, currency: str = "USD", *, minutes: int = 15, account: str = MERCHANT) -> khqr.KHQRResult:
        now_ms = int(self.clock.now().timestamp() * 1000)
        info = khqr.IndividualInfo(
            bakong_account_id=account,
            merchant_name="Sandbox Shop",
            currency=currency,
            amount=amount,
            expiration_timestamp=now_ms + minutes * 60_000 if amount else None,
        )
        return khqr.generate(info, now_ms=now_ms)


@pytest.fixture
def sandbox(clock: SteppingClock) -> SandboxUnderTest:
    store = InMemoryTransferStore()
    app = create_sandbox_app(store, clock=clock, email=EMAIL, faults=SandboxFaults(), rng=random.Random(42))
    return SandboxUnderTest(app, app.state.sandbox, store, clock)


@pytest.fixture(params=["asgi", "loopback"])
def wire(request: pytest.FixtureRequest) -> str:
    """How the client reaches the sandbox: in-process ASGI, or real HTTP over loopback."""
    return request.param


@pytest.fixture
def base_url(wire: str, sandbox: SandboxUnderTest, request: pytest.FixtureRequest) -> str:
    if wire == "asgi":
        return "http://sandbox.test"
    server, switch = request.getfixturevalue("loopback_server")
    switch.target = sandbox.app
    return server.url


MakeClient = Callable[..., BakongClient]


@pytest.fixture
async def make_client(wire: str, base_url: str, sandbox: SandboxUnderTest) -> AsyncIterator[MakeClient]:
    """Builds clients against this test's sandbox; keyword arguments override the defaults."""
    clients: list[BakongClient] = []

    def make(**overrides: Any) -> BakongClient:
        kwargs: dict[str, Any] = {
            "base_url": base_url,
            "clock": sandbox.clock,
            "ledger": InMemoryRequestLedger(),
            "token": sandbox.token,
            "email": EMAIL,
            "token_store": InMemoryTokenStore(),
            "daily_budget": 10_000,
            "rng": random.Random(7),
            "timeout_seconds": 5.0,
            "environment": "sandbox",
        }
        if wire == "asgi":
            kwargs["transport"] = httpx.ASGITransport(app=sandbox.app)
        kwargs.update(overrides)
        client = BakongClient(**kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(make_client: MakeClient) -> BakongClient:
    return make_client()
