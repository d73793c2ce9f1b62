"""An aiosqlite-compatible SQLite connection that costs one thread hop per statement.

SQLAlchemy's aiosqlite dialect drives whatever ``async_creator`` returns through aiosqlite's
interface. aiosqlite itself hops to its thread for every DB-API call: making a cursor, executing,
fetching, closing, so a four-statement write transaction cost about seventeen hops, and on a
busy machine each hop (a queue put, a thread wake-up, a self-pipe write, an event-loop turn) costs
far more than the SQLite work it carries. This connection keeps the work off the event loop on
its own thread, as aiosqlite does, but:

- a cursor is made on the event loop (it is a Python object; nothing touches SQLite);
- ``execute`` runs the statement and fetches its rows in one hop;
- ``close`` of a cursor is free (the rows are already fetched);
- ``commit`` and ``rollback`` outside a transaction are free (autocommit reads have nothing to end).

The sqlite3 connection is only ever used from its one worker thread, one call at a time.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["Connection", "connect"]


class Cursor:
    """A DB-API cursor whose statements run on the connection's thread, rows fetched at once."""

    arraysize = 1

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _run(self, op: str, params: Any, many: bool) -> None:
        cur = self._conn._sqlite.cursor()
        try:
            if many:
                cur.executemany(op, params)
            elif params is None:
                cur.execute(op)
            else:
                cur.execute(op, params)
            self.description = cur.description
            self._rows = cur.fetchall() if cur.description else []
            self.rowcount = cur.rowcount
            self.lastrowid = cur.lastrowid
        finally:
            cur.close()

    async def execute(self, op: str, params: Any = None) -> Cursor:
        await self._conn._call(self._run, op, params, False)
        return self

    async def executemany(self, op: str, seq_of_params: Sequence[Any]) -> Cursor:
        await self._conn._call(self._run, op, seq_of_params, True)
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = size or self.arraysize
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    async def close(self) -> None:
        self._rows = []


class _Immediate:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's isolation-level setter uses."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        done = self._conn._executor.submit(function)
        asyncio.futures._chain_future(done, future)  # type: ignore[attr-defined]


class Connection:
    """The subset of ``aiosqlite.Connection`` that SQLAlchemy's aiosqlite dialect uses."""

    def __init__(self, database: str, **kwargs: Any) -> None:
        self._database = database
        self._kwargs = kwargs
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._sqlite: sqlite3.Connection | None = None
        self._tx = _Immediate(self)

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wrap_future(self._executor.submit(function, *args))

    def __await__(self) -> Any:
        return self._open().__await__()

    async def _open(self) -> Connection:
        # Made and used on the worker thread only; check_same_thread would refuse close() on stop().
        kwargs = {**self._kwargs, "check_same_thread": False}
        self._sqlite = await self._call(lambda: sqlite3.connect(self._database, **kwargs))
        return self

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._sqlite is not None
        return self._sqlite

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._sqlite

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._sqlite is not None and self._sqlite.in_transaction

    def cursor(self) -> Cursor:
        return Cursor(self)

    async def commit(self) -> None:
        if self.in_transaction:
            await self._call(self._conn.commit)

    async def rollback(self) -> None:
        if self.in_transaction:
            await self._call(self._conn.rollback)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        await self._call(lambda: self._conn.create_function(*args, **kwargs))

    async def close(self) -> None:
        if self._sqlite is None:
            return
        conn, self._sqlite = self._sqlite, None
        try:
            await asyncio.wrap_future(self._executor.submit(conn.close))
        finally:
            self._executor.shutdown(wait=False)

    def stop(self) -> None:
        """Terminate without waiting (SQLAlchemy's pool calls this for a connection it gives up)."""
        conn, self._sqlite = self._sqlite, None
        if conn is not None:
            self._executor.submit(conn.close)
        self._executor.shutdown(wait=False)


def connect(database: str, **kwargs: Any) -> Connection:
    return Connection(database, **kwargs)
