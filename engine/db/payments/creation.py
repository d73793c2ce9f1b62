"""Creating a payment: the one-transaction write of the payment row, its first history row, its
audit row and its ``payment.created`` event (the create hot path), and the deep link set after it.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert as sql_insert
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from engine import events as ev
from engine.db.journal import append_event, audit
from engine.db.models import PaymentRow
from engine.db.payments.conversions import payment_event_data, to_record
from engine.db.payments.status_history import add_history
from engine.db.storage import Tx
from engine.errors import Conflict
from engine.records import Actor, Payment, PaymentStatus

__all__ = ["insert", "set_deep_link"]

# A Core statement on the table: an ORM insert() of a mapped class takes SQLAlchemy's "ORM bulk
# insert" path, which cost more than the statement itself.
_PAYMENTS = PaymentRow.__table__
_INSERT_PAYMENT = sql_insert(_PAYMENTS)
#: Every column None: what a freshly inserted payment holds where ``insert`` sets nothing.
_NO_COLUMNS = dict.fromkeys(_PAYMENTS.columns.keys())


async def insert(
    tx: Tx,
    *,
    actor: Actor,
    amount_minor: int,
    currency: str,
    khqr: str,
    md5: str,
    receiving_account: str,
    expires_at: datetime,
    next_check_at: datetime | None,
    status: PaymentStatus = PaymentStatus.PENDING,
    idempotency_scope: str = "",
    idempotency_key: str | None = None,
    request_fingerprint: str | None = None,
    reference: str | None = None,
    bill_number: str | None = None,
    description: str | None = None,
    customer_id: str | None = None,
    api_key_id: str | None = None,
    subscription_id: str | None = None,
    invoice_id: str | None = None,
    deep_link: str | None = None,
    terminal: str | None = None,
    payment_id: str | None = None,
    reason: str = "created",
) -> Payment:
    """Insert a new payment with its first history row, audit row and ``payment.created`` event."""
    values: dict[str, Any] = dict(
        id=payment_id or tx.ids.new("pay"),
        idempotency_scope=idempotency_scope,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
        reference=reference,
        amount_minor=amount_minor,
        currency=currency,
        khqr=khqr,
        md5=md5,
        receiving_account=receiving_account,
        bill_number=bill_number,
        description=description,
        customer_id=customer_id,
        status=status.value,
        created_at=tx.now,
        updated_at=tx.now,
        expires_at=expires_at,
        next_check_at=next_check_at,
        check_count=0,
        created_by_type=actor.type.value,
        created_by=actor.name,
        api_key_id=api_key_id,
        subscription_id=subscription_id,
        invoice_id=invoice_id,
        deep_link=deep_link,
        terminal=terminal,
    )
    # No savepoint: a duplicate is the first write of its transaction, which simply rolls back.
    try:
        await tx.execute(_INSERT_PAYMENT, values)
    except IntegrityError as exc:
        raise Conflict(f"a payment with this {_which_unique(exc)} already exists") from None
    await add_history(tx, values["id"], None, status.value, reason, actor)
    payment = to_record(tx, SimpleNamespace(**{**_NO_COLUMNS, **values}))
    data = payment_event_data(payment)
    await audit(tx, actor, "payment.create", "payment", payment.id, after=data)
    await append_event(tx, ev.PAYMENT_EVENT_BY_STATUS[status], "payment", payment.id, data)
    return payment


def _which_unique(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "md5" in text:
        return "KHQR (md5)"
    if "idempotency" in text:
        return "idempotency key"
    return "key"


async def set_deep_link(tx: Tx, payment_id: str, deep_link: str) -> None:
    await tx.session.execute(
        update(PaymentRow).where(PaymentRow.id == payment_id).values(deep_link=deep_link).execution_options(synchronize_session=False)
    )
