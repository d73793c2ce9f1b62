"""The proration rule, table-driven: exact integers, rounded half up to the minor unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.services.proration import SECONDS_PER_DAY, prorate, remaining_seconds

CYCLE = 30 * SECONDS_PER_DAY  # 2,592,000 s


@pytest.mark.parametrize(
    ("case", "new", "old", "remaining", "currency", "expected"),
    [
        # first second of the period: the whole difference
        ("first day, KHR", 50_000, 20_000, CYCLE, "KHR", 30_000),
        ("first day, USD", 1_500, 500, CYCLE, "USD", 1_000),
        # one day left of 30: 30000/30 = 1000 riel exactly
        ("last day, KHR", 50_000, 20_000, SECONDS_PER_DAY, "KHR", 1_000),
        # one day left, USD: 1000/30 = 33.33 -> 33 cents
        ("last day, USD", 1_500, 500, SECONDS_PER_DAY, "USD", 33),
        # last second: 30000 * 1 / 2592000 = 0.0116 -> 0 (applies at once)
        ("last second, KHR", 50_000, 20_000, 1, "KHR", 0),
        ("period over", 50_000, 20_000, 0, "KHR", 0),
        # half-way: 15 days of 30
        ("mid-cycle, KHR", 50_000, 20_000, CYCLE // 2, "KHR", 15_000),
        ("mid-cycle, USD odd cents", 1_001, 500, CYCLE // 2, "USD", 251),  # 250.5 -> 251 (half up)
        # 10 days 7 hours left: 30000 * 889200 / 2592000 = 10291.666.. -> 10292
        ("mid-cycle, to the second", 50_000, 20_000, 10 * SECONDS_PER_DAY + 7 * 3600, "KHR", 10_292),
        ("equal price", 20_000, 20_000, CYCLE // 3, "KHR", 0),
        ("equal price, USD", 999, 999, 12_345, "USD", 0),
        # rounding edges: exactly .5 rounds up, just below .5 rounds down, just above rounds up
        ("exactly half a riel", 1, 0, CYCLE // 2, "KHR", 1),  # 0.5 -> 1
        ("just below half", 1, 0, CYCLE // 2 - 1, "KHR", 0),  # 0.4999996 -> 0
        ("just above half", 1, 0, CYCLE // 2 + 1, "KHR", 1),
        ("exactly half a cent", 3, 0, CYCLE // 6, "USD", 1),  # 3 * 1/6 = 0.5 -> 1
        ("one and a half", 3, 0, CYCLE // 2, "USD", 2),  # 1.5 -> 2
        ("two and a half", 5, 0, CYCLE // 2, "KHR", 3),  # 2.5 -> 3 (half up, not half even)
        # big KHR amounts stay exact (no float): 9,999,999,999 riel over one second less than a cycle
        ("large KHR", 10_000_000_000, 1, CYCLE - 1, "KHR", 9_999_996_141),
    ],
)
def test_prorate(case: str, new: int, old: int, remaining: int, currency: str, expected: int) -> None:
    assert prorate(new, old, remaining, CYCLE, currency) == expected, case


def test_large_amount_is_exact() -> None:
    # (10^10 - 1) * 2591999 / 2592000 = 9999996141.2..., checked with integers
    diff = 10_000_000_000 - 1
    exact_floor, rem = divmod(diff * (CYCLE - 1), CYCLE)
    assert prorate(10_000_000_000, 1, CYCLE - 1, CYCLE, "KHR") == exact_floor + (1 if 2 * rem >= CYCLE else 0)


@pytest.mark.parametrize(
    ("new", "old", "remaining", "cycle", "message"),
    [
        (100, 200, 10, CYCLE, "downgrade"),
        (100, 50, CYCLE + 1, CYCLE, "exceed"),
        (100, 50, -1, CYCLE, "non-negative"),
        (100, 50, 10, 0, "positive"),
        (100.0, 50, 10, CYCLE, "non-negative integer"),
    ],
)
def test_prorate_refuses_nonsense(new: object, old: int, remaining: int, cycle: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prorate(new, old, remaining, cycle, "KHR")  # type: ignore[arg-type]


def test_prorate_checks_the_currency() -> None:
    from engine.errors import InvalidInput

    with pytest.raises(InvalidInput):
        prorate(2, 1, 1, CYCLE, "EUR")


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(days=30), CYCLE),
        (timedelta(days=31), CYCLE),  # clamped to the cycle
        (timedelta(days=10, seconds=5, microseconds=999_999), 10 * SECONDS_PER_DAY + 5),  # a begun second is used
        (timedelta(microseconds=1), 0),
        (timedelta(0), 0),
        (-timedelta(hours=1), 0),
    ],
)
def test_remaining_seconds(left: timedelta, expected: int) -> None:
    now = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
    assert remaining_seconds(now, now + left, CYCLE) == expected
