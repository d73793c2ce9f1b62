"""Payment rows into ``Payment`` records, and records into the data of audit rows and events.

The payer's account is stored only encrypted (``payer_account_enc``, under ``PAYER_CONTEXT``);
``to_record`` decrypts it and puts it back where Bakong's record had it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.db.storage import Storage, Tx
from engine.money import to_major
from engine.records import Payment, PaymentStatus

__all__ = ["payment_event_data", "to_record"]

PAYER_CONTEXT = "payments.payer_account"


def to_record(tx: Tx | Storage, row: Any) -> Payment:
    """A payment from an ORM row or a Core row (both expose the columns as attributes)."""
    payer = tx.cipher.decrypt(row.payer_account_enc, context=PAYER_CONTEXT) if row.payer_account_enc else None
    return Payment(
        id=row.id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        status=PaymentStatus(row.status),
        khqr=row.khqr,
        md5=row.md5,
        receiving_account=row.receiving_account,
        created_at=row.created_at,
        expires_at=row.expires_at,
        reference=row.reference,
        idempotency_key=row.idempotency_key,
        bill_number=row.bill_number,
        description=row.description,
        customer_id=row.customer_id,
        paid_at=row.paid_at,
        next_check_at=row.next_check_at,
        check_requested_at=row.check_requested_at,
        late_watch_until=row.late_watch_until,
        check_count=row.check_count,
        last_checked_at=row.last_checked_at,
        last_check_result=row.last_check_result,
        bakong_hash=row.bakong_hash,
        payer_account=payer,
        # the payer's account is stored only encrypted: put back where Bakong's record had it
        bakong_record=_with_payer(row.bakong_record, payer),
        created_by_type=row.created_by_type,
        created_by=row.created_by,
        api_key_id=row.api_key_id,
        subscription_id=row.subscription_id,
        invoice_id=row.invoice_id,
        deep_link=row.deep_link,
        updated_at=row.updated_at,
        terminal=row.terminal,
        reconcile_status=row.reconcile_status,
        reconciled_at=row.reconciled_at,
    )


def _with_payer(record: dict[str, Any] | None, payer: str | None) -> dict[str, Any] | None:
    """Bakong's record as it answered: its ``fromAccountId`` is stored empty (the account is kept
    only encrypted, in ``payer_account_enc``) and filled again here."""
    if record and payer and "fromAccountId" in record and record["fromAccountId"] is None:
        return {**record, "fromAccountId": payer}
    return record


def payment_event_data(p: Payment) -> dict[str, Any]:
    """The payment as the main backend sees it in webhooks and the events feed."""

    def iso(dt: datetime | None) -> str | None:
        return dt.isoformat().replace("+00:00", "Z") if dt else None

    return {
        "id": p.id,
        "status": p.status.value,
        "amount": str(to_major(p.amount_minor, p.currency)),
        "amount_minor": p.amount_minor,
        "currency": p.currency,
        "md5": p.md5,
        "reference": p.reference,
        "bill_number": p.bill_number,
        "customer_id": p.customer_id,
        "description": p.description,
        "receiving_account": p.receiving_account,
        "bakong_hash": p.bakong_hash,
        "payer_account": p.payer_account,
        "subscription_id": p.subscription_id,
        "created_at": iso(p.created_at),
        "expires_at": iso(p.expires_at),
        "paid_at": iso(p.paid_at),
    }
