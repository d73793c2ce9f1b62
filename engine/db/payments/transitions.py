"""Status transitions: ``transition`` is the only way a payment changes status.

One conditional UPDATE (``WHERE status IN expected``) plus its history row, audit row and event,
all in the caller's transaction. When another process got there first, the UPDATE matches
nothing and nothing else is written.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from engine import events as ev
from engine.db.journal import append_event, audit
from engine.db.models import PaymentRow
from engine.db.payments.conversions import PAYER_CONTEXT, payment_event_data, to_record
from engine.db.payments.status_history import add_history
from engine.db.storage import Tx
from engine.errors import Conflict, NotFound
from engine.records import Actor, Payment, PaymentStatus

__all__ = ["ONE_MORE_CHECK", "transition"]

async def transition(
    tx: Tx,
    payment_id: str,
    *,
    expected: Collection[PaymentStatus],
    to: PaymentStatus,
    actor: Actor,
    reason: str,
    changes: dict[str, Any] | None = None,
    payer_account: str | None = None,
    event_type: str | None = None,
    action: str | None = None,
    event_extra: dict[str, Any] | None = None,
) -> Payment | None:
    """Move a payment from one of ``expected`` to ``to``; None if its status was not expected.

    ``changes`` sets other columns in the same UPDATE (paid_at, bakong_hash, next_check_at...).
    A Bakong hash already used by another payment raises ``Conflict`` and writes nothing.
    """
    before_row = await tx.session.get(PaymentRow, payment_id)
    if before_row is None:
        raise NotFound(f"no payment {payment_id}")
    before = payment_event_data(to_record(tx, before_row))
    values: dict[str, Any] = {"status": to.value, "updated_at": tx.now, **(changes or {})}
    if payer_account is not None:
        values["payer_account_enc"] = tx.cipher.encrypt(payer_account, context=PAYER_CONTEXT)
    stmt = (
        update(PaymentRow)
        .where(PaymentRow.id == payment_id, PaymentRow.status.in_([s.value for s in expected]))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    try:
        async with tx.session.begin_nested():
            result = await tx.session.execute(stmt)
    except IntegrityError:
        raise Conflict(f"Bakong transaction {values.get('bakong_hash')} is already recorded on another payment") from None
    if result.rowcount != 1:
        return None
    await tx.session.refresh(before_row)
    payment = to_record(tx, before_row)
    await add_history(tx, payment_id, before["status"], to.value, reason, actor)
    data = payment_event_data(payment)
    await audit(
        tx, actor, action or f"payment.{to.value.lower()}", "payment", payment_id, before=before, after=data, reason=reason
    )
    await append_event(
        tx,
        event_type or ev.PAYMENT_EVENT_BY_STATUS[to],
        "payment",
        payment_id,
        {**data, "previous_status": before["status"], "reason": reason, **(event_extra or {})},
    )
    return payment


#: For ``transition(changes=...)``: count the check that found the transfer.
ONE_MORE_CHECK = PaymentRow.check_count + 1
