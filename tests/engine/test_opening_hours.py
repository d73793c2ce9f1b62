"""Declared opening hours in the poller's budget forecast: the horizon at closing time, a closed
day, and payments made outside the hours (the forecast runs to midnight again, one alert a day).
On SQLite and PostgreSQL, the poller through the built-in sandbox."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from engine import events as ev
from engine.clock import PHNOM_PENH, ManualClock, local_midnight_after
from engine.config import Settings
from engine.db import journal
from engine.records import Actor, ActorType, Event
from engine.runtime import Engine
from engine.services.opening_hours import CLOSING_MARGIN, MIN_DEMAND_SECONDS, OpeningHoursForecast
from engine.services.schedule import RATE_PRIOR
from tests.support.engine import open_engine, run_for
from tests.support.settings import make_settings

CASHIER = Actor(ActorType.CASHIER, "dara")
WINDOW = timedelta(hours=2)
#: Thursday open in the morning, Friday closed, the other days not declared.
HOURS = {"thu": "08:00-12:00", "fri": "closed"}


def pp(day: int, hour: int, minute: int = 0) -> datetime:
    """Phnom Penh time in January 2026 (the 15th is a Thursday), as UTC."""
    return datetime(2026, 1, day, hour, minute, tzinfo=PHNOM_PENH).astimezone(UTC)


async def _alerts(engine: Engine) -> list[Event]:
    async with engine.storage.read() as tx:
        return [e for e in await journal.events_since(tx, 0, limit=10_000) if e.type == ev.ALERT_OPENING_HOURS_MISMATCH]


def _forecast(engine: Engine) -> OpeningHoursForecast:
    return OpeningHoursForecast(engine.storage, engine.settings.hours.opening_hours())


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    return make_settings(db_url, bakong={"max_retries": 0}, hours=HOURS)


async def test_the_horizon_is_closing_time_and_a_closed_day_has_none(db_url: str, clock: ManualClock) -> None:
    async with open_engine(make_settings(db_url, hours=HOURS), clock, run_workers=False) as engine:
        forecast = _forecast(engine)
        now = clock.now()  # Thursday 10:00, open since 08:00
        assert now == pp(15, 10)
        today = await forecast.today(now, local_midnight_after(now), WINDOW)
        assert today.seconds_to_close == (timedelta(hours=2) + CLOSING_MARGIN).total_seconds()
        assert today.demand_seconds == 2 * 3600  # the window's two hours were open
        assert today.open_elapsed == 2 * 3600
        # Wednesday says nothing: taken to have been open as long as today
        assert today.history_day == date(2026, 1, 14)
        assert today.history_open == today.open_elapsed + today.seconds_to_close
        # the estimate of a normal day is spread over Thursday's open time, the one declared
        assert today.normal_open == (timedelta(hours=4) + CLOSING_MARGIN).total_seconds()
        # at 08:10 the rate is measured over the floor, not ten minutes
        early = await forecast.today(pp(15, 8, 10), local_midnight_after(pp(15, 8, 10)), WINDOW)
        assert early.demand_seconds == MIN_DEMAND_SECONDS
        assert early.seconds_to_close == (timedelta(hours=3, minutes=50) + CLOSING_MARGIN).total_seconds()
        # Friday is closed: nothing to carry the rate over
        clock.set(pp(16, 9))
        friday = await forecast.today(clock.now(), local_midnight_after(clock.now()), WINDOW)
        assert friday.seconds_to_close == 0.0
        # yesterday's total came in Thursday's open time
        assert friday.history_day == date(2026, 1, 15)
        assert friday.history_open == (timedelta(hours=4) + CLOSING_MARGIN).total_seconds()
        # Saturday says nothing: the forecast runs to midnight as without hours
        saturday = await forecast.today(pp(17, 9), local_midnight_after(pp(17, 9)), WINDOW)
        assert saturday.seconds_to_close is None and saturday.demand_seconds is None
        assert await _alerts(engine) == []


#: Open Monday to Saturday (Saturday mornings only), closed on Sunday.
WEEK = {**{day: "08:00-20:00" for day in ("mon", "tue", "wed", "thu", "fri")}, "sat": "08:00-12:00", "sun": "closed"}


async def test_after_a_closed_day_the_forecast_looks_back_to_the_last_open_day(db_url: str, clock: ManualClock) -> None:
    async with open_engine(make_settings(db_url, hours=WEEK), clock, run_workers=False) as engine:
        forecast = _forecast(engine)
        monday = await forecast.today(pp(19, 10), local_midnight_after(pp(19, 10)), WINDOW)
        # Sunday was closed: Saturday's payments, in Saturday's four open hours
        assert monday.history_day == date(2026, 1, 17)
        assert monday.history_open == (timedelta(hours=4) + CLOSING_MARGIN).total_seconds()
        # a normal open day is the median of the week's: twelve hours
        assert monday.normal_open == (timedelta(hours=12) + CLOSING_MARGIN).total_seconds()
        tuesday = await forecast.today(pp(20, 10), local_midnight_after(pp(20, 10)), WINDOW)
        assert tuesday.history_day == date(2026, 1, 19)
        # closed every day but Thursday: the Thursday before
        only_thursday = make_settings(db_url, hours={**dict.fromkeys(WEEK, "closed"), "thu": "08:00-12:00"}).hours
        weekly = OpeningHoursForecast(engine.storage, only_thursday.opening_hours())
        assert (await weekly.today(pp(15, 10), local_midnight_after(pp(15, 10)), WINDOW)).history_day == date(2026, 1, 8)


async def test_monday_after_a_closed_sunday_expects_saturdays_payments(db_url: str, clock: ManualClock) -> None:
    """The poller's forecast on Monday rests on Saturday's total, not on Sunday's nothing."""
    hours = {**dict.fromkeys(WEEK, "08:00-20:00"), "sun": "closed"}
    settings = make_settings(db_url, bakong={"max_retries": 0, "daily_budget": 100}, hours=hours)
    async with open_engine(settings, clock) as engine:
        clock.set(pp(17, 9))
        for n in range(24):
            await engine.payments.initiate(f"{n + 1}.00", "USD", actor=CASHIER)
        await run_for(engine, clock, 2 * 3600, step=60)  # each one checked, and timed out or watched to the end
        clock.set(pp(19, 9))
        await engine.payments.initiate("1.00", "USD", actor=CASHIER)
        await run_for(engine, clock, 5)
        allowance = engine.poller_state.allowance
        # the day is expected to bring Saturday's total: 23 more, and the one pending (from
        # Sunday's nothing it would be the one payment's pace: 1.5 an hour over 11.25 hours)
        assert allowance is not None
        assert allowance.expected_payments == pytest.approx(1 + 23)


async def test_a_payment_on_a_closed_day_drops_the_hours_for_the_day_with_one_alert(db_url: str, clock: ManualClock) -> None:
    async with open_engine(make_settings(db_url, hours=HOURS), clock, run_workers=False) as engine:
        clock.set(pp(16, 9))
        reset = local_midnight_after(clock.now())
        # a subscription's invoice is issued by the engine at any hour: not the shop's doing
        await engine.payments.initiate("5.00", "USD", actor=CASHIER, subscription_id="sub_night", invoice_id="inv_night")
        assert (await _forecast(engine).today(clock.now(), reset, WINDOW)).seconds_to_close == 0.0
        await engine.payments.initiate("1.00", "USD", actor=CASHIER)
        forecast = _forecast(engine)
        assert (await forecast.today(clock.now(), reset, WINDOW)).seconds_to_close is None
        await engine.payments.initiate("2.00", "USD", actor=CASHIER)
        assert (await forecast.today(clock.now(), reset, WINDOW)).seconds_to_close is None
        # a restarted poller sees the same, and does not raise the alert again
        assert (await _forecast(engine).today(clock.now(), reset, WINDOW)).seconds_to_close is None
        alerts = await _alerts(engine)
        assert len(alerts) == 1
        assert alerts[0].payload["day"] == "2026-01-16" and alerts[0].payload["outside"] == 1
        assert "outside the declared opening hours (fri: closed)" in alerts[0].payload["message"]


async def test_without_hours_the_poller_forecasts_to_midnight_as_before(db_url: str, clock: ManualClock) -> None:
    async with open_engine(make_settings(db_url, bakong={"max_retries": 0}), clock) as engine:
        for n in (1, 2):
            await engine.payments.initiate(f"{n}.00", "USD", actor=CASHIER, timeout_minutes=60)
        await run_for(engine, clock, 5)
        allowance = engine.poller_state.allowance
        assert allowance is not None
        # two payments in the last two hours, carried to midnight (14 h away), and the two pending
        assert allowance.expected_payments == pytest.approx(2 + 2 / 7200 * (14 * 3600 - 5), abs=0.01)
        assert await _alerts(engine) == []


async def test_the_poller_plans_to_closing_time_and_to_midnight_once_a_payment_comes_outside_hours(
    engine: Engine, clock: ManualClock
) -> None:
    made = [(await engine.payments.initiate(f"{n}.00", "USD", actor=CASHIER, timeout_minutes=60)).payment for n in (1, 2)]
    await run_for(engine, clock, 10)
    allowance, at = engine.poller_state.allowance, engine.poller_state.last_pass_at
    assert allowance is not None and at is not None
    # the first day: two payments (and the rate's prior) over today's open time since 08:00, carried
    # to 12:00 and the margin, and the two pending
    coming = (2 + RATE_PRIOR) / (at - pp(15, 8)).total_seconds() * (pp(15, 12) + CLOSING_MARGIN - at).total_seconds()
    assert allowance.expected_payments == pytest.approx(2 + coming, abs=0.01)
    assert not allowance.from_history, "two payments are a guess: each payment's checks stay capped"
    for payment in made:
        assert (await engine.payments.get(payment.id)).check_count >= 1

    # 12:30: past the closing time and its margin; the shop takes a payment anyway
    await run_for(engine, clock, 2.5 * 3600 - 10, step=300)
    assert clock.now() == pp(15, 12, 30)
    late = (await engine.payments.initiate("3.00", "USD", actor=CASHIER)).payment
    await run_for(engine, clock, 10)
    allowance, at = engine.poller_state.allowance, engine.poller_state.last_pass_at
    assert allowance is not None and at is not None
    # the forecast runs to midnight again, with the one payment of the last two hours
    assert allowance.expected_payments == pytest.approx(1 + 1 / 7200 * (pp(16, 0) - at).total_seconds(), abs=0.01)
    assert (await engine.payments.get(late.id)).check_count >= 1, "a payment outside the hours is still checked"
    await engine.payments.initiate("4.00", "USD", actor=CASHIER)
    await run_for(engine, clock, 60, step=5)
    alerts = await _alerts(engine)
    assert len(alerts) == 1, "one alert for the day, however many payments come outside the hours"
    assert Counter(a.payload["day"] for a in alerts) == Counter({"2026-01-15": 1})
