"""Small named state shared between processes, and named secrets encrypted at rest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.db.models import EngineStateRow, SecretRow
from engine.db.storage import Tx

__all__ = ["get_secret", "get_state", "list_secrets", "set_secret", "set_state"]


async def get_state(tx: Tx, name: str) -> dict[str, Any] | None:
    row = await tx.session.get(EngineStateRow, name)
    return dict(row.value) if row else None


async def set_state(tx: Tx, name: str, value: dict[str, Any]) -> None:
    row = await tx.session.get(EngineStateRow, name)
    if row is None:
        tx.session.add(EngineStateRow(name=name, value=value, updated_at=tx.now))
    else:
        row.value = value
        row.updated_at = tx.now
    await tx.session.flush()


def _context(name: str) -> str:
    return f"secrets.{name}"


async def get_secret(tx: Tx, name: str) -> str | None:
    row = await tx.session.get(SecretRow, name)
    return tx.cipher.decrypt(row.value_enc, context=_context(name)) if row else None


async def set_secret(tx: Tx, name: str, value: str) -> None:
    enc = tx.cipher.encrypt(value, context=_context(name))
    row = await tx.session.get(SecretRow, name)
    if row is None:
        tx.session.add(SecretRow(name=name, value_enc=enc, updated_at=tx.now))
    else:
        row.value_enc = enc
        row.updated_at = tx.now
    await tx.session.flush()


async def list_secrets(tx: Tx) -> list[str]:
    return list((await tx.session.scalars(select(SecretRow.name).order_by(SecretRow.name))).all())
