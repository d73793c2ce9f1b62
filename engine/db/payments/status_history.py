"""A payment's status history: the row every status change writes, and reading them back."""

from __future__ import annotations

from sqlalchemy import insert as sql_insert
from sqlalchemy import select

from engine.db.models import PaymentStatusHistoryRow
from engine.db.storage import Tx
from engine.records import Actor, StatusChange

__all__ = ["history"]

_INSERT_HISTORY = sql_insert(PaymentStatusHistoryRow.__table__)


async def add_history(tx: Tx, payment_id: str, from_status: str | None, to_status: str, reason: str, actor: Actor) -> None:
    """The history row of one change (``insert`` and ``transition`` write it in their transaction)."""
    await tx.execute(
        _INSERT_HISTORY,
        dict(payment_id=payment_id, from_status=from_status, to_status=to_status, reason=reason, actor=str(actor), at=tx.now),
    )


async def history(tx: Tx, payment_id: str) -> list[StatusChange]:
    rows = (
        await tx.session.scalars(
            select(PaymentStatusHistoryRow)
            .where(PaymentStatusHistoryRow.payment_id == payment_id)
            .order_by(PaymentStatusHistoryRow.id)
        )
    ).all()
    return [
        StatusChange(r.id, r.payment_id, r.from_status, r.to_status, r.reason, r.actor, r.at) for r in rows
    ]
