"""API keys in the database: insert, look up by prefix, list, revoke, note use.

Only the SHA-256 of a key is stored (``secret_hash``); the plaintext exists once, when it is
created. The ``prefix`` (unique) finds the row; the caller compares hashes in constant time.
Creation and revocation are audited in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine.db.journal import audit
from engine.db.models import ApiKeyRow
from engine.db.storage import Tx
from engine.errors import Conflict, InvalidTransition, NotFound
from engine.records import Actor, ApiKey

__all__ = ["get", "get_by_prefix", "insert", "list_keys", "revoke", "touch"]


def _to_record(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(row.scopes or ()),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _audit_view(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "scopes": list(key.scopes)}


async def insert(
    tx: Tx, *, actor: Actor, name: str, prefix: str, secret_hash: str, scopes: Sequence[str]
) -> ApiKey:
    """A new active key; a name already used by an active key, or a taken prefix, is a Conflict."""
    taken = await tx.session.scalar(
        select(ApiKeyRow.id).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
    )
    if taken is not None:
        raise Conflict(f"an active API key named {name!r} already exists ({taken})")
    row = ApiKeyRow(
        id=tx.ids.new("key"),
        name=name,
        prefix=prefix,
        secret_hash=secret_hash,
        scopes=list(scopes),
        created_at=tx.now,
        last_used_at=None,
        revoked_at=None,
    )
    try:
        async with tx.session.begin_nested():
            tx.session.add(row)
            await tx.session.flush()
    except IntegrityError:
        raise Conflict("an API key with this prefix already exists") from None
    key = _to_record(row)
    await audit(tx, actor, "api_key.create", "api_key", key.id, after=_audit_view(key))
    return key


async def get(tx: Tx, key_id: str) -> ApiKey:
    row = await tx.session.get(ApiKeyRow, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    return _to_record(row)


async def get_by_prefix(tx: Tx, prefix: str) -> tuple[ApiKey, str] | None:
    """The key with this prefix and its stored hash (revoked keys included: the caller decides)."""
    row = (
        await tx.session.execute(
            select(
                ApiKeyRow.id, ApiKeyRow.name, ApiKeyRow.prefix, ApiKeyRow.scopes, ApiKeyRow.created_at,
                ApiKeyRow.last_used_at, ApiKeyRow.revoked_at, ApiKeyRow.secret_hash,
            ).where(ApiKeyRow.prefix == prefix)
        )
    ).first()  # fmt: skip
    if row is None:
        return None
    return _to_record(row), row.secret_hash


async def list_keys(tx: Tx, *, include_revoked: bool = True) -> list[ApiKey]:
    """Oldest first."""
    stmt = select(ApiKeyRow)
    if not include_revoked:
        stmt = stmt.where(ApiKeyRow.revoked_at.is_(None))
    rows = (await tx.session.scalars(stmt.order_by(ApiKeyRow.created_at, ApiKeyRow.id))).all()
    return [_to_record(r) for r in rows]


async def revoke(tx: Tx, key_id: str, *, actor: Actor, reason: str | None = None) -> ApiKey:
    """Revoke an active key (conditional update); revoking a revoked key is an InvalidTransition."""
    row = await tx.session.get(ApiKeyRow, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    before = _to_record(row)
    result = await tx.session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise InvalidTransition(f"API key {key_id} ({before.name}) is already revoked")
    await tx.session.refresh(row)
    after = _to_record(row)
    await audit(
        tx, actor, "api_key.revoke", "api_key", key_id,
        before=_audit_view(before), after={**_audit_view(after), "revoked": True}, reason=reason,
    )  # fmt: skip
    return after


async def touch(tx: Tx, key_id: str, at: datetime) -> None:
    """Record that the key was used (bookkeeping, not audited)."""
    await tx.session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.id == key_id)
        .values(last_used_at=at)
        .execution_options(synchronize_session=False)
    )
