"""Rate limits and IP blocks through Redis (127.0.0.1:6379): shared by API instances, expiring,
and falling back to in-process limits when Redis fails. Each test uses its own key prefix.

Redis down: these tests skip locally and FAIL in CI (BAKONG_CONSOLE_REQUIRE_POSTGRES=1)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from bakong_console.api import create_app
from bakong_console.api.ratelimit import RedisLimiter, build_limiter
from engine.clock import ManualClock
from engine.runtime import Engine
from tests.api.conftest import KeyFactory, client_for
from tests.api.test_ratelimit_memory import busiest_minute, hammer
from tests.api.test_payments_api import problem
from tests.support.services import unavailable

REDIS_URL = "redis://127.0.0.1:6379/0"
STATUS = "/api/payments/status/" + "b" * 32


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # any failure to reach Redis
        await client.aclose()
        unavailable(f"Redis on 127.0.0.1:6379 is not available ({type(exc).__name__}: {exc})", "Redis")
    prefix = f"bc-test-{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        async for found in client.scan_iter(match=prefix + "*"):
            await client.delete(found)
        await client.aclose()


LimiterFactory = Callable[[], RedisLimiter]


@pytest.fixture
async def redis_limiter(engine: Engine, redis_prefix: str) -> AsyncIterator[LimiterFactory]:
    made: list[RedisLimiter] = []

    def make() -> RedisLimiter:
        limiter = RedisLimiter(REDIS_URL, engine.clock, failures_before_block=3, block_seconds=600, prefix=redis_prefix)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


@pytest.mark.parametrize("api_overrides", [{"rate_limit_per_minute": 3}])
async def test_redis_rate_limit_is_shared_by_instances(
    engine: Engine, make_key: KeyFactory, redis_limiter: LimiterFactory, clock: ManualClock, redis_prefix: str
) -> None:
    key = {"X-API-Key": await make_key("shared")}
    first_instance, second_instance = create_app(engine, limiter=redis_limiter()), create_app(engine, limiter=redis_limiter())
    async with client_for(first_instance) as a, client_for(second_instance) as b:
        assert (await a.get(STATUS, headers=key)).status_code == 404
        assert (await b.get(STATUS, headers=key)).status_code == 404
        assert (await a.get(STATUS, headers=key)).headers["ratelimit-remaining"] == "0"
        refused = await b.get(STATUS, headers=key)
        body = problem(refused, 429, "rate-limited")
        assert int(refused.headers["retry-after"]) == body["retry_after"] >= 1
        clock.advance(body["retry_after"])
        assert (await b.get(STATUS, headers=key)).status_code == 404
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=redis_prefix + "rl:*")]
        assert keys and all([await client.pttl(k) > 0 for k in keys])  # windows expire on their own
    finally:
        await client.aclose()
    assert first_instance.state.api.limiter.errors == 0


async def test_redis_ip_block_is_shared_by_instances(
    engine: Engine, key: str, redis_limiter: LimiterFactory, clock: ManualClock
) -> None:
    first_instance, second_instance = create_app(engine, limiter=redis_limiter()), create_app(engine, limiter=redis_limiter())
    bad = {"X-API-Key": "bk_abcdefgh_" + "z" * 43}
    async with client_for(first_instance) as a, client_for(second_instance) as b, client_for(second_instance, ip="192.0.2.200") as other:
        problem(await a.get(STATUS, headers=bad), 401, "unauthorized")
        problem(await b.get(STATUS, headers=bad), 401, "unauthorized")
        problem(await a.get(STATUS), 401, "unauthorized")
        blocked = problem(await b.get(STATUS, headers={"X-API-Key": key}), 429, "client-blocked")
        assert blocked["retry_after"] == 600
        assert (await other.get(STATUS, headers={"X-API-Key": key})).status_code == 404
        clock.advance(601)
        assert (await a.get(STATUS, headers={"X-API-Key": key})).status_code == 404


@pytest.mark.parametrize("api_overrides", [{"rate_limit_per_minute": 2}])
async def test_redis_down_falls_back_to_in_process_limits(engine: Engine, make_key: KeyFactory) -> None:
    limiter = build_limiter(
        "redis://127.0.0.1:1/0", "", engine.clock, failures_before_block=3, block_seconds=60, prefix="bc-test-down:"
    )
    app = create_app(engine, limiter=limiter)
    key = {"X-API-Key": await make_key("fallback")}
    try:
        async with client_for(app) as client:
            assert [(await client.get(STATUS, headers=key)).status_code for _ in range(3)] == [404, 404, 429]
            metrics = (await client.get("/metrics")).text
    finally:
        await limiter.aclose()
    assert limiter.errors >= 3
    assert f"bakong_console_api_rate_limiter_fallbacks_total {limiter.errors}" in metrics


@pytest.mark.parametrize("api_overrides", [{"rate_limit_backend": "redis", "rate_limit_per_minute": 1}])
async def test_settings_select_the_redis_backend(app, redis_prefix: str, make_key: KeyFactory) -> None:  # noqa: ANN001
    assert isinstance(app.state.api.limiter, RedisLimiter)
    app.state.api.limiter.prefix = redis_prefix
    key = {"X-API-Key": await make_key("configured")}
    async with client_for(app) as client:
        assert [(await client.get(STATUS, headers=key)).status_code for _ in range(2)] == [404, 429]


async def test_redis_window_slides_across_the_boundary(engine: Engine, redis_limiter: LimiterFactory, clock: ManualClock) -> None:
    """Issue 20.2 through Redis: no span of 60 s accepts more than the limit."""
    limiter = redis_limiter()
    accepted = await hammer(limiter, clock)
    assert busiest_minute(accepted) == 100
    assert accepted[100] - accepted[0] == pytest.approx(60) and len(accepted) == 100 + 63
    assert limiter.errors == 0
