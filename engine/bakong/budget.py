"""The request ledger: every Bakong request is reserved against a daily budget before it is sent.

Bakong meters requests per token per day and answers errorCode 17 once the quota is spent; refused
requests count too. So we count our own: ``RequestLedger.reserve`` atomically takes one request
from the token's budget for the Bakong day (midnight to midnight in Asia/Phnom_Penh) or refuses,
and ``latch_exhausted`` records "Bakong said the quota is spent" so nothing at all is sent until
the latch expires (the next local midnight). The storage layer implements this protocol durably so
that every process sharing a token shares one ledger; ``InMemoryRequestLedger`` serves standalone
use and tests.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from engine.clock import PHNOM_PENH, local_midnight_after, utc
from engine.errors import BudgetExhausted, QuotaExhausted

__all__ = [
    "BudgetUsage",
    "InMemoryRequestLedger",
    "LedgerRecord",
    "RequestLedger",
    "bakong_day",
]


def bakong_day(now: datetime) -> date:
    """The Bakong day of an instant: its calendar date in Asia/Phnom_Penh."""
    return utc(now).astimezone(PHNOM_PENH).date()


@dataclass(frozen=True)
class BudgetUsage:
    """How much of a token's daily budget is spent, and whether Bakong latched it exhausted."""

    day: date
    used: int
    budget: int
    remaining: int
    exhausted_until: datetime | None


class RequestLedger(Protocol):
    """A shared, atomic count of the Bakong requests each token spends per Bakong day."""

    async def reserve(self, token_fingerprint: str, endpoint: str, *, now: datetime, daily_budget: int) -> int:
        """Atomically reserve one request on the Bakong day (Asia/Phnom_Penh) of ``now``; returns a
        reservation id. Raises QuotaExhausted(until=...) while a latch is set, and
        BudgetExhausted(until=next local midnight) when the day's budget is spent."""

    async def record(
        self,
        reservation_id: int,
        *,
        outcome: str,
        http_status: int | None,
        error_code: int | None,
        duration_ms: float,
    ) -> None:
        """Record how a reserved request ended (the reservation stays spent whatever happened)."""

    async def latch_exhausted(self, token_fingerprint: str, *, now: datetime, until: datetime) -> None:
        """Bakong said the quota is spent: refuse every reservation for this token until ``until``."""

    async def usage(self, token_fingerprint: str, *, now: datetime, daily_budget: int) -> BudgetUsage:
        """The token's usage on the Bakong day of ``now``."""


@dataclass(frozen=True)
class LedgerRecord:
    """One reserved request, as the in-memory ledger remembers it."""

    reservation_id: int
    token_fingerprint: str
    endpoint: str
    reserved_at: datetime
    outcome: str | None = None
    http_status: int | None = None
    error_code: int | None = None
    duration_ms: float | None = None


class InMemoryRequestLedger:
    """The request ledger in one process's memory (standalone runs and tests).

    Each method runs without awaiting anything, so on one event loop every call is atomic.
    ``records`` keeps the last ``history`` requests for inspection.
    """

    def __init__(self, *, history: int = 10_000) -> None:
        self._ids = itertools.count(1)
        self._used: dict[tuple[str, date], int] = {}
        self._latches: dict[str, datetime] = {}
        self._open: dict[int, LedgerRecord] = {}
        self.records: deque[LedgerRecord] = deque(maxlen=history)

    def _latched_until(self, token_fingerprint: str, now: datetime) -> datetime | None:
        until = self._latches.get(token_fingerprint)
        if until is not None and until <= now:
            del self._latches[token_fingerprint]
            return None
        return until

    async def reserve(self, token_fingerprint: str, endpoint: str, *, now: datetime, daily_budget: int) -> int:
        now = utc(now)
        until = self._latched_until(token_fingerprint, now)
        if until is not None:
            raise QuotaExhausted(
                f"Bakong's daily quota is spent; no request is sent until {until.astimezone(PHNOM_PENH):%Y-%m-%d %H:%M} "
                "(Asia/Phnom_Penh)",
                until=until,
                endpoint=endpoint,
            )
        key = (token_fingerprint, bakong_day(now))
        used = self._used.get(key, 0)
        if used >= daily_budget:
            midnight = local_midnight_after(now)
            raise BudgetExhausted(
                f"the daily budget of {daily_budget} Bakong requests is spent; it resets at local midnight",
                until=midnight,
                endpoint=endpoint,
            )
        self._used[key] = used + 1
        rid = next(self._ids)
        self._open[rid] = LedgerRecord(rid, token_fingerprint, endpoint, now)
        return rid

    async def record(
        self,
        reservation_id: int,
        *,
        outcome: str,
        http_status: int | None,
        error_code: int | None,
        duration_ms: float,
    ) -> None:
        reserved = self._open.pop(reservation_id, None)
        if reserved is None:
            return
        self.records.append(
            LedgerRecord(
                reserved.reservation_id,
                reserved.token_fingerprint,
                reserved.endpoint,
                reserved.reserved_at,
                outcome,
                http_status,
                error_code,
                duration_ms,
            )
        )

    async def latch_exhausted(self, token_fingerprint: str, *, now: datetime, until: datetime) -> None:
        current = self._latches.get(token_fingerprint)
        until = utc(until)
        if current is None or current < until:
            self._latches[token_fingerprint] = until

    async def usage(self, token_fingerprint: str, *, now: datetime, daily_budget: int) -> BudgetUsage:
        now = utc(now)
        day = bakong_day(now)
        used = self._used.get((token_fingerprint, day), 0)
        return BudgetUsage(
            day=day,
            used=used,
            budget=daily_budget,
            remaining=max(0, daily_budget - used),
            exhausted_until=self._latched_until(token_fingerprint, now),
        )
