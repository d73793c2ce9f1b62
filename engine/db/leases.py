"""Leases: at most one process runs each background job; a lapsed lease is taken over.

A holder renews its lease well before it expires; a process that dies simply stops renewing,
and another takes the job once ``expires_at`` passes. All three operations are single
conditional statements, safe under concurrency on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from engine.db.models import LeaseRow
from engine.db.storage import Tx
from engine.records import Lease

__all__ = ["acquire", "list_leases", "release"]


async def acquire(tx: Tx, name: str, holder: str, *, ttl: float, extra: dict[str, Any] | None = None) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False if someone else holds it."""
    expires = tx.now + timedelta(seconds=ttl)
    renewed = await tx.session.execute(
        update(LeaseRow)
        .where(LeaseRow.name == name, LeaseRow.holder == holder)
        .values(expires_at=expires, extra=extra or {})
        .execution_options(synchronize_session=False)
    )
    if renewed.rowcount == 1:
        return True
    taken = await tx.session.execute(
        update(LeaseRow)
        .where(LeaseRow.name == name, or_(LeaseRow.expires_at <= tx.now))
        .values(holder=holder, acquired_at=tx.now, expires_at=expires, extra=extra or {})
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:
        return True
    try:
        async with tx.session.begin_nested():
            tx.session.add(LeaseRow(name=name, holder=holder, acquired_at=tx.now, expires_at=expires, extra=extra or {}))
            await tx.session.flush()
    except IntegrityError:
        return False
    return True


async def release(tx: Tx, name: str, holder: str) -> bool:
    result = await tx.session.execute(
        delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def list_leases(tx: Tx) -> list[Lease]:
    rows = (await tx.session.scalars(select(LeaseRow).order_by(LeaseRow.name))).all()
    return [Lease(r.name, r.holder, r.acquired_at, r.expires_at, dict(r.extra or {})) for r in rows]
