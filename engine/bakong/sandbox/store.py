"""The sandbox's transfers: what a pretend bank app "paid", and where that is kept.

``TransferStore`` is the small interface the sandbox needs; ``InMemoryTransferStore`` serves tests
and throwaway runs, ``FileTransferStore`` a standalone ``sandbox serve --store FILE`` (JSON lines,
appended), and the storage layer implements it on the project's database so a console and a daemon
sharing one database see one sandbox.

Every lookup takes ``visible_at_ms``: a transfer exists for Bakong only from its ``created_ms`` on,
so a payment scheduled "late" stays invisible until its time comes. When one MD5 was paid more than
once, lookups return the earliest visible transfer, as Bakong returns one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "FileTransferStore",
    "InMemoryTransferStore",
    "SandboxTransfer",
    "TransferStore",
]


@dataclass(frozen=True)
class SandboxTransfer:
    """One transfer recorded by the sandbox. ``amount`` is in major units, exact."""

    hash: str
    md5: str
    from_account: str
    to_account: str
    currency: str
    amount: Decimal
    created_ms: int
    acknowledged_ms: int
    external_ref: str | None = None
    instruction_ref: str | None = None
    description: str | None = None
    #: "SUCCESS", or "FAILED_AT_ACH" for a transfer that failed.
    tracking_status: str | None = "SUCCESS"
    #: Paid from a static KHQR: Bakong cannot find it by MD5.
    static_qr: bool = False

    @property
    def short_hash(self) -> str:
        return self.hash[:8]

    @property
    def failed(self) -> bool:
        return (self.tracking_status or "").upper().startswith("FAILED")

    def to_record(self) -> dict[str, Any]:
        """Plain JSON-able data (amount as a decimal string)."""
        record = asdict(self)
        record["amount"] = str(self.amount)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SandboxTransfer:
        data = dict(record)
        data["amount"] = Decimal(str(data["amount"]))
        return cls(**data)


class TransferStore(Protocol):
    """Where the sandbox keeps its transfers."""

    async def add(self, transfer: SandboxTransfer) -> None:
        """Record a new transfer (its hash is unique)."""

    async def by_md5s(self, md5s: Sequence[str], *, visible_at_ms: int) -> dict[str, SandboxTransfer]:
        """For each MD5 that has one, its earliest transfer created at or before ``visible_at_ms``."""

    async def by_hashes(self, hashes: Sequence[str], *, visible_at_ms: int) -> dict[str, SandboxTransfer]:
        """The visible transfers with these full hashes."""

    async def by_short_hash(
        self, short_hash: str, amount: Decimal, currency: str, *, visible_at_ms: int
    ) -> SandboxTransfer | None:
        """The earliest visible transfer whose hash starts with ``short_hash`` with this amount and currency."""

    async def by_external_ref(self, external_ref: str, *, visible_at_ms: int) -> SandboxTransfer | None: ...

    async def by_instruction_ref(self, instruction_ref: str, *, visible_at_ms: int) -> SandboxTransfer | None: ...

    async def recent(self, limit: int = 50) -> list[SandboxTransfer]:
        """The latest transfers, newest first (visible or not)."""


class InMemoryTransferStore:
    """Transfers in memory, indexed for the lookups (dict hits; the bulk path stays cheap)."""

    def __init__(self, transfers: Iterable[SandboxTransfer] = ()) -> None:
        self._by_hash: dict[str, SandboxTransfer] = {}
        self._by_md5: dict[str, list[SandboxTransfer]] = {}
        self._by_short: dict[str, list[SandboxTransfer]] = {}
        self._by_external: dict[str, list[SandboxTransfer]] = {}
        self._by_instruction: dict[str, list[SandboxTransfer]] = {}
        self._order: list[SandboxTransfer] = []
        for transfer in transfers:
            self._index(transfer)

    def __len__(self) -> int:
        return len(self._order)

    def _index(self, transfer: SandboxTransfer) -> None:
        if transfer.hash in self._by_hash:
            raise ValueError(f"duplicate transfer hash {transfer.hash}")
        self._by_hash[transfer.hash] = transfer
        self._order.append(transfer)
        for index, key in (
            (self._by_md5, transfer.md5),
            (self._by_short, transfer.short_hash),
            (self._by_external, transfer.external_ref),
            (self._by_instruction, transfer.instruction_ref),
        ):
            if key:
                bucket = index.setdefault(key, [])
                bucket.append(transfer)
                bucket.sort(key=lambda t: t.created_ms)

    @staticmethod
    def _first(bucket: list[SandboxTransfer] | None, visible_at_ms: int) -> SandboxTransfer | None:
        if bucket:
            for transfer in bucket:
                if transfer.created_ms <= visible_at_ms:
                    return transfer
        return None

    async def add(self, transfer: SandboxTransfer) -> None:
        self._index(transfer)

    async def by_md5s(self, md5s: Sequence[str], *, visible_at_ms: int) -> dict[str, SandboxTransfer]:
        found: dict[str, SandboxTransfer] = {}
        index = self._by_md5
        for md5 in md5s:
            bucket = index.get(md5)
            if bucket is not None:
                transfer = self._first(bucket, visible_at_ms)
                if transfer is not None:
                    found[md5] = transfer
        return found

    async def by_hashes(self, hashes: Sequence[str], *, visible_at_ms: int) -> dict[str, SandboxTransfer]:
        found: dict[str, SandboxTransfer] = {}
        for tx_hash in hashes:
            transfer = self._by_hash.get(tx_hash)
            if transfer is not None and transfer.created_ms <= visible_at_ms:
                found[tx_hash] = transfer
        return found

    async def by_short_hash(
        self, short_hash: str, amount: Decimal, currency: str, *, visible_at_ms: int
    ) -> SandboxTransfer | None:
        for transfer in self._by_short.get(short_hash, ()):
            if transfer.created_ms <= visible_at_ms and transfer.amount == amount and transfer.currency == currency:
                return transfer
        return None

    async def by_external_ref(self, external_ref: str, *, visible_at_ms: int) -> SandboxTransfer | None:
        return self._first(self._by_external.get(external_ref), visible_at_ms)

    async def by_instruction_ref(self, instruction_ref: str, *, visible_at_ms: int) -> SandboxTransfer | None:
        return self._first(self._by_instruction.get(instruction_ref), visible_at_ms)

    async def recent(self, limit: int = 50) -> list[SandboxTransfer]:
        return list(reversed(self._order[-limit:])) if limit > 0 else []


class FileTransferStore(InMemoryTransferStore):
    """Transfers kept in a JSON-lines file (one transfer per line, appended and flushed to disk).

    The file is read once when the store opens; a torn last line (a crash mid-write) is skipped.
    One sandbox process owns the file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        transfers = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line:
                    continue
                try:
                    transfers.append(SandboxTransfer.from_record(json.loads(line)))
                except (ValueError, TypeError, KeyError):
                    continue
        super().__init__(transfers)

    async def add(self, transfer: SandboxTransfer) -> None:
        if transfer.hash in self._by_hash:
            raise ValueError(f"duplicate transfer hash {transfer.hash}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(transfer.to_record(), separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._index(transfer)
