"""Durable stores for the built-in sandbox and the Bakong token, in the engine's own database.

``DatabaseTransferStore`` keeps the embedded sandbox's transfers in ``sandbox_transfers`` so a
payment "paid" in the console survives a restart and is visible to a daemon sharing the database.
``DatabaseTokenStore`` keeps the current Bakong token encrypted in ``secrets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from engine.bakong.sandbox.store import SandboxTransfer
from engine.db.models import SandboxTransferRow
from engine.db.state import get_secret, set_secret
from engine.db.storage import Storage

__all__ = ["DatabaseTokenStore", "DatabaseTransferStore"]


def _transfer(row: SandboxTransferRow) -> SandboxTransfer:
    return SandboxTransfer(
        hash=row.hash,
        md5=row.md5,
        from_account=row.from_account,
        to_account=row.to_account,
        currency=row.currency,
        amount=Decimal(row.amount),
        created_ms=row.created_ms,
        acknowledged_ms=row.acknowledged_ms,
        external_ref=row.external_ref,
        instruction_ref=row.instruction_ref,
        description=row.description,
        tracking_status=row.tracking_status,
        static_qr=row.static_qr,
    )


class DatabaseTransferStore:
    """The sandbox's TransferStore on the ``sandbox_transfers`` table."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def add(self, transfer: SandboxTransfer) -> None:
        async with self.storage.transaction() as tx:
            tx.session.add(
                SandboxTransferRow(
                    hash=transfer.hash,
                    md5=transfer.md5,
                    short_hash=transfer.short_hash,
                    from_account=transfer.from_account,
                    to_account=transfer.to_account,
                    currency=transfer.currency,
                    amount=str(transfer.amount),
                    description=transfer.description,
                    external_ref=transfer.external_ref,
                    instruction_ref=transfer.instruction_ref,
                    tracking_status=transfer.tracking_status,
                    created_ms=transfer.created_ms,
                    acknowledged_ms=transfer.acknowledged_ms,
                    static_qr=transfer.static_qr,
                )
            )

    async def _rows(self, *conds: Any, visible_at_ms: int, limit: int | None = None) -> list[SandboxTransfer]:
        stmt = (
            select(SandboxTransferRow)
            .where(*conds, SandboxTransferRow.created_ms <= visible_at_ms)
            .order_by(SandboxTransferRow.created_ms)
        )
        if limit:
            stmt = stmt.limit(limit)
        async with self.storage.read() as tx:
            return [_transfer(r) for r in (await tx.session.scalars(stmt)).all()]

    async def by_md5s(self, md5s: Sequence[str], *, visible_at_ms: int) -> dict[str, SandboxTransfer]:
        wanted = [m.lower() for m in md5s]
        if not wanted:
            return {}
        found: dict[str, SandboxTransfer] = {}
        for t in await self._rows(SandboxTransferRow.md5.in_(wanted), visible_at_ms=visible_at_ms):
            found.setdefault(t.md5, t)  # the first transfer of an MD5 is the one Bakong reports
        return found

    async def by_hashes(self, hashes: Sequence[str], *, visible_at_ms: int) -> dict[str, SandboxTransfer]:
        wanted = [h.lower() for h in hashes]
        if not wanted:
            return {}
        return {t.hash: t for t in await self._rows(SandboxTransferRow.hash.in_(wanted), visible_at_ms=visible_at_ms)}

    async def by_short_hash(self, short_hash: str, amount: Decimal, currency: str, *, visible_at_ms: int) -> SandboxTransfer | None:
        for t in await self._rows(
            SandboxTransferRow.short_hash == short_hash.lower(), SandboxTransferRow.currency == currency, visible_at_ms=visible_at_ms
        ):
            if t.amount == amount:
                return t
        return None

    async def by_external_ref(self, external_ref: str, *, visible_at_ms: int) -> SandboxTransfer | None:
        rows = await self._rows(SandboxTransferRow.external_ref == external_ref, visible_at_ms=visible_at_ms, limit=1)
        return rows[0] if rows else None

    async def by_instruction_ref(self, instruction_ref: str, *, visible_at_ms: int) -> SandboxTransfer | None:
        rows = await self._rows(SandboxTransferRow.instruction_ref == instruction_ref, visible_at_ms=visible_at_ms, limit=1)
        return rows[0] if rows else None

    async def recent(self, limit: int = 50) -> list[SandboxTransfer]:
        stmt = select(SandboxTransferRow).order_by(SandboxTransferRow.created_ms.desc()).limit(limit)
        async with self.storage.read() as tx:
            return [_transfer(r) for r in (await tx.session.scalars(stmt)).all()]


class DatabaseTokenStore:
    """The Bakong token, encrypted at rest in ``secrets`` under one name."""

    def __init__(self, storage: Storage, name: str = "bakong.token") -> None:
        self.storage = storage
        self.name = name

    async def load(self) -> str | None:
        async with self.storage.read() as tx:
            return await get_secret(tx, self.name)

    async def save(self, token: str) -> None:
        async with self.storage.transaction() as tx:
            await set_secret(tx, self.name, token)
