"""The check schedule under a scarce budget: the forecast behind the allowance and how the few
affordable checks of a payment are placed."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from engine.config import PaymentSettings
from engine.services.schedule import PAYER_LEAD_SECONDS, Allowance, CheckSchedule, DayForecast

T0 = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
WINDOW = PaymentSettings().scarce_window_seconds


def _allowance(
    *,
    remaining: int = 97,
    recent_rate_per_second: float = 0.0,
    yesterday_rest: int = 0,
    yesterday_total: int | None = None,
    active_seconds: float | None = None,
    floor_cost: float = 1.0,
    checks_per_request: float = 1.0,
) -> Allowance:
    return Allowance.compute(
        remaining=remaining, reserve=0, pending=0, recent_rate_per_second=recent_rate_per_second,
        seconds_to_reset=16 * 3600, nominal_checks=90.0, yesterday_rest=yesterday_rest,
        yesterday_total=yesterday_rest if yesterday_total is None else yesterday_total,
        active_seconds=active_seconds, floor_cost=floor_cost, checks_per_request=checks_per_request,
    )  # fmt: skip


def test_yesterday_outweighs_a_thin_morning_forecast() -> None:
    # one payment in the last two hours forecasts 8 more today; yesterday had 60 after this hour
    thin = _allowance(recent_rate_per_second=1 / 7200)
    informed = _allowance(recent_rate_per_second=1 / 7200, yesterday_rest=60)
    assert thin.per_payment is not None and informed.per_payment is not None
    assert round(thin.per_payment, 2) == round(97 / 8, 2) and not thin.from_history
    assert round(informed.per_payment, 2) == round(97 / 60, 2) and informed.from_history
    # a busier today than yesterday still wins
    busy = _allowance(recent_rate_per_second=20 / 3600, yesterday_rest=60)
    assert round(busy.per_payment or 0, 3) == round(97 / (20 * 16), 3)


def test_the_recent_rate_counts_over_yesterdays_busy_hours_and_the_surplus_over_the_likely_day() -> None:
    rate = 6 / 3600
    # evening: yesterday was busy for one more hour and had 5 payments in it
    evening = _allowance(remaining=30, recent_rate_per_second=rate, yesterday_rest=5, yesterday_total=60, active_seconds=3600, floor_cost=1.1)
    # cautious: 6 in the hour; each gets the floor (1.1) first, the rest goes to yesterday's 5
    assert evening.per_payment == pytest.approx(1.1 + (30 - 1.1 * 6) / 5)
    # past yesterday's busy hours the rate still counts for an hour ahead
    late = _allowance(remaining=30, recent_rate_per_second=rate, yesterday_rest=0, yesterday_total=60, active_seconds=0, floor_cost=1.1)
    assert late.per_payment == pytest.approx(30 / 6)
    # without history the rate runs to the reset, and no surplus is assumed
    first_day = _allowance(remaining=30, recent_rate_per_second=rate, floor_cost=1.1, active_seconds=3600)
    assert first_day.per_payment == pytest.approx(30 / (6 * 16)) and not first_day.from_history
    # the floor for the cautious forecast not affordable: split evenly over the cautious forecast
    tight = _allowance(remaining=30, recent_rate_per_second=30 / 3600, yesterday_rest=5, yesterday_total=60, active_seconds=3600, floor_cost=1.1)
    assert tight.per_payment == pytest.approx(30 / 30)
    # one request checks one payment unless the poller has seen requests check more
    assert _allowance(yesterday_rest=60, checks_per_request=4).per_payment == pytest.approx(4 * 97 / 60)


def test_the_floor_for_the_cautious_forecast_is_never_spent_while_the_day_stays_within_it() -> None:
    """Payments arrive as the cautious forecast said (more than the likely one): each spends its
    allowance (at least the floor), and the budget still covers every one of them."""
    floor = 1.1
    for likely_share in (0.3, 0.6, 0.9):
        remaining, left = 97.0, 60
        while left:
            a = _allowance(remaining=int(remaining), yesterday_rest=round(left * likely_share), yesterday_total=60,
                           recent_rate_per_second=left / (16 * 3600), floor_cost=floor)  # fmt: skip
            spend = max(floor, a.per_payment or 0.0)
            remaining -= spend
            left -= 1
            assert remaining >= -1e-9, f"ran dry with {left} payments to go (likely share {likely_share})"


def _checks(schedule: CheckSchedule, created: datetime, allowance: Allowance | list[Allowance]) -> list[float]:
    """The check offsets of a payment that is never paid (the allowance may change at each check)."""
    seq = allowance if isinstance(allowance, list) else [allowance]
    expires = created + timedelta(minutes=15)
    at = schedule.first_check_at(created, expires, seq[0])
    seen = []
    while at is not None and len(seen) < 50:
        seen.append(round((at - created).total_seconds(), 3))
        at = schedule._scarce_next(created, expires, at, seq[min(len(seen), len(seq) - 1)])
    return seen


def _expected_cost(offsets: list[float], paid_share: float, late_look: bool = True) -> float:
    """Requests a payment costs on average: payers uniform over [lead, last in-window check]."""
    in_window = [o for o in offsets if o <= WINDOW]
    span = WINDOW - PAYER_LEAD_SECONDS
    paid = sum(1 - (max(PAYER_LEAD_SECONDS, prev) - PAYER_LEAD_SECONDS) / span for prev in [0.0, *in_window[:-1]])
    return paid_share * paid + (1 - paid_share) * (len(offsets) + (1 if late_look else 0))


def test_the_affordable_checks_cost_what_the_allowance_allows_and_buy_the_most() -> None:
    schedule = CheckSchedule(PaymentSettings())
    informed = _allowance(yesterday_rest=60)  # 1.62 requests per payment
    plans = [_checks(schedule, T0.replace(microsecond=m), informed) for m in range(0, 1_000_000, 5_000)]
    # on average a payment costs what it was allowed
    mean_cost = sum(_expected_cost(p, informed.paid_share) for p in plans) / len(plans)
    assert mean_cost == pytest.approx(informed.per_payment, abs=0.03)
    for plan in plans:
        assert plan[-1] == WINDOW and plan[0] > PAYER_LEAD_SECONDS  # every payer of the window is found
        gaps = [b - a for a, b in zip([PAYER_LEAD_SECONDS, *plan], plan, strict=False)]
        assert all(g1 >= g2 - 1e-6 for g1, g2 in zip(gaps, gaps[1:], strict=False))  # first gaps longest
    assert {len(p) for p in plans} == {2, 3}
    # a later first check finds more payers at once: cheaper than the same number spread evenly
    for plan in plans:
        even = [PAYER_LEAD_SECONDS + (WINDOW - PAYER_LEAD_SECONDS) * (i + 1) / len(plan) for i in range(len(plan))]
        assert _expected_cost(plan, 1.0) <= _expected_cost(even, 1.0) + 1e-9
    # the budget per payment buys more checks as it grows
    rich = _allowance(remaining=97, yesterday_rest=25)
    assert len(_checks(schedule, T0, rich)) > max(len(p) for p in plans)
    # less than the cheapest plan still buys the one at the end of the window
    assert _checks(schedule, T0, _allowance(remaining=10, yesterday_rest=60)) == [WINDOW]


def test_a_plan_that_changes_between_checks_never_bunches_them() -> None:
    schedule = CheckSchedule(PaymentSettings())
    rng = random.Random(4)
    for _ in range(200):
        seq = [_allowance(remaining=rng.randrange(30, 98), yesterday_rest=rng.randrange(10, 60)) for _ in range(30)]
        checks = _checks(schedule, T0.replace(microsecond=rng.randrange(1_000_000)), seq)
        assert checks[-1] in (WINDOW, 900.0)
        in_window = [c for c in checks if c <= WINDOW]
        assert all(b - a >= PaymentSettings().dense_interval_seconds - 1e-6 for a, b in zip(in_window, in_window[1:], strict=False))


def test_without_history_a_generous_guess_is_capped_at_three_checks() -> None:
    schedule = CheckSchedule(PaymentSettings())
    rich = _allowance(remaining=97, yesterday_rest=10)  # 9.7 requests per payment
    rich_guess = Allowance(rich.per_payment, rich.remaining_requests, rich.expected_payments, from_history=False)
    assert _checks(schedule, T0, rich_guess) == [46.667, 83.333, WINDOW, 900.0]  # and the one at expiry
    assert len(_checks(schedule, T0, rich)) >= 10


HOUR = 3600.0
#: 08:00-20:00 and the 15-minute closing margin.
OPEN_DAY = 12.25 * HOUR


def _forecast(
    *, arrivals: int, elapsed_hours: float, recent: int | None = None, yesterday_total: int = 0, estimate: int = 0
) -> DayForecast | None:
    """The forecast ``elapsed_hours`` into an 08:00-20:00 day (the last two hours held ``recent``
    payments; by default the day's pace), after a day of ``yesterday_total`` payments, with the
    shop's ``estimate`` of a normal day's."""
    elapsed = elapsed_hours * HOUR
    recent_open = max(1800.0, min(2 * HOUR, elapsed))
    if recent is None:
        recent = round(arrivals * recent_open / elapsed) if elapsed else 0
    return DayForecast.estimate(
        arrivals=arrivals, open_elapsed=elapsed, open_left=OPEN_DAY - elapsed, recent_arrivals=recent,
        recent_open=recent_open, history_total=yesterday_total, history_open=OPEN_DAY if yesterday_total else 0.0,
        expected_per_day=estimate, normal_open=OPEN_DAY,
    )  # fmt: skip


def _within_hours(forecast: DayForecast | None, *, remaining: int = 97, pending: int = 1, floor_cost: float = 1.1) -> Allowance:
    return Allowance.within_hours(
        remaining=remaining, reserve=0, pending=pending, forecast=forecast, nominal_checks=90.0, floor_cost=floor_cost
    )


def test_a_noisy_early_burst_does_not_set_the_days_pace() -> None:
    # first day, 08:26: eight payments in 26 minutes (a pace of 220 a day, or a lucky start)
    burst = _forecast(arrivals=8, elapsed_hours=26 / 60, recent=8)
    assert burst is not None and not burst.firm
    # so few payments say little: the cheapest plan is kept for a day far busier than the pace...
    assert burst.cautious > 97 / 1.1
    allowance = _within_hours(burst, pending=2)
    assert allowance.per_payment is not None and allowance.per_payment <= 1.1
    assert CheckSchedule(PaymentSettings()).scarce_plan(allowance).offsets(0.5) == [WINDOW]
    # ...and at 14:00, with 30 payments in six hours, the whole morning sets the rate, not its first minutes
    midday = _forecast(arrivals=30, elapsed_hours=6)
    assert midday is not None and midday.firm
    assert midday.expected == pytest.approx(30.5 / 6 * 6.25)
    assert midday.cautious < 97 / 1.1  # a rate resting on 30 payments leaves something to spend
    generous = _within_hours(midday)
    assert generous.per_payment is not None and generous.per_payment > 1.1


def test_before_any_rate_is_known_each_payment_gets_the_cheapest_plan() -> None:
    assert _forecast(arrivals=0, elapsed_hours=0) is None  # opening time of the first day
    allowance = _within_hours(None, pending=1)
    assert allowance.per_payment == pytest.approx(1.1) and not allowance.from_history
    # a budget that cannot pay the cheapest plan of the pending and one more is split evenly
    assert _within_hours(None, remaining=3, pending=5).per_payment == pytest.approx(3 / 6)


def test_the_cushion_is_counted_once() -> None:
    forecast = _forecast(arrivals=20, elapsed_hours=4)
    assert forecast is not None
    allowance = _within_hours(forecast, remaining=80, pending=2)
    # the cheapest plan is kept for the cautious count; the rest is spread over the expected one
    likely, cautious = 2 + forecast.expected, 2 + forecast.cautious
    assert cautious > likely
    assert allowance.per_payment == pytest.approx(1.1 + (80 - 1.1 * cautious) / likely)
    assert allowance.expected_payments == pytest.approx(likely)


def test_with_yesterday_the_day_brings_yesterdays_total() -> None:
    # 14:00, 35 payments so far; yesterday had 60: 25 more are expected, whatever the pace said
    forecast = _forecast(arrivals=35, elapsed_hours=6, yesterday_total=60)
    assert forecast is not None and forecast.firm
    assert forecast.expected == pytest.approx(25)
    assert forecast.cautious >= 25
    # yesterday's total is a prior that today's payments outweigh as they come: a busier day
    # than yesterday (70 by 16:00) still expects the day's rate, half of it at least
    busy = _forecast(arrivals=70, elapsed_hours=8, yesterday_total=60)
    assert busy is not None
    rate = (60 + 70) / (OPEN_DAY + 8 * HOUR) * (OPEN_DAY - 8 * HOUR)
    assert busy.expected == pytest.approx(rate / 2)
    assert busy.cautious > rate
    # the first payment of the day is already planned from yesterday, without a cap
    opening = _forecast(arrivals=0, elapsed_hours=0, yesterday_total=60)
    assert opening is not None and opening.firm and opening.expected == pytest.approx(60)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    ("yesterday_total", "estimate", "total"),
    [(0, 0, 60), (0, 0, 75), (60, 0, 60), (60, 0, 75), (0, 60, 60), (0, 30, 60), (0, 40, 60), (0, 120, 60), (0, 60, 75)],
)
def test_the_budget_covers_every_payment_of_the_day(seed: int, yesterday_total: int, estimate: int, total: int) -> None:
    """Payments at random over the day, each spending its allowance when it comes (the cheapest
    plan at least), on a first day (with no estimate, the right one, half or twice the day's
    volume) and after a day of 60 (the same, and a quarter busier): 100 requests, 3 of them the
    reserve, cover every one of them."""
    rng = random.Random(seed)
    arrivals = sorted(rng.uniform(0, 12 * HOUR) for _ in range(total))
    remaining = 100.0
    for n, at in enumerate(arrivals):
        recent = sum(1 for a in arrivals[:n] if a > at - 2 * HOUR)
        forecast = DayForecast.estimate(
            arrivals=n, open_elapsed=at, open_left=OPEN_DAY - at, recent_arrivals=recent,
            recent_open=max(1800.0, min(2 * HOUR, at)), history_total=yesterday_total,
            history_open=OPEN_DAY if yesterday_total else 0.0, expected_per_day=estimate, normal_open=OPEN_DAY,
        )  # fmt: skip
        allowance = Allowance.within_hours(
            remaining=math.floor(remaining), reserve=3, pending=1, forecast=forecast, nominal_checks=90.0, floor_cost=1.1
        )
        remaining -= max(1.1, allowance.per_payment or 0.0)
        assert remaining >= 0, f"ran dry with {total - n - 1} payments to go"


def test_the_shops_estimate_plans_the_first_day_from_its_opening() -> None:
    # 08:00 of the first day, an estimate of 60 a day: a forecast before any payment, and the
    # first payment is given more than the cheapest plan (without the estimate it gets just that)
    opening = _forecast(arrivals=0, elapsed_hours=0, estimate=60)
    assert opening is not None and opening.estimated and opening.expected == pytest.approx(60)
    assert 60 < opening.cautious < 97 / 1.1
    first = _within_hours(opening)
    assert first.per_payment is not None and first.per_payment > 1.3
    assert _within_hours(_forecast(arrivals=0, elapsed_hours=0)).per_payment == pytest.approx(1.1)
    # the estimate weighs as a few payments: by 14:00, 36 payments (a busier day than it said,
    # still in keeping with it) move the rate most of the way to the day's own
    midday = _forecast(arrivals=36, elapsed_hours=6, estimate=60)
    assert midday is not None and midday.firm and midday.estimated
    own = 36 / 6 * 6.25
    assert own * 0.9 < midday.expected < own
    # an estimate the day's payments overrule is dropped: the day is forecast as without one
    for estimate, arrivals in ((30, 40), (120, 10)):  # half, and twice, the day's volume by 14:00
        overruled = _forecast(arrivals=arrivals, elapsed_hours=6, estimate=estimate)
        assert overruled == _forecast(arrivals=arrivals, elapsed_hours=6)
    # the last two hours count too: a quiet morning, then 15 payments since 12:00, overrule 30 a day
    afternoon = _forecast(arrivals=20, elapsed_hours=6, recent=15, estimate=30)
    assert afternoon == _forecast(arrivals=20, elapsed_hours=6, recent=15)
    # with a last open day to go by, the estimate is not used
    assert _forecast(arrivals=10, elapsed_hours=3, yesterday_total=60, estimate=120) == _forecast(
        arrivals=10, elapsed_hours=3, yesterday_total=60
    )


def test_while_the_estimate_holds_the_last_hours_guard_once_they_are_a_part_of_the_day() -> None:
    # 09:30 of the first day, 12 payments (a lively start, still in keeping with 60 a day): the
    # last two hours are the whole day so far, which the estimate already weighs, so they do
    # not hold the cautious count at their own pace (90 more by closing)
    early = _forecast(arrivals=12, elapsed_hours=1.5, estimate=60)
    assert early is not None and early.estimated
    payments, exposure, ahead = 15 + 12, 15 / 60 * OPEN_DAY + 1.5 * HOUR, OPEN_DAY - 1.5 * HOUR
    rate = payments / exposure * ahead
    assert early.cautious == pytest.approx(rate + 0.5 * math.sqrt(rate + rate * rate / payments))
    own_pace = 12.5 / (1.5 * HOUR) * ahead
    assert early.cautious < own_pace
    # without the estimate the same morning is forecast from those hours, cautiously
    alone = _forecast(arrivals=12, elapsed_hours=1.5)
    assert alone is not None and alone.cautious > own_pace
    # by 12:00 the last two hours are a part of the day: a busy late morning (12 of its 20) guards
    later = _forecast(arrivals=20, elapsed_hours=4, recent=12, estimate=60)
    assert later is not None and later.estimated
    recent_pace = 12.5 / (2 * HOUR) * (OPEN_DAY - 4 * HOUR)
    assert later.cautious > recent_pace


def test_while_the_estimate_holds_the_cheapest_plan_is_kept_for_its_own_pace() -> None:
    # 10:00 of the first day, 4 payments (a slow start, still in keeping with 60 a day): the
    # rate says fewer than the estimate, but the day may still bring its pace over the hours left
    quiet = _forecast(arrivals=4, elapsed_hours=2, estimate=60)
    assert quiet is not None and quiet.estimated
    estimate_pace = 60 / OPEN_DAY * (OPEN_DAY - 2 * HOUR)
    assert quiet.expected < estimate_pace
    assert quiet.cautious == pytest.approx(estimate_pace)
    # once the day overrules the estimate (2 payments by 12:00), it is forecast from its own payments
    assert _forecast(arrivals=2, elapsed_hours=4, estimate=60) == _forecast(arrivals=2, elapsed_hours=4)


def test_a_closed_shop_keeps_one_late_payment_in_hand() -> None:
    # after closing (or on a closed day): no open time left to carry the rate over, one late payment expected
    closed = _forecast(arrivals=40, elapsed_hours=12.25)
    assert closed is not None and closed.expected == 0
    after = _within_hours(closed, remaining=20, pending=2)
    assert after.expected_payments == 3 and after.per_payment == pytest.approx(20 / 3)
    # nothing pending: still a plan for the late one, not "ample"
    idle = _within_hours(closed, remaining=20, pending=0)
    assert idle.expected_payments == 1 and idle.per_payment == pytest.approx(20.0)
    # without hours nothing pending and nothing expected is ample, as before
    assert Allowance.compute(remaining=20, reserve=0, pending=0, recent_rate_per_second=0.0, seconds_to_reset=3 * HOUR, nominal_checks=90.0).ample


def test_without_hours_the_rate_runs_over_yesterdays_busy_hours_as_before() -> None:
    kwargs = {"remaining": 60, "reserve": 3, "pending": 4, "recent_rate_per_second": 7 / 3600, "seconds_to_reset": 9 * 3600,
              "nominal_checks": 80.0, "yesterday_rest": 30, "yesterday_total": 60, "active_seconds": 5 * 3600.0, "floor_cost": 1.1}  # fmt: skip
    assert Allowance.compute(**kwargs).expected_payments == pytest.approx(4 + 35)
