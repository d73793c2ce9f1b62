"""Read-outs for health checks and metrics: counts the faces show, no state changes.

``HealthReadout`` answers from the database only (cheap, index-backed counts); the live parts
(token, poller, budget) come from the engine's client and poller state by the caller.
"""

from __future__ import annotations

from sqlalchemy import func, select

from engine.db import payments as payments_repo
from engine.db.models import WebhookDeliveryRow
from engine.db.storage import Storage
from engine.errors import StorageError

__all__ = ["HealthReadout"]

#: A delivery waiting for its next attempt (engine.db.models.WebhookDeliveryRow.status).
PENDING_DELIVERY = "PENDING"


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
        from engine.records import PaymentStatus

        async with self.storage.read() as tx:
            counts = await payments_repo.count_by_status(tx)
        return {s.value: counts.get(s.value, 0) for s in PaymentStatus}

    async def pending_webhook_deliveries(self) -> int:
        """The outbox backlog: deliveries still waiting for a successful attempt."""
        async with self.storage.read() as tx:
            return int(
                await tx.session.scalar(
                    select(func.count()).select_from(WebhookDeliveryRow).where(WebhookDeliveryRow.status == PENDING_DELIVERY)
                )
                or 0
            )
