"""Snapshot tests of the Reports screen: a new install, a busy day (120×40) and the same day on an
80×24 terminal.

The busy day is today's twelve payments made through the engine (``seed_busy_board``), over five
weeks of history written straight into the database on a clock of their own (``write_history``):
fixed days, hours, amounts, terminals and cashiers, so the charts, the ghost lines and the tables
draw the same every run. The clock is the frozen 2026-01-15 10:00 Phnom Penh.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from textual.pilot import Pilot

from bakong_console.tui.screens.reports import ReportsScreen
from engine.clock import PHNOM_PENH, ManualClock
from engine.crypto import DataCipher, parse_key_spec
from engine.db.database import Database
from engine.db.storage import Storage
from engine.ids import IdFactory
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from tests.reports.conftest import Seed, seed_payment
from tests.support.engine import settle
from tests.support.settings import TEST_DATA_KEY
from tests.tui.conftest import Shoot, wait_until
from tests.tui.seeds import seed_busy_board

WIDE = (120, 40)
NARROW = (80, 24)

TODAY = date(2026, 1, 15)
#: Five weeks before today: the 30-day line and, a week before its first day, its ghost.
HISTORY_DAYS = 36
_CASHIERS = (Actor(ActorType.CASHIER, "dara"), Actor(ActorType.CASHIER, "sok"), Actor(ActorType.API_KEY, "shop"))


def history_seeds() -> list[Seed]:
    """Three to nine payments a day before today, between 08:00 and 19:00, a few timed out."""
    seeds = []
    for i in range(HISTORY_DAYS, 0, -1):
        day = TODAY - timedelta(days=i)
        for k in range(3 + (i * 5) % 7):
            at = datetime(day.year, day.month, day.day, 8 + (k * 3 + i) % 12, (k * 7) % 60, tzinfo=PHNOM_PENH)
            actor = _CASHIERS[(i + k) % 3]
            usd = k % 3 == 2
            seeds.append(
                Seed(
                    at=at,
                    amount_minor=150 + 250 * k if usd else 4_000 + 1_000 * k,
                    currency="USD" if usd else "KHR",
                    status=PaymentStatus.TIMEOUT if (i + k) % 4 == 0 else PaymentStatus.PAID,
                    actor=actor,
                    terminal=None if actor.type is ActorType.API_KEY else ("front", "back")[k % 2],
                    paid_after_s=20 + 10 * k,
                )
            )
    return sorted(seeds, key=lambda s: s.at)  # the clock that writes them only goes forward


async def write_history(engine: Engine) -> None:
    """The days before today, written on a clock of their own into the engine's database."""
    clock = ManualClock(datetime(2025, 12, 1, tzinfo=PHNOM_PENH))
    kid, key = parse_key_spec(TEST_DATA_KEY)
    db = Database(engine.settings.database.url)
    storage = Storage(db, clock=clock, cipher=DataCipher(kid, {kid: key}), ids=IdFactory(clock, random.Random(11)))
    try:
        for n, seed in enumerate(history_seeds(), start=9000):
            await seed_payment(storage, n, seed)
    finally:
        await db.dispose()
    await settle(engine)


async def show_reports(pilot: Pilot[Any], *, payments: int) -> None:
    await pilot.app.switch_mode("reports")
    screen = pilot.app.screen
    assert isinstance(screen, ReportsScreen)

    def loaded() -> bool:
        return screen.report is not None and sum(t.payments for t in screen.report.totals) == payments

    await wait_until(pilot, loaded, what=f"the report of {payments} payments")
    pilot.app.clear_notifications()


def test_reports_empty(shoot: Shoot) -> None:
    """A new install: no payments, empty charts, nothing waiting, the day open."""

    async def empty(pilot: Pilot[Any]) -> None:
        await show_reports(pilot, payments=0)

    assert shoot(WIDE, empty)


def test_reports_busy(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any) -> None:
    """Today's twelve payments over five weeks of history: totals per currency, the status mix,
    the hours beside last week's, the 30 days with their ghost line, terminals and cashiers, and
    the five payments that still wait for a decision."""
    on_loop(write_history(snapshot_engine))
    on_loop(seed_busy_board(snapshot_engine, clock))

    async def busy(pilot: Pilot[Any]) -> None:
        await show_reports(pilot, payments=12)
        screen = pilot.app.screen
        assert isinstance(screen, ReportsScreen) and screen.report is not None
        assert [(t.currency, t.payments, t.paid_count, t.paid_minor) for t in screen.report.totals] == [
            ("KHR", 6, 2, 175_000),
            ("USD", 6, 1, 800),
        ]
        assert len(screen.days) == 30 and screen.days[0].day == date(2025, 12, 17)

    assert shoot(WIDE, busy)


def test_reports_80x24(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any) -> None:
    """The busy day on an 80×24 terminal: the day, the totals and the status mix on the first
    screenful; the rest below it, one scroll away."""
    on_loop(write_history(snapshot_engine))
    on_loop(seed_busy_board(snapshot_engine, clock))

    async def busy(pilot: Pilot[Any]) -> None:
        await show_reports(pilot, payments=12)

    assert shoot(NARROW, busy)
