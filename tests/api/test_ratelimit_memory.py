"""The sliding window and IP blocks of the in-process limiter, on the manual clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bakong_console.api.ratelimit import MemoryLimiter, RedisLimiter
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
    # All ten were accepted at once: one more fits when they leave the window, a minute later.
    assert refused.retry_after == pytest.approx(60)
    clock.advance(refused.retry_after - 0.5)
    assert not (await limiter.hit("k", limit=10)).allowed
    clock.advance(0.5)
    assert [(await limiter.hit("k", limit=10)).allowed for _ in range(11)] == [True] * 10 + [False]


async def test_no_double_burst_across_a_window_boundary(limiter: MemoryLimiter, clock: ManualClock) -> None:
    clock.advance(59)
    assert all([(await limiter.hit("k", limit=10)).allowed for _ in range(10)])
    clock.advance(1)  # a fresh fixed window would allow 10 more here
    refused = await limiter.hit("k", limit=10)
    assert not refused.allowed and refused.retry_after == pytest.approx(59)
    clock.advance(30)  # a two-window estimate would let 5 through here: the ten still count
    assert not (await limiter.hit("k", limit=10)).allowed
    clock.advance(29)
    assert [(await limiter.hit("k", limit=10)).allowed for _ in range(11)] == [True] * 10 + [False]


async def test_no_span_of_a_minute_accepts_more_than_the_limit(limiter: MemoryLimiter, clock: ManualClock) -> None:
    """Issue 20.2: a burst at a window's end, then a steady client, had 193 accepted in 57 s at 100."""
    accepted = await hammer(limiter, clock)
    assert busiest_minute(accepted) == 100
    # Nothing more until the burst has left the window, then the steady client is served again.
    assert accepted[100] - accepted[0] == pytest.approx(60) and len(accepted) == 100 + 63


async def hammer(limiter: MemoryLimiter | RedisLimiter, clock: ManualClock) -> list[float]:
    """100 requests at second 59, then one every 0.5 s until second 150: the accepted times."""
    accepted: list[float] = []
    clock.advance(59)
    for _ in range(100):
        if (await limiter.hit("k", limit=100)).allowed:
            accepted.append(clock.now().timestamp())
    for _ in range(182):
        clock.advance(0.5)
        if (await limiter.hit("k", limit=100)).allowed:
            accepted.append(clock.now().timestamp())
    return accepted


def busiest_minute(accepted: list[float]) -> int:
    """The most requests accepted in any 60-second span."""
    return max(sum(1 for t in accepted if start <= t < start + 60) for start in accepted)


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
