"""Read-outs for health checks and metrics: is the database there, and payments per status.

The live parts (token, poller, budget, webhook backlog) come from the engine's client, poller
state and webhook service; this answers what only a query can.
"""

from __future__ import annotations

from engine.db import payments as payments_repo
from engine.db.storage import Storage
from engine.errors import StorageError
from engine.records import PaymentStatus

__all__ = ["HealthReadout"]


class HealthReadout:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def database_ok(self) -> bool:
        try:
            await self.storage.db.ping()
        except StorageError:
            return False
        return True

    @property
    def database_engine(self) -> str:
        return self.storage.db.dialect

    async def payment_counts(self) -> dict[str, int]:
        """Payments per status (every status present, zero included)."""
        async with self.storage.read() as tx:
            counts = await payments_repo.count_by_status(tx)
        return {s.value: counts.get(s.value, 0) for s in PaymentStatus}
