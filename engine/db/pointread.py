"""Single-row reads by a unique key on the driver's own connection, without a session.

The API's hottest read (a payment's status by MD5) is one indexed row. Through an
``AsyncSession`` it cost about half a millisecond of SQLAlchemy machinery (session, unit of
work, execution context, result objects) around some tens of microseconds of database work.
A ``PointRead`` compiles its SELECT once with SQLAlchemy, so the SQL and the column types stay
SQLAlchemy's, and then runs it straight on the driver:

- SQLite: on a read-only connection per event loop (``Database.point_reader``), whose busy
  waits are asyncio sleeps like every other statement's (see ``sqlite_driver``);
- PostgreSQL: on a pooled connection's asyncpg handle (its own prepared-statement cache).

Values go through the columns' own bind and result processors, so a row reads exactly as it
does through a session (timezone-aware datetimes, decoded JSON).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select

from engine.db.database import Database, storage_errors

__all__ = ["PointRead"]

_Processor = Callable[[Any], Any] | None

_COMPILED: weakref.WeakKeyDictionary[Database, dict[int, PointRead]] = weakref.WeakKeyDictionary()


class PointRead:
    """One SELECT returning at most one row, compiled for ``db``'s dialect."""

    @classmethod
    def of(cls, db: Database, statement: Select[Any]) -> PointRead:
        """The statement compiled for ``db``, once (statements are module-level constants)."""
        compiled = _COMPILED.setdefault(db, {})
        read = compiled.get(id(statement))
        if read is None or read.statement is not statement:
            read = compiled[id(statement)] = cls(db, statement)
        return read

    def __init__(self, db: Database, statement: Select[Any]) -> None:
        dialect = db.engine.dialect
        compiled = statement.compile(dialect=dialect)
        self.db = db
        self.statement = statement
        self.sql = compiled.string
        order = compiled.positiontup or []
        self._binds: list[tuple[str, _Processor]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in order
        ]
        self._columns: list[tuple[str, _Processor]] = [
            (column.key, column.type.dialect_impl(dialect).result_processor(dialect, None))
            for column in statement.selected_columns
        ]

    def _params(self, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, process in self._binds:
            value = params[name]
            out.append(process(value) if process is not None else value)
        return out

    def _record(self, row: Any) -> SimpleNamespace:
        values = {}
        for (key, process), value in zip(self._columns, row, strict=True):
            values[key] = process(value) if process is not None and value is not None else value
        return SimpleNamespace(**values)

    async def one(self, params: Mapping[str, Any]) -> SimpleNamespace | None:
        """The row (columns as attributes), or None."""
        args = self._params(params)
        async with storage_errors(self.db):
            if self.db.is_memory:  # a second connection would see another, empty database
                async with self.db.lookup() as session:
                    found = (await session.execute(self.statement, dict(params))).first()
                return None if found is None else SimpleNamespace(**found._mapping)
            if self.db.is_sqlite:
                reader = await self.db.point_reader()
                row = await reader.fetchone(self.sql, args)
            else:
                async with self.db.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    row = await raw.driver_connection.fetchrow(self.sql, *args)  # type: ignore[union-attr]
        return None if row is None else self._record(row)
