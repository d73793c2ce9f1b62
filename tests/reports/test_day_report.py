"""The day and range reports on SQLite and PostgreSQL: exact totals against the hand-computed
fixture across Phnom Penh midnight, and one clear error for each kind of bad input."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine.clock import ManualClock
from engine.db.storage import Storage
from engine.errors import InvalidInput
from engine.services.reports import ReportService
from tests.reports.conftest import (
    DAY,
    EXPECTED_CASHIERS,
    EXPECTED_HOURS,
    EXPECTED_MEDIAN_S,
    EXPECTED_STATUSES,
    EXPECTED_TERMINALS,
    EXPECTED_TOTALS,
    seed_day,
    utc,
)
from tests.support.settings import make_settings


@pytest.fixture
def reports(storage: Storage, db_url: str) -> ReportService:
    return ReportService(storage, make_settings(db_url, bakong={"daily_budget": 100}), clock=storage.clock)


async def test_a_day_totals_exactly_what_was_made_between_its_midnights(storage: Storage, reports: ReportService, clock: ManualClock) -> None:
    ids = await seed_day(storage)
    clock.set(utc(2026, 1, 16, 3, 0))

    r = await reports.day(DAY)

    assert (r.start, r.end) == (utc(2026, 1, 14, 17, 0), utc(2026, 1, 15, 17, 0))
    assert [(t.currency, t.payments, t.paid_count, t.paid_minor) for t in r.totals] == EXPECTED_TOTALS
    assert [(s.status, s.currency, s.count, s.amount_minor) for s in r.statuses] == EXPECTED_STATUSES
    assert [(g.key, g.currency, g.payments, g.paid_count, g.paid_minor) for g in r.terminals] == EXPECTED_TERMINALS
    assert [(g.key, g.currency, g.payments, g.paid_count, g.paid_minor) for g in r.cashiers] == EXPECTED_CASHIERS
    assert {h.hour: (h.payments, h.last_week) for h in r.hours if h.payments or h.last_week} == EXPECTED_HOURS
    assert len(r.hours) == 24
    assert r.median_seconds_to_paid == EXPECTED_MEDIAN_S
    assert (r.bakong.used, r.bakong.budget, r.bakong.by_hour[8], r.bakong.by_hour[23]) == (2, 100, 2, 0)
    assert r.open_count == 2
    # by paid_at: the 23:59:59 payment of the 14th was paid 10 s later, on the 15th
    assert r.reconciliation == {"reconciled": 0, "flagged": 0, "unchecked": 4}
    assert [(o.payment_id, o.status) for o in r.open_items] == [(ids[5], "NEEDS_REVIEW"), (ids[6], "PENDING")]


async def test_one_terminal_and_the_days_either_side(storage: Storage, reports: ReportService, clock: ManualClock) -> None:
    await seed_day(storage)
    clock.set(utc(2026, 1, 16, 3, 0))

    front = await reports.day(DAY, terminal="front")
    assert [(t.currency, t.payments, t.paid_count, t.paid_minor) for t in front.totals] == [("KHR", 1, 1, 4_000), ("USD", 1, 1, 1_250)]
    assert front.median_seconds_to_paid == 60.0  # 30 s and 90 s: the mean of the middle two
    before = await reports.day(DAY - timedelta(days=1))
    assert [(t.currency, t.payments, t.paid_minor) for t in before.totals] == [("KHR", 1, 10_000)]
    assert before.bakong.used == 1
    after = await reports.day()
    assert after.day == date(2026, 1, 16)
    assert [(t.currency, t.payments, t.paid_minor) for t in after.totals] == [("USD", 1, 999)]


async def test_an_empty_day_has_zero_hours_and_no_median(storage: Storage, reports: ReportService, clock: ManualClock) -> None:
    clock.set(utc(2026, 1, 16, 3, 0))
    r = await reports.day(DAY)
    assert r.totals == () and r.statuses == () and r.open_items == ()
    assert r.median_seconds_to_paid is None
    assert [h.payments for h in r.hours] == [0] * 24


async def test_range_groups_by_day_hour_terminal_and_cashier(storage: Storage, reports: ReportService, clock: ManualClock) -> None:
    await seed_day(storage)
    clock.set(utc(2026, 1, 16, 3, 0))

    by_day = await reports.range(date(2026, 1, 14), date(2026, 1, 16), by="day")
    assert [(g.key, g.currency, g.payments, g.paid_count, g.paid_minor) for g in by_day.rows] == [
        ("2026-01-14", "KHR", 1, 1, 10_000),
        ("2026-01-15", "KHR", 3, 2, 10_000),
        ("2026-01-15", "USD", 2, 1, 1_250),
        ("2026-01-16", "USD", 1, 1, 999),
    ]
    assert [(t.currency, t.payments, t.paid_count, t.paid_minor) for t in by_day.totals] == [("KHR", 4, 3, 20_000), ("USD", 3, 2, 2_249)]
    by_hour = await reports.range(date(2026, 1, 14), date(2026, 1, 16), by="hour")
    assert [(g.key, g.currency, g.payments) for g in by_hour.rows] == [
        ("00", "KHR", 1), ("00", "USD", 1), ("09", "KHR", 1), ("09", "USD", 1), ("10", "KHR", 1), ("23", "KHR", 1), ("23", "USD", 1),
    ]  # fmt: skip
    by_terminal = await reports.range(DAY, DAY, by="terminal")
    assert [(g.key, g.currency, g.payments, g.paid_count, g.paid_minor) for g in by_terminal.rows] == EXPECTED_TERMINALS
    by_cashier = await reports.range(DAY, DAY, by="cashier")
    assert [(g.key, g.currency, g.payments, g.paid_count, g.paid_minor) for g in by_cashier.rows] == EXPECTED_CASHIERS


async def test_last_days_with_last_week_as_ghost(storage: Storage, reports: ReportService, clock: ManualClock) -> None:
    await seed_day(storage)
    clock.set(utc(2026, 1, 16, 3, 0))
    points = await reports.last_days(30)
    assert len(points) == 30 and points[-1].day == date(2026, 1, 16) and points[0].day == date(2025, 12, 18)
    by_day = {p.day: (p.payments, p.paid_count, p.last_week_paid) for p in points if p.payments or p.last_week_paid}
    assert by_day == {
        date(2026, 1, 8): (1, 1, 0),
        date(2026, 1, 14): (1, 1, 0),
        date(2026, 1, 15): (5, 3, 1),  # the 8th's paid payment is the 15th's ghost
        date(2026, 1, 16): (1, 1, 0),
    }


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.day(date(2026, 1, 17)), "date 2026-01-17 is in the future (today is 2026-01-16 in Asia/Phnom_Penh)"),
        (lambda r: r.range(date(2025, 1, 15), date(2026, 1, 16)), "the range covers 367 days; a report covers at most 366"),
        (lambda r: r.range(date(2026, 1, 16), date(2026, 1, 15)), "to 2026-01-15 is before from 2026-01-16"),
        (lambda r: r.range(date(2026, 1, 15), date(2026, 1, 17)), "to 2026-01-17 is in the future"),
        (lambda r: r.range(date(2026, 1, 15), date(2026, 1, 16), by="week"), "cannot group by 'week'"),
        (lambda r: r.day(DAY, terminal="nowhere"), "unknown terminal 'nowhere' (known: back, front)"),
        (lambda r: r.day(DAY, terminal="bad name!"), "terminal: "),
    ],
)
async def test_bad_input_is_one_clear_error(storage: Storage, reports: ReportService, clock: ManualClock, call, message: str) -> None:
    await seed_day(storage)
    clock.set(utc(2026, 1, 16, 3, 0))
    with pytest.raises(InvalidInput) as caught:
        await call(reports)
    assert caught.value.message.startswith(message)


async def test_a_366_day_range_is_accepted(storage: Storage, reports: ReportService, clock: ManualClock) -> None:
    await seed_day(storage)
    clock.set(utc(2026, 1, 16, 3, 0))
    r = await reports.range(date(2025, 1, 16), date(2026, 1, 16))
    assert [(t.currency, t.payments) for t in r.totals] == [("KHR", 5), ("USD", 3)]
