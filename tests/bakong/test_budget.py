"""The in-memory request ledger: reservations per token per Bakong day, the quota latch."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from engine.bakong.budget import InMemoryRequestLedger, bakong_day
from engine.errors import BudgetExhausted, QuotaExhausted

# 16:30 UTC is 23:30 in Phnom Penh; local midnight is 17:00 UTC.
LATE_EVENING = datetime(2026, 1, 15, 16, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)


def test_the_bakong_day_is_the_phnom_penh_date() -> None:
    assert bakong_day(LATE_EVENING) == date(2026, 1, 15)
    assert bakong_day(MIDNIGHT) == date(2026, 1, 16)


async def test_reserve_counts_per_token_and_refuses_when_spent_until_local_midnight() -> None:
    ledger = InMemoryRequestLedger()
    ids = [await ledger.reserve("tok-a", "check_transaction_by_md5", now=LATE_EVENING, daily_budget=3) for _ in range(3)]
    assert ids == sorted(set(ids))
    with pytest.raises(BudgetExhausted) as refused:
        await ledger.reserve("tok-a", "check_transaction_by_md5", now=LATE_EVENING, daily_budget=3)
    assert refused.value.until == MIDNIGHT
    # another token has its own budget
    await ledger.reserve("tok-b", "check_transaction_by_md5", now=LATE_EVENING, daily_budget=3)
    usage = await ledger.usage("tok-a", now=LATE_EVENING, daily_budget=3)
    assert (usage.day, usage.used, usage.remaining, usage.budget, usage.exhausted_until) == (
        date(2026, 1, 15), 3, 0, 3, None
    )
    # a new Bakong day starts at local midnight
    await ledger.reserve("tok-a", "check_transaction_by_md5", now=MIDNIGHT, daily_budget=3)
    assert (await ledger.usage("tok-a", now=MIDNIGHT, daily_budget=3)).used == 1


async def test_a_latch_refuses_everything_until_it_expires() -> None:
    ledger = InMemoryRequestLedger()
    await ledger.latch_exhausted("tok", now=LATE_EVENING, until=MIDNIGHT)
    with pytest.raises(QuotaExhausted) as refused:
        await ledger.reserve("tok", "check_transaction_by_md5_list", now=LATE_EVENING + timedelta(minutes=29), daily_budget=100)
    assert refused.value.until == MIDNIGHT
    usage = await ledger.usage("tok", now=LATE_EVENING, daily_budget=100)
    assert usage.exhausted_until == MIDNIGHT and usage.used == 0
    await ledger.reserve("tok", "check_transaction_by_md5_list", now=MIDNIGHT, daily_budget=100)
    assert (await ledger.usage("tok", now=MIDNIGHT, daily_budget=100)).exhausted_until is None


async def test_record_keeps_each_requests_outcome() -> None:
    ledger = InMemoryRequestLedger()
    rid = await ledger.reserve("tok", "check_transaction_by_md5", now=LATE_EVENING, daily_budget=5)
    await ledger.record(rid, outcome="ok", http_status=200, error_code=None, duration_ms=1.5)
    (record,) = ledger.records
    assert (record.reservation_id, record.endpoint, record.outcome, record.http_status, record.duration_ms) == (
        rid, "check_transaction_by_md5", "ok", 200, 1.5
    )
    # recording twice or an unknown id changes nothing
    await ledger.record(rid, outcome="again", http_status=500, error_code=None, duration_ms=1)
    assert len(ledger.records) == 1
