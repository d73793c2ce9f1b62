"""The Bakong request ledger, durable: one budget per token per Bakong day, shared by all processes.

Reserving is one conditional UPDATE (``used = used + 1 WHERE used < budget``) on the token's row
for the day, so two processes can never both spend the last request. ``bakong_requests`` keeps a
row per reservation with its outcome, for the console's budget meter and for audit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.bakong.budget import BudgetUsage, bakong_day
from engine.clock import PHNOM_PENH, local_midnight_after, utc
from engine.db.models import BakongQuotaRow, BakongRequestRow
from engine.db.storage import Storage
from engine.errors import BudgetExhausted, QuotaExhausted

__all__ = ["DatabaseRequestLedger"]


class DatabaseRequestLedger:
    """``engine.bakong.budget.RequestLedger`` on the project's database."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def _insert(self):  # noqa: ANN202 - dialect-specific INSERT construct
        return (postgresql if self._storage.db.is_postgres else sqlite).insert(BakongQuotaRow)

    async def reserve(self, token_fingerprint: str, endpoint: str, *, now: datetime, daily_budget: int) -> int:
        now = utc(now)
        day = bakong_day(now)
        async with self._storage.transaction() as tx:
            await tx.session.execute(
                self._insert().values(token_fingerprint=token_fingerprint, day=day, used=0).on_conflict_do_nothing()
            )
            quota = await tx.session.get(BakongQuotaRow, (token_fingerprint, day))
            assert quota is not None
            if quota.exhausted_until is not None and quota.exhausted_until > now:
                until = quota.exhausted_until
                raise QuotaExhausted(
                    "Bakong's daily quota is spent; no request is sent until "
                    f"{until.astimezone(PHNOM_PENH):%Y-%m-%d %H:%M} (Asia/Phnom_Penh)",
                    until=until,
                    endpoint=endpoint,
                )
            taken = await tx.session.execute(
                update(BakongQuotaRow)
                .where(
                    BakongQuotaRow.token_fingerprint == token_fingerprint,
                    BakongQuotaRow.day == day,
                    BakongQuotaRow.used < daily_budget,
                )
                .values(used=BakongQuotaRow.used + 1)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:
                raise BudgetExhausted(
                    f"the daily budget of {daily_budget} Bakong requests is spent; it resets at local midnight",
                    until=local_midnight_after(now),
                    endpoint=endpoint,
                )
            row = BakongRequestRow(token_fingerprint=token_fingerprint, day=day, endpoint=endpoint, reserved_at=now)
            tx.session.add(row)
            await tx.session.flush()
            return row.id

    async def record(
        self, reservation_id: int, *, outcome: str, http_status: int | None, error_code: int | None, duration_ms: float
    ) -> None:
        async with self._storage.transaction() as tx:
            await tx.session.execute(
                update(BakongRequestRow)
                .where(BakongRequestRow.id == reservation_id)
                .values(outcome=outcome[:32], http_status=http_status, error_code=error_code, duration_ms=duration_ms)
                .execution_options(synchronize_session=False)
            )

    async def latch_exhausted(self, token_fingerprint: str, *, now: datetime, until: datetime) -> None:
        now, until = utc(now), utc(until)
        day = bakong_day(now)
        async with self._storage.transaction() as tx:
            await tx.session.execute(
                self._insert().values(token_fingerprint=token_fingerprint, day=day, used=0).on_conflict_do_nothing()
            )
            quota = await tx.session.get(BakongQuotaRow, (token_fingerprint, day))
            assert quota is not None
            if quota.exhausted_until is None or quota.exhausted_until < until:
                quota.exhausted_until = until

    async def usage(self, token_fingerprint: str, *, now: datetime, daily_budget: int) -> BudgetUsage:
        now = utc(now)
        day = bakong_day(now)
        async with self._storage.read() as tx:
            quota = await tx.session.scalar(
                select(BakongQuotaRow).where(BakongQuotaRow.token_fingerprint == token_fingerprint, BakongQuotaRow.day == day)
            )
        used = quota.used if quota else 0
        latched = quota.exhausted_until if quota and quota.exhausted_until and quota.exhausted_until > now else None
        return BudgetUsage(day=day, used=used, budget=daily_budget, remaining=max(0, daily_budget - used), exhausted_until=latched)
