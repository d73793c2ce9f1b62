"""Single-row reads by a unique key on the driver's own connection, without a session.

The API's hottest read (a payment's status by MD5) is one indexed row; through an
``AsyncSession`` it cost about half a millisecond of SQLAlchemy machinery around some tens of
microseconds of database work. A ``PointRead`` runs its SELECT, compiled once (``Compiled``),
straight on the driver:

- SQLite: on a read-only connection per event loop (``Database.point_reader``), whose busy
  waits are asyncio sleeps like every other statement's (see ``sqlite_driver``);
- PostgreSQL: on a raw asyncpg connection of ``Database.point_pool`` (see ``point_pool``: no
  SQLAlchemy checkout, checkin or reset around it), whose prepared-statement cache makes the
  SELECT one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select

from engine.db.compiled import Compiled
from engine.db.database import Database, storage_errors

__all__ = ["PointRead"]


class PointRead:
    """One SELECT returning at most one row, compiled for ``db``'s dialect."""

    @classmethod
    def of(cls, db: Database, statement: Select[Any]) -> PointRead:
        return cls(db, statement, Compiled.of(db, statement))

    def __init__(self, db: Database, statement: Select[Any], compiled: Compiled) -> None:
        self.db = db
        self.statement = statement
        self.compiled = compiled

    async def one(self, params: Mapping[str, Any]) -> SimpleNamespace | None:
        """The row (columns as attributes), or None."""
        async with storage_errors(self.db):
            if self.db.is_memory:  # a second connection would see another, empty database
                async with self.db.lookup() as session:
                    found = (await session.execute(self.statement, dict(params))).first()
                return None if found is None else SimpleNamespace(**found._mapping)
            if self.db.is_sqlite:
                reader = await self.db.point_reader()
                return await self.compiled.fetchone(reader.fetchone, params)
            assert self.db.point_pool is not None
            return await self.compiled.fetchone(self.db.point_pool.fetchrow, params)
