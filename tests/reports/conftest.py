"""The reports' fixture: a day of payments across Phnom Penh midnight, written on the manual clock.

The day under test is 2026-01-15 in Asia/Phnom_Penh: [2026-01-14T17:00Z, 2026-01-15T17:00Z).
Hand-computed totals of the seeded payments are in ``EXPECTED_*`` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from engine.clock import ManualClock
from engine.db import payments as repo
from engine.db.ledger import DatabaseRequestLedger
from engine.db.storage import Storage
from engine.records import Actor, ActorType, PaymentStatus

DAY = date(2026, 1, 15)
DARA = Actor(ActorType.CASHIER, "dara")
SOK = Actor(ActorType.CASHIER, "sok")
SHOP_KEY = Actor(ActorType.API_KEY, "shop")


@dataclass(frozen=True)
class Seed:
    at: datetime
    amount_minor: int
    currency: str
    status: PaymentStatus
    actor: Actor
    terminal: str | None = None
    paid_after_s: int = 0


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


#: Chronological. Local time (UTC+7) in the comments.
SEEDS = [
    Seed(utc(2026, 1, 8, 2, 0), 100, "KHR", PaymentStatus.PAID, DARA, "front", 20),  # Jan 8 09:00: last week
    Seed(utc(2026, 1, 14, 16, 59, 59), 10_000, "KHR", PaymentStatus.PAID, DARA, "front", 10),  # Jan 14 23:59:59
    Seed(utc(2026, 1, 14, 17, 0, 0), 4_000, "KHR", PaymentStatus.PAID, DARA, "front", 30),  # Jan 15 00:00:00
    Seed(utc(2026, 1, 15, 2, 30), 1_250, "USD", PaymentStatus.PAID, DARA, "front", 90),  # 09:30
    Seed(utc(2026, 1, 15, 2, 45), 6_000, "KHR", PaymentStatus.PAID, SOK, "back", 60),  # 09:45
    Seed(utc(2026, 1, 15, 3, 10), 2_500, "KHR", PaymentStatus.NEEDS_REVIEW, SOK, "back"),  # 10:10
    Seed(utc(2026, 1, 15, 16, 59, 59), 500, "USD", PaymentStatus.PENDING, SHOP_KEY),  # 23:59:59
    Seed(utc(2026, 1, 15, 17, 0, 0), 999, "USD", PaymentStatus.PAID, SHOP_KEY, None, 5),  # Jan 16 00:00:00
]

#: (currency, payments, paid count, paid minor) of 2026-01-15.
EXPECTED_TOTALS = [("KHR", 3, 2, 10_000), ("USD", 2, 1, 1_250)]
EXPECTED_TERMINALS = [(None, "USD", 1, 0, 0), ("back", "KHR", 2, 1, 6_000), ("front", "KHR", 1, 1, 4_000), ("front", "USD", 1, 1, 1_250)]
EXPECTED_CASHIERS = [
    ("api_key:shop", "USD", 1, 0, 0),
    ("cashier:dara", "KHR", 1, 1, 4_000),
    ("cashier:dara", "USD", 1, 1, 1_250),
    ("cashier:sok", "KHR", 2, 1, 6_000),
]
EXPECTED_STATUSES = [("NEEDS_REVIEW", "KHR", 1, 2_500), ("PAID", "KHR", 2, 10_000), ("PAID", "USD", 1, 1_250), ("PENDING", "USD", 1, 500)]
#: local hour -> payments that day, and the same hour a week before
EXPECTED_HOURS = {0: (1, 0), 9: (2, 1), 10: (1, 0), 23: (1, 0)}
EXPECTED_MEDIAN_S = 60.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(utc(2026, 1, 7, 0, 0))


async def seed_payment(storage: Storage, n: int, seed: Seed) -> str:
    """Write one seeded payment at ``seed.at`` (the clock is moved there first)."""
    clock = storage.clock
    assert isinstance(clock, ManualClock)
    clock.set(seed.at)
    async with storage.transaction() as tx:
        p = await repo.insert(
            tx, actor=seed.actor, amount_minor=seed.amount_minor, currency=seed.currency, khqr=f"khqr-{n}",
            md5=f"{n:032x}", receiving_account="shop@devb", expires_at=seed.at + timedelta(minutes=15),
            next_check_at=None, terminal=seed.terminal,
        )  # fmt: skip
        if seed.status is not PaymentStatus.PENDING:
            changes = {"paid_at": seed.at + timedelta(seconds=seed.paid_after_s)} if seed.status is PaymentStatus.PAID else {}
            done = await repo.transition(
                tx, p.id, expected=[PaymentStatus.PENDING], to=seed.status, actor=seed.actor, reason="seed", changes=changes
            )
            assert done is not None
    return p.id


async def seed_day(storage: Storage) -> list[str]:
    """Every seed, plus Bakong requests: two at 08:00 on the 15th and one at 23:00 on the 14th."""
    ids = [await seed_payment(storage, n, s) for n, s in enumerate(SEEDS, start=1)]
    ledger = DatabaseRequestLedger(storage)
    for at in (utc(2026, 1, 14, 16, 0), utc(2026, 1, 15, 1, 0), utc(2026, 1, 15, 1, 30)):
        await ledger.reserve("fp", "check_transaction_by_md5", now=at, daily_budget=100)
    return ids


@pytest.fixture
async def seeded(storage: Storage, cli_env: dict[str, str]) -> dict[str, str]:
    """The CLI's environment on a database holding the seeded day."""
    await seed_day(storage)
    return cli_env
