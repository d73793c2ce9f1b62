"""Listing payments: ``PaymentFilter``, newest first, paged by an opaque (created_at, id) cursor."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select

from engine.db.models import PaymentRow
from engine.db.payments.conversions import to_record
from engine.db.storage import Tx
from engine.errors import InvalidInput
from engine.records import Payment, PaymentStatus

__all__ = ["PaymentFilter", "search"]

@dataclass(frozen=True)
class PaymentFilter:
    """Search criteria; every field optional. ``text`` matches reference, md5 or Bakong hash."""

    statuses: tuple[PaymentStatus, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    reference: str | None = None
    md5: str | None = None
    bakong_hash: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    customer_id: str | None = None
    subscription_id: str | None = None
    text: str | None = None


def _encode_cursor(created_at: datetime, pid: str) -> str:
    raw = json.dumps([created_at.isoformat(), pid]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, pid = json.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("cursor time without a timezone")
        return when, str(pid)
    except (ValueError, TypeError):
        raise InvalidInput("invalid cursor", field="cursor") from None


async def search(
    tx: Tx, flt: PaymentFilter, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Payment], str | None]:
    """Newest first; returns a page and the cursor of the next page (None at the end)."""
    stmt = select(PaymentRow)
    conds = []
    if flt.statuses:
        conds.append(PaymentRow.status.in_([s.value for s in flt.statuses]))
    if flt.created_from:
        conds.append(PaymentRow.created_at >= flt.created_from)
    if flt.created_to:
        conds.append(PaymentRow.created_at < flt.created_to)
    if flt.reference:
        conds.append(PaymentRow.reference == flt.reference)
    if flt.md5:
        conds.append(PaymentRow.md5 == flt.md5.lower())
    if flt.bakong_hash:
        conds.append(PaymentRow.bakong_hash == flt.bakong_hash.lower())
    if flt.amount_minor is not None:
        conds.append(PaymentRow.amount_minor == flt.amount_minor)
    if flt.currency:
        conds.append(PaymentRow.currency == flt.currency)
    if flt.customer_id:
        conds.append(PaymentRow.customer_id == flt.customer_id)
    if flt.subscription_id:
        conds.append(PaymentRow.subscription_id == flt.subscription_id)
    if flt.text:
        needle = flt.text.strip()
        like = f"%{needle}%"
        conds.append(
            or_(
                PaymentRow.reference.ilike(like),
                PaymentRow.md5 == needle.lower(),
                PaymentRow.bakong_hash.ilike(f"{needle.lower()}%"),
                PaymentRow.id == needle,
                PaymentRow.bill_number == needle,
            )
        )
    if cursor:
        at, pid = _decode_cursor(cursor)
        conds.append(or_(PaymentRow.created_at < at, and_(PaymentRow.created_at == at, PaymentRow.id < pid)))
    if conds:
        stmt = stmt.where(*conds)
    rows = (
        await tx.session.scalars(stmt.order_by(PaymentRow.created_at.desc(), PaymentRow.id.desc()).limit(limit + 1))
    ).all()
    page = [to_record(tx, r) for r in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return page, next_cursor
