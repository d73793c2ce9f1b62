"""Data key rotation: re-encrypt every secret at rest with the active key.

Each encrypted column is listed once here with the associated-data context it is sealed under;
a value is rewritten only when it names an older key, so a rotation can be re-run safely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from engine.db.models import PaymentRow, SecretRow, WebhookEndpointRow
from engine.db.storage import Storage

__all__ = ["ENCRYPTED_COLUMNS", "reencrypt_all"]


@dataclass(frozen=True)
class EncryptedColumn:
    model: type
    column: str
    context: Callable[[object], str]


ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn(PaymentRow, "payer_account_enc", lambda row: "payments.payer_account"),
    EncryptedColumn(WebhookEndpointRow, "secret_enc", lambda row: "webhook_endpoints.secret"),
    EncryptedColumn(WebhookEndpointRow, "previous_secret_enc", lambda row: "webhook_endpoints.secret"),
    EncryptedColumn(SecretRow, "value_enc", lambda row: f"secrets.{row.name}"),  # type: ignore[attr-defined]
)


async def reencrypt_all(storage: Storage, *, batch: int = 500) -> int:
    """Rewrite every value sealed with a non-active key; returns how many were rewritten."""
    cipher = storage.cipher
    rewritten = 0
    for col in ENCRYPTED_COLUMNS:
        attr = getattr(col.model, col.column)
        while True:
            async with storage.transaction() as tx:
                rows = (
                    await tx.session.scalars(
                        select(col.model)
                        .where(attr.is_not(None), ~attr.like(f"v1:{cipher.active_id}:%"))
                        .limit(batch)
                    )
                ).all()
                for row in rows:
                    ctx = col.context(row)
                    plain = cipher.decrypt(getattr(row, col.column), context=ctx)
                    setattr(row, col.column, cipher.encrypt(plain, context=ctx))
                rewritten += len(rows)
            if len(rows) < batch:
                break
    return rewritten
