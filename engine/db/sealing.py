"""Personal data inside JSON columns, sealed at rest: the payer's account in event payloads
(the outbox and change feed) and in audit rows.

A payer account is personal data the engine keeps encrypted (``payments.payer_account_enc``);
the event log and the audit log carry the payment as the backend sees it, so the same account
would otherwise sit there in clear. ``seal`` replaces each ``payer_account`` value (at any depth)
with ``{"sealed": <AES-256-GCM ciphertext>}`` before a row is written; ``unseal`` puts the clear
value back when a row is read for the faces, the bus or a webhook body, so nothing downstream
changes. ``seal_existing_rows`` seals what was written before this existed (run by `db upgrade`,
which has the data key; a migration does not).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, select, update

from engine.crypto import DataCipher
from engine.db.models import AuditLogRow, EventRow
from engine.db.storage import Storage

__all__ = ["SEALED_FIELDS", "seal", "seal_existing_rows", "unseal"]

#: Keys whose values are sealed wherever they appear in an event payload or an audit row.
SEALED_FIELDS = frozenset({"payer_account"})
_CONTEXT = "journal.payer_account"
_MARK = "sealed"


def seal(cipher: DataCipher, value: Any) -> Any:
    """``value`` with every clear sealed field encrypted (a new object; the input is untouched)."""
    if isinstance(value, dict):
        return {
            k: ({_MARK: cipher.encrypt(v, context=_CONTEXT)} if k in SEALED_FIELDS and isinstance(v, str) else seal(cipher, v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [seal(cipher, v) for v in value]
    return value


def unseal(cipher: DataCipher, value: Any) -> Any:
    """``value`` with every sealed field decrypted back to its clear text."""
    if isinstance(value, dict):
        return {k: (_open(cipher, v) if k in SEALED_FIELDS else unseal(cipher, v)) for k, v in value.items()}
    if isinstance(value, list):
        return [unseal(cipher, v) for v in value]
    return value


def _open(cipher: DataCipher, value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get(_MARK), str) and len(value) == 1:
        return cipher.decrypt(value[_MARK], context=_CONTEXT)
    return value


def _has_clear(value: Any) -> bool:
    if isinstance(value, dict):
        return any((k in SEALED_FIELDS and isinstance(v, str)) or _has_clear(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_clear(v) for v in value)
    return False


async def seal_existing_rows(storage: Storage, *, batch: int = 500) -> int:
    """Seal the payer accounts written in clear before sealing existed (events, audit rows); returns
    how many rows changed. Only rows whose JSON text names the field are read; run again, it
    changes nothing."""
    changed = 0
    for table, columns in ((EventRow, ("payload",)), (AuditLogRow, ("before", "after"))):
        last = 0
        while True:
            async with storage.transaction(events=False) as tx:
                named = [cast(getattr(table, c), String).like('%"payer_account"%') for c in columns]
                rows = (
                    await tx.session.execute(
                        select(table.__table__.c[_pk(table)], *(getattr(table, c) for c in columns))
                        .where(table.__table__.c[_pk(table)] > last)
                        .where(named[0] if len(named) == 1 else named[0] | named[1])
                        .order_by(table.__table__.c[_pk(table)])
                        .limit(batch)
                    )
                ).all()
                for row in rows:
                    values = {c: seal(tx.cipher, row[i + 1]) for i, c in enumerate(columns) if _has_clear(row[i + 1])}
                    if values:
                        await tx.session.execute(
                            update(table).where(table.__table__.c[_pk(table)] == row[0]).values(**values)
                            .execution_options(synchronize_session=False)
                        )  # fmt: skip
                        changed += 1
            if len(rows) < batch:
                break
            last = rows[-1][0]
    return changed


def _pk(table: type[EventRow] | type[AuditLogRow]) -> str:
    return "sequence" if table is EventRow else "id"
