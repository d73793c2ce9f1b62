"""Rate limits and IP blocks for the HTTP API: in-process, or shared through Redis.

Two things are limited:

- **requests per API key**, with a true sliding window (a log of the accepted requests' times):
  in no 60-second span, wherever it starts, are more than the limit accepted, so a client cannot
  send up to twice the limit across a window boundary the way a fixed window (or a two-window
  estimate) allows. A request over the limit is refused (and not counted) with the seconds until
  the oldest counted request leaves the window (``Retry-After``).
- **failed authentications per client IP**: after ``failures_before_block`` failures within
  ``block_seconds`` the IP is blocked for ``block_seconds``.

Time comes from the injected clock, in Redis too (the clock's instant is what is compared;
Redis TTLs only clean up), so tests drive both backends with a manual clock.

``MemoryLimiter`` keeps its logs in this process (a deque per key: at most ``limit`` times).
``RedisLimiter`` keeps them in Redis (a sorted set per key; redis-py's asyncio client, one Lua
script per decision, so instances sharing a Redis share the limits); when Redis fails it falls
back to an in-process limiter for that call and logs it, rather than refusing payments because
the limiter is down.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from engine.clock import Clock

__all__ = ["Limiter", "MemoryLimiter", "RateDecision", "RedisLimiter", "build_limiter"]

log = logging.getLogger("bakong_console.api.ratelimit")

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    #: Seconds until one more request would be allowed (0 when allowed).
    retry_after: float
    #: Seconds until the oldest counted request leaves the window (one more place frees then).
    reset_after: float


class Limiter(Protocol):
    async def hit(self, key: str, *, limit: int) -> RateDecision:
        """Count one request for ``key`` if it fits under ``limit`` per minute."""

    async def blocked_for(self, ip: str) -> float:
        """Seconds this IP stays blocked (0: not blocked)."""

    async def auth_failed(self, ip: str) -> float:
        """Record a failed authentication; returns the block's length if this one triggered it."""

    async def aclose(self) -> None:
        """Release connections."""


class MemoryLimiter:
    """Counters in this process (one API instance)."""

    def __init__(self, clock: Clock, *, failures_before_block: int, block_seconds: float, window: float = WINDOW_SECONDS) -> None:
        self.clock = clock
        self.failures_before_block = max(1, failures_before_block)
        self.block_seconds = float(block_seconds)
        self.window = window
        self._accepted: dict[str, deque[float]] = {}  # key -> times of the requests accepted in the window
        self._failures: dict[str, tuple[float, int]] = {}  # ip -> (first failure at, count)
        self._blocked: dict[str, float] = {}  # ip -> until

    def _now(self) -> float:
        return self.clock.now().timestamp()

    async def hit(self, key: str, *, limit: int) -> RateDecision:
        now = self._now()
        window = self.window
        accepted = self._accepted.get(key)
        if accepted is None:
            accepted = self._accepted[key] = deque()
        horizon = now - window
        while accepted and accepted[0] <= horizon:
            accepted.popleft()
        count = len(accepted)
        if count < limit:
            accepted.append(now)
            return RateDecision(True, limit, limit - count - 1, 0.0, accepted[0] + window - now)
        if limit <= 0:
            return RateDecision(False, limit, 0, window, window)
        # The request that must leave for one more to fit (the limit may have been lowered).
        wait = accepted[count - limit] + window - now
        return RateDecision(False, limit, 0, wait, accepted[0] + window - now)

    async def blocked_for(self, ip: str) -> float:
        until = self._blocked.get(ip)
        if until is None:
            return 0.0
        left = until - self._now()
        if left <= 0:
            del self._blocked[ip]
            return 0.0
        return left

    async def auth_failed(self, ip: str) -> float:
        now = self._now()
        first, count = self._failures.get(ip, (now, 0))
        if now - first >= self.block_seconds:
            first, count = now, 0
        count += 1
        if count >= self.failures_before_block:
            self._failures.pop(ip, None)
            self._blocked[ip] = now + self.block_seconds
            self._prune(now)
            return self.block_seconds
        self._failures[ip] = (first, count)
        if len(self._failures) > 10_000:
            self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        """Forget finished blocks and stale failure runs (many distinct IPs must not grow memory)."""
        for ip in [ip for ip, until in self._blocked.items() if until <= now]:
            del self._blocked[ip]
        for ip in [ip for ip, (first, _) in self._failures.items() if now - first >= self.block_seconds]:
            del self._failures[ip]

    async def aclose(self) -> None:
        return None


# KEYS: the key's log (a sorted set of accepted requests scored by their clock time).
# ARGV: now, window seconds, limit, a unique member for this request, ttl ms.
# Returns {allowed (0/1), count before this request, the time (as a string: Lua would truncate a
# number) of the request that must leave for one more to fit (refused) or of the oldest (allowed)}.
_HIT_LUA = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  if limit <= 0 then return {0, n, ARGV[1]} end
  local leaving = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  return {0, n, leaving[2]}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {1, n, oldest[2]}
"""

# KEYS: failure run, block. ARGV: failures before block, block until (clock seconds), ttl ms.
# The run records its first failure's time so it restarts after block_seconds of the clock.
_FAIL_LUA = """
local first = tonumber(redis.call('HGET', KEYS[1], 'first') or '-1')
local now = tonumber(ARGV[4])
if first < 0 or now - first >= tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'first', ARGV[4])
end
local n = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class RedisLimiter:
    """Counters in Redis, shared by every API instance using the same URL and key prefix."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        failures_before_block: int,
        block_seconds: float,
        prefix: str = "bakong-console:",
        window: float = WINDOW_SECONDS,
    ) -> None:
        import redis.asyncio as aioredis

        self.clock = clock
        self.prefix = prefix
        self.window = window
        self.failures_before_block = max(1, failures_before_block)
        self.block_seconds = float(block_seconds)
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._hit_script = self._redis.register_script(_HIT_LUA)
        self._fail_script = self._redis.register_script(_FAIL_LUA)
        self.fallback = MemoryLimiter(clock, failures_before_block=failures_before_block, block_seconds=block_seconds, window=window)
        #: Calls answered by the in-process fallback because Redis failed.
        self.errors = 0

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 100 == 0:
            log.warning("rate limiter: Redis failed (%s: %s); limiting in this process meanwhile", type(exc).__name__, exc)

    async def hit(self, key: str, *, limit: int) -> RateDecision:
        from redis.exceptions import RedisError

        now = self.clock.now().timestamp()
        window = self.window
        try:
            allowed, count, at = await self._hit_script(
                keys=[f"{self.prefix}rl:{key}"],
                args=[repr(now), repr(window), limit, f"{now!r}:{secrets.token_hex(6)}", int(window * 1000) + 1000],
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return await self.fallback.hit(key, limit=limit)
        count, at = int(count), float(at)
        if allowed:
            return RateDecision(True, limit, limit - count - 1, 0.0, at + window - now)
        wait = window if limit <= 0 else max(0.0, at + window - now)
        return RateDecision(False, limit, 0, wait, wait)

    async def blocked_for(self, ip: str) -> float:
        from redis.exceptions import RedisError

        try:
            until = await self._redis.get(f"{self.prefix}block:{ip}")
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return await self.fallback.blocked_for(ip)
        if until is None:
            return 0.0
        return max(0.0, float(until) - self.clock.now().timestamp())

    async def auth_failed(self, ip: str) -> float:
        from redis.exceptions import RedisError

        now = self.clock.now().timestamp()
        try:
            blocked = await self._fail_script(
                keys=[f"{self.prefix}authfail:{ip}", f"{self.prefix}block:{ip}"],
                args=[
                    self.failures_before_block,
                    repr(now + self.block_seconds),
                    int(self.block_seconds * 1000) + 1000,
                    repr(now),
                    repr(self.block_seconds),
                ],
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return await self.fallback.auth_failed(ip)
        return self.block_seconds if int(blocked) else 0.0

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_limiter(backend: str, redis_url: str, clock: Clock, *, failures_before_block: int, block_seconds: float, prefix: str) -> Limiter:
    """The limiter ``api.rate_limit_backend`` names: "memory", "redis" (``api.redis_url``) or a redis URL."""
    if backend == "memory":
        return MemoryLimiter(clock, failures_before_block=failures_before_block, block_seconds=block_seconds)
    url = redis_url if backend == "redis" else backend
    return RedisLimiter(url, clock, failures_before_block=failures_before_block, block_seconds=block_seconds, prefix=prefix)
