"""The check schedule under a scarce budget: the forecast behind the allowance and how the few
affordable checks of a payment are placed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.config import PaymentSettings
from engine.services.schedule import Allowance, CheckSchedule

T0 = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)


def _allowance(*, remaining: int = 97, recent_rate_per_second: float = 0.0, yesterday_rest: int = 0) -> Allowance:
    return Allowance.compute(
        remaining=remaining, reserve=0, pending=0, recent_rate_per_second=recent_rate_per_second,
        seconds_to_reset=16 * 3600, batch_size=1, nominal_checks=90.0, yesterday_rest=yesterday_rest,
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


def _checks(schedule: CheckSchedule, created: datetime, allowance: Allowance) -> list[float]:
    expires = created + timedelta(minutes=15)
    at = schedule.first_check_at(created, expires, allowance)
    seen = []
    while at is not None and len(seen) < 50:
        seen.append((at - created).total_seconds())
        at = schedule._scarce_next(created, expires, at, allowance)
    return seen


def test_scarce_checks_are_spread_over_the_window_and_capped_without_history() -> None:
    schedule = CheckSchedule(PaymentSettings())
    informed = _allowance(yesterday_rest=60)  # k = 1.62: 2k - 1 = 2.23 checks per payment
    guessed = Allowance(informed.per_payment, informed.remaining_requests, informed.expected_payments, from_history=False)
    counts = []
    for micro in range(0, 1_000_000, 10_000):
        created = T0.replace(microsecond=micro)
        checks = _checks(schedule, created, informed)
        assert checks in ([60.0, 120.0], [40.0, 80.0, 120.0])
        counts.append(len(checks))
        assert _checks(schedule, created, guessed) == checks  # the same rounding without history
    share_of_three = counts.count(3) / len(counts)
    assert 0.18 <= share_of_three <= 0.28  # the fraction 0.23 of 2.23
    # a generous guess without history is capped at three checks; with history it is not
    rich = _allowance(remaining=97, yesterday_rest=10)  # k = 9.7
    rich_guess = Allowance(rich.per_payment, rich.remaining_requests, rich.expected_payments, from_history=False)
    assert _checks(schedule, T0, rich_guess) == [40.0, 80.0, 120.0, 900.0]  # and the one at expiry
    assert len(_checks(schedule, T0, rich)) >= 18
    # less than one check affordable still buys the one at the end of the window
    assert _checks(schedule, T0, _allowance(remaining=10, yesterday_rest=60)) == [120.0]
