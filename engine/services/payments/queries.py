"""Reading payments: by id, MD5 or the operator's reference, their status history, search and
CSV export, today's totals, and the pull feed of events."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

from engine import events as ev
from engine.clock import Clock
from engine.db import journal
from engine.db import payments as repo
from engine.db.payments import PaymentFilter
from engine.db.storage import Storage
from engine.errors import InvalidInput, NotFound
from engine.records import Payment, StatusChange

__all__ = ["MD5_PATTERN", "PaymentQueries", "normal_md5"]

MD5_PATTERN = r"^[0-9a-fA-F]{32}$"
_LOWER_MD5 = re.compile("[0-9a-f]{32}")  # one C call, not a Python test per character (status reads)


class PaymentQueries:
    """The payment service's reads."""

    storage: Storage
    clock: Clock

    async def get(self, payment_id: str) -> Payment:
        async with self.storage.lookup() as tx:
            return await repo.get(tx, payment_id)

    async def get_by_md5(self, md5: str) -> Payment:
        return await repo.read_by_md5(self.storage, normal_md5(md5))

    async def find(self, ref: str) -> Payment:
        """A payment by id, MD5 or reference (the operator's way of naming one)."""
        ref = ref.strip()
        async with self.storage.read() as tx:
            try:
                return await repo.get(tx, ref)
            except NotFound:
                pass
            if len(ref) == 32:
                try:
                    return await repo.get_by_md5(tx, ref)
                except NotFound:
                    pass
            page, _ = await repo.search(tx, PaymentFilter(reference=ref), limit=2)
        if len(page) == 1:
            return page[0]
        if len(page) > 1:
            raise InvalidInput(f"several payments have reference {ref!r}: name one by id", field="payment")
        raise NotFound(f"no payment with id, MD5 or reference {ref!r}")

    async def history(self, payment_id: str) -> list[StatusChange]:
        async with self.storage.read() as tx:
            await repo.get(tx, payment_id)
            return await repo.history(tx, payment_id)

    async def search(self, flt: PaymentFilter, *, limit: int = 50, cursor: str | None = None) -> tuple[list[Payment], str | None]:
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        async with self.storage.read() as tx:
            return await repo.search(tx, flt, limit=limit, cursor=cursor)

    async def today_totals(self) -> dict[str, dict[str, int]]:
        from engine.clock import PHNOM_PENH

        local = self.clock.now().astimezone(PHNOM_PENH)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        async with self.storage.read() as tx:
            return await repo.today_totals(tx, midnight)

    async def export_csv(self, out: IO[str], flt: PaymentFilter) -> int:
        """Write every matching payment as CSV (newest first); returns the row count."""
        columns = [
            "id", "status", "amount", "currency", "reference", "bill_number", "customer_id", "description",
            "md5", "bakong_hash", "created_at", "expires_at", "paid_at", "check_count", "last_check_result",
        ]  # fmt: skip
        writer = csv.writer(out)
        writer.writerow(columns)
        count = 0
        cursor: str | None = None
        while True:
            page, cursor = await self.search(flt, limit=500, cursor=cursor)
            for p in page:
                writer.writerow(
                    [
                        p.id, p.status.value, str(p.amount), p.currency, p.reference or "", p.bill_number or "",
                        p.customer_id or "", p.description or "", p.md5, p.bakong_hash or "",
                        _iso(p.created_at), _iso(p.expires_at), _iso(p.paid_at), p.check_count, p.last_check_result or "",
                    ]  # fmt: skip
                )
                count += 1
            if cursor is None:
                return count

    async def events_since(self, sequence: int, *, limit: int = 500, types: Iterable[str] | None = None) -> list[Any]:
        """The pull feed: events after ``sequence`` (all kinds, not only payments)."""
        if sequence < 0:
            raise InvalidInput("since must be a non-negative sequence number", field="since")
        wanted = list(types or [])
        unknown = [t for t in wanted if t not in ev.ALL_EVENT_TYPES]
        if unknown:
            raise InvalidInput(f"unknown event type {unknown[0]!r}", field="types")
        async with self.storage.read() as tx:
            return await journal.events_since(tx, sequence, limit=max(1, min(limit, 1000)), types=wanted or None)


def normal_md5(value: str) -> str:
    text = str(value).strip().lower()
    if _LOWER_MD5.fullmatch(text) is None:
        raise InvalidInput(f"{value!r} is not an MD5 (32 hexadecimal characters)", field="md5")
    return text


def _iso(dt: datetime | None) -> str:
    return dt.isoformat().replace("+00:00", "Z") if dt else ""
