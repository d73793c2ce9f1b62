"""Opening storage from settings: the cipher, the database, and a schema at head."""

from __future__ import annotations

from engine.clock import Clock
from engine.config import Settings
from engine.crypto import load_data_cipher
from engine.db.database import Database
from engine.db.migrate import ensure_schema
from engine.db.storage import Storage
from engine.ids import IdFactory

__all__ = ["open_storage"]


async def open_storage(settings: Settings, *, clock: Clock, ids: IdFactory | None = None, migrate: bool | None = None) -> Storage:
    """Storage ready to use. The embedded SQLite default is migrated on first start; other
    databases must be at head already (``migrate=True`` forces an upgrade)."""
    cipher = load_data_cipher(settings)
    db = Database(settings.database_url, busy_timeout=settings.database.sqlite_busy_timeout, pool_size=settings.database.pool_size, echo=settings.database.echo)
    try:
        await ensure_schema(db, auto_upgrade=settings.uses_embedded_database if migrate is None else migrate)
    except BaseException:
        await db.dispose()
        raise
    return Storage(db, clock=clock, cipher=cipher, ids=ids)
