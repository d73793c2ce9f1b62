"""Idempotent requests in the database: claim a key, fill in its answer, give it up.

A claim is one INSERT: the primary key (scope, operation, key) lets exactly one of several
concurrent requests with one key through; the others read the row it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.db.models import IdempotentRequestRow
from engine.db.storage import Tx

__all__ = ["StoredRequest", "claim", "forget", "settle"]

_T = IdempotentRequestRow


@dataclass(frozen=True)
class StoredRequest:
    """A request made earlier with the same key: its fingerprint and answer (None: still running)."""

    fingerprint: str
    response: dict[str, Any] | None


def _this(scope: str, operation: str, key: str) -> Any:
    return (_T.scope == scope) & (_T.operation == operation) & (_T.key == key)


async def claim(tx: Tx, scope: str, operation: str, key: str, fingerprint: str) -> StoredRequest | None:
    """Claim the key for this request; None when claimed, else what the earlier request left."""
    try:
        async with tx.session.begin_nested():
            await tx.session.execute(
                insert(_T).values(scope=scope, operation=operation, key=key, fingerprint=fingerprint, response=None, created_at=tx.now)
            )
        return None
    except IntegrityError:
        row = (await tx.session.execute(select(_T.fingerprint, _T.response).where(_this(scope, operation, key)))).one()
        return StoredRequest(row.fingerprint, row.response)


async def settle(tx: Tx, scope: str, operation: str, key: str, response: dict[str, Any]) -> None:
    """Keep the answer of a claimed request, for its retries."""
    await tx.session.execute(update(_T).where(_this(scope, operation, key)).values(response=response))


async def forget(tx: Tx, scope: str, operation: str, key: str) -> None:
    """Give up the claim of a request that failed (a retry runs it again)."""
    await tx.session.execute(delete(_T).where(_this(scope, operation, key)))
