"""SQLAlchemy statements compiled once per database, for running straight on the driver.

Through a session, each statement costs a few hundred microseconds of SQLAlchemy machinery
(ORM execution, execution context, result objects) around tens of microseconds of SQLite work.
The hottest statements (a payment's row and history, the audit row, the event, the status read
by MD5) are module-level constants, so they are compiled here once, with SQLAlchemy: the SQL,
the column types and their bind and result processors stay SQLAlchemy's, and a value is written
and read exactly as it would be through a session (JSON encoded, datetimes timezone-aware).

``Tx.execute`` (writes inside a transaction) and ``PointRead`` (single-row reads) run them.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from engine.db.database import Database

__all__ = ["Compiled"]

_Processor = Callable[[Any], Any] | None

#: Compiled statements kept per database (the hot ones are a handful of module-level constants).
_CACHE_LIMIT = 256
_CACHE: weakref.WeakKeyDictionary[Database, dict[tuple[int, tuple[str, ...] | None], Compiled]] = weakref.WeakKeyDictionary()


class Compiled:
    """One statement compiled for ``db``'s dialect; an INSERT for exactly the given ``keys``."""

    @classmethod
    def of(cls, db: Database, statement: Executable, keys: tuple[str, ...] | None = None) -> Compiled:
        """The statement compiled for ``db``, once per set of keys (statements are constants)."""
        cache = _CACHE.setdefault(db, {})
        found = cache.get((id(statement), keys))
        if found is None or found.statement is not statement:
            if len(cache) >= _CACHE_LIMIT:  # statements built per call: compiled, but not hoarded
                cache.clear()
            found = cache[(id(statement), keys)] = cls(db, statement, keys)
        return found

    def __init__(self, db: Database, statement: Executable, keys: tuple[str, ...] | None) -> None:
        dialect = db.engine.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        self.statement = statement
        self.sql: str = compiled.string
        # values for parameters not given: Python-side column defaults, values in the statement
        self._defaults: dict[str, Any] = {}
        for column in getattr(compiled, "insert_prefetch", ()):
            if column.default is None or not column.default.is_scalar:
                raise TypeError(f"{column} has a default computed at execution, which a compiled statement cannot supply")
            self._defaults[column.key] = column.default.arg
        self._binds: list[tuple[str, _Processor]] = []
        for name in compiled.positiontup or []:
            bind = compiled.binds[name]
            self._binds.append((name, bind.type.dialect_impl(dialect).bind_processor(dialect)))
            if not bind.required and name not in self._defaults:
                self._defaults[name] = bind.effective_value  # a value written into the statement
        returned = list(getattr(statement, "exported_columns", ()))  # a SELECT's columns, or RETURNING's
        self.returns = bool(returned)
        self._columns: list[tuple[str, _Processor]] = [
            (column.key, column.type.dialect_impl(dialect).result_processor(dialect, None)) for column in returned
        ]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional parameters, each through its column type's bind processor."""
        out = []
        defaults = self._defaults
        for name, process in self._binds:
            value = params[name] if name in params or name not in defaults else defaults[name]
            out.append(process(value) if process is not None else value)
        return out

    def record(self, row: Sequence[Any]) -> SimpleNamespace:
        """A returned row as attributes, each value through its column type's result processor."""
        values = {}
        for (key, process), value in zip(self._columns, row, strict=True):
            values[key] = process(value) if process is not None and value is not None else value
        return SimpleNamespace(**values)

    async def fetchone(self, fetch: Callable[[str, list[Any]], Awaitable[Any]], params: Mapping[str, Any]) -> SimpleNamespace | None:
        """Run through a driver's ``fetch(sql, args)`` (its first row or None); the returned row as
        attributes, or None. The driver's own exceptions are raised as SQLAlchemy's
        (``IntegrityError``, ``OperationalError``...), as a session would have raised them, so
        callers and ``storage_errors`` treat both alike."""
        args = self.args(params)
        try:
            row = await fetch(self.sql, args)
        except DBAPIError:
            raise  # already SQLAlchemy's (a pool checkout, for one)
        except Exception as exc:
            raise DBAPIError.instance(self.sql, args, exc, Exception, hide_parameters=True) from exc
        return self.record(row) if row is not None and self.returns else None
