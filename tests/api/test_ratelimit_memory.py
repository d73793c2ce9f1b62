"""The sliding-window arithmetic and IP blocks of the in-process limiter, on the manual clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bakong_console.api.ratelimit import MemoryLimiter
from engine.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 15, 3, 0, tzinfo=UTC))  # a whole minute: windows start here


@pytest.fixture
def limiter(clock: ManualClock) -> MemoryLimiter:
    return MemoryLimiter(clock, failures_before_block=3, block_seconds=300)


async def test_limit_then_refuse_with_the_exact_wait(limiter: MemoryLimiter, clock: ManualClock) -> None:
    decisions = [await limiter.hit("k", limit=10) for _ in range(10)]
    assert all(d.allowed for d in decisions) and [d.remaining for d in decisions] == list(range(9, -1, -1))
    refused = await limiter.hit("k", limit=10)
    assert not refused.allowed
    # Full current window: wait for the next window, then until 1/10 of this one has decayed.
    assert refused.retry_after == pytest.approx(60 + 6)
    clock.advance(refused.retry_after - 0.5)
    assert not (await limiter.hit("k", limit=10)).allowed
    clock.advance(0.5)
    assert (await limiter.hit("k", limit=10)).allowed
    assert not (await limiter.hit("k", limit=10)).allowed


async def test_no_double_burst_across_a_window_boundary(limiter: MemoryLimiter, clock: ManualClock) -> None:
    clock.advance(59)
    assert all([(await limiter.hit("k", limit=10)).allowed for _ in range(10)])
    clock.advance(1)  # a fresh fixed window would allow 10 more here
    refused = await limiter.hit("k", limit=10)
    assert not refused.allowed and refused.retry_after == pytest.approx(6)
    clock.advance(30)  # half the previous window still counts: 5 + 0 used of 10
    assert [(await limiter.hit("k", limit=10)).allowed for _ in range(6)] == [True] * 5 + [False]


async def test_refused_requests_are_not_counted_and_keys_are_independent(limiter: MemoryLimiter, clock: ManualClock) -> None:
    for _ in range(2):
        await limiter.hit("a", limit=2)
    for _ in range(5):
        assert not (await limiter.hit("a", limit=2)).allowed
    assert (await limiter.hit("b", limit=2)).allowed
    clock.advance(120)
    assert (await limiter.hit("a", limit=2)).remaining == 1


async def test_failures_block_then_expire(limiter: MemoryLimiter, clock: ManualClock) -> None:
    assert await limiter.auth_failed("1.2.3.4") == 0
    assert await limiter.auth_failed("1.2.3.4") == 0
    assert await limiter.blocked_for("1.2.3.4") == 0
    assert await limiter.auth_failed("1.2.3.4") == 300
    assert await limiter.blocked_for("1.2.3.4") == 300
    assert await limiter.blocked_for("5.6.7.8") == 0
    clock.advance(300)
    assert await limiter.blocked_for("1.2.3.4") == 0


async def test_failures_spread_over_more_than_the_window_do_not_block(limiter: MemoryLimiter, clock: ManualClock) -> None:
    for _ in range(5):
        assert await limiter.auth_failed("1.2.3.4") == 0
        clock.advance(200)
    assert await limiter.blocked_for("1.2.3.4") == 0
