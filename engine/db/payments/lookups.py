"""Reading one payment (or a few) by id, md5, idempotency key or Bakong hash."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select

from engine.db.models import PaymentRow
from engine.db.payments.conversions import to_record
from engine.db.pointread import PointRead
from engine.db.storage import Storage, Tx
from engine.errors import NotFound
from engine.records import Payment

__all__ = ["find_by_hash", "get", "get_by_idempotency_key", "get_by_md5", "get_many_by_md5", "read_by_md5"]

_PAYMENTS = PaymentRow.__table__


# Core selects of the table's columns, built once: loading ORM entities (identity map, instance
# state) cost more than the query; ``to_record`` reads a Core row the same way.
_BY_ID = select(_PAYMENTS).where(_PAYMENTS.c.id == bindparam("id"))
_BY_MD5 = select(_PAYMENTS).where(_PAYMENTS.c.md5 == bindparam("md5"))
_BY_KEY = select(_PAYMENTS).where(
    _PAYMENTS.c.idempotency_scope == bindparam("scope"), _PAYMENTS.c.idempotency_key == bindparam("key")
)


async def get(tx: Tx, payment_id: str) -> Payment:
    row = (await tx.session.execute(_BY_ID, {"id": payment_id})).first()
    if row is None:
        raise NotFound(f"no payment {payment_id}")
    return to_record(tx, row)


async def get_by_md5(tx: Tx, md5: str) -> Payment:
    row = (await tx.session.execute(_BY_MD5, {"md5": md5.lower()})).first()
    if row is None:
        raise NotFound(f"no payment with md5 {md5}")
    return to_record(tx, row)


async def read_by_md5(storage: Storage, md5: str) -> Payment:
    """``get_by_md5`` outside any transaction, as one ``PointRead`` (the API's status read)."""
    row = await PointRead.of(storage.db, _BY_MD5).one({"md5": md5.lower()})
    if row is None:
        raise NotFound(f"no payment with md5 {md5}")
    return to_record(storage, row)


async def get_many_by_md5(tx: Tx, md5s: Sequence[str]) -> dict[str, Payment]:
    if not md5s:
        return {}
    rows = (await tx.session.scalars(select(PaymentRow).where(PaymentRow.md5.in_([m.lower() for m in md5s])))).all()
    return {r.md5: to_record(tx, r) for r in rows}


async def get_by_idempotency_key(tx: Tx, scope: str, key: str) -> tuple[Payment, str | None] | None:
    """The payment created under this key, with the fingerprint of the request that created it."""
    row = (await tx.session.execute(_BY_KEY, {"scope": scope, "key": key})).first()
    if row is None:
        return None
    return to_record(tx, row), row.request_fingerprint


async def find_by_hash(tx: Tx, bakong_hash: str) -> Payment | None:
    row = await tx.session.scalar(select(PaymentRow).where(PaymentRow.bakong_hash == bakong_hash))
    return to_record(tx, row) if row else None
