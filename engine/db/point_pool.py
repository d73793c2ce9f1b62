"""PostgreSQL: the asyncpg connections ``PointRead`` runs on, outside SQLAlchemy's pool.

A status read is one indexed SELECT outside any transaction. Through SQLAlchemy's pool, the
checkout and checkin around it (greenlet hops, the connection fairy, reset-on-return) cost about
three times the statement itself; asyncpg's own pool costs twice (a shielded task and a reset
query per release). Here a read takes an idle connection from a list and puts it back: nothing
to reset, since a single statement leaves no transaction or session state behind.

Per event loop (an asyncpg connection belongs to the loop that opened it), at most ``size``
connections, opened as concurrent reads need them; a read beyond that waits for one to come back.
Each connection decodes ``json``/``jsonb`` with the SQLAlchemy dialect's own codecs, so a row
reads exactly as it does through the engine. A connection that fails or is cancelled mid-read is
dropped; when the server has closed a connection that sat idle (a restart), the idle ones are
dropped with it and the read runs once more on a new connection, as SQLAlchemy's pool
invalidates itself on a disconnect.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from contextlib import suppress
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Dialect, make_url

__all__ = ["PointReadPool"]

#: URL query keys that configure SQLAlchemy's adapter, not ``asyncpg.connect``.
_ADAPTER_KEYS = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn")

#: Seconds a graceful close may take before the connection is cut.
_CLOSE_TIMEOUT = 5.0


class PointReadPool:
    """Raw asyncpg connections for single-statement reads: at most ``size`` per event loop."""

    def __init__(self, url: str, dialect: Dialect, *, size: int, timeout: float = 30.0) -> None:
        if not isinstance(dialect, PGDialect_asyncpg):
            raise TypeError(f"point reads on PostgreSQL run on asyncpg (postgresql+asyncpg://), not {dialect.driver}")
        if size < 1:
            raise ValueError(f"a point-read pool needs at least one connection, not {size}")
        _, options = dialect.create_connect_args(make_url(url))
        for key in _ADAPTER_KEYS:
            options.pop(key, None)
        self._options: dict[str, Any] = options
        self._dialect = dialect
        self.size = size
        self.timeout = timeout
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections] = weakref.WeakKeyDictionary()

    async def fetchrow(self, sql: str, args: list[Any]) -> asyncpg.Record | None:
        """The statement's first row, or None; asyncpg's exceptions as they are."""
        loop = asyncio.get_running_loop()
        connections = self._loops.get(loop)
        if connections is None:
            connections = self._loops[loop] = _LoopConnections(self)
        return await connections.fetchrow(sql, args)

    def open_count(self) -> int:
        """Connections open or being opened, over all event loops."""
        return sum(c.open for c in list(self._loops.values()))

    async def connect(self) -> asyncpg.Connection:
        """A new connection, its JSON codecs set up as SQLAlchemy sets up its own."""
        conn = await asyncpg.connect(**self._options)
        try:
            adapted = _Adapted(conn)
            await self._dialect.setup_asyncpg_json_codec(adapted)
            await self._dialect.setup_asyncpg_jsonb_codec(adapted)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def close(self) -> None:
        """Close every idle connection (gracefully on this loop, cut on another); connections in
        use are cut as their reads end. A later read opens new ones, as SQLAlchemy's engine
        reconnects after ``dispose()``."""
        running = asyncio.get_running_loop()
        loops, self._loops = list(self._loops.items()), weakref.WeakKeyDictionary()
        for loop, connections in loops:
            await connections.close(graceful=loop is running)


class _Adapted:
    """What the dialect's codec hooks expect: the driver connection as ``_connection``."""

    __slots__ = ("_connection",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._connection = conn


class _LoopConnections:
    """One event loop's connections: the idle ones, how many are open, the reads waiting.

    ``open`` counts slots: connections idle, in use or being opened. A read that finds none idle
    and no slot free waits; a connection given back goes to the first waiter, and a slot freed
    (a connection dropped, a connect that failed) is handed to it as ``None``: open one."""

    def __init__(self, pool: PointReadPool) -> None:
        self._pool = pool
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self.open = 0
        self.closed = False

    async def fetchrow(self, sql: str, args: list[Any]) -> asyncpg.Record | None:
        conn, reused = await self._acquire()
        try:
            row = await conn.fetchrow(sql, *args)
        except Exception as exc:
            lost = conn.is_closed()
            self._after_failure(conn, exc)
            if not (reused and lost):
                raise
        except BaseException:  # cancelled mid-read: asyncpg is still cancelling the query
            self._drop(conn)
            raise
        else:
            self._give_back(conn)
            return row
        # The server closed a connection that sat idle: most likely it closed the others too.
        self._drop_idle()
        conn, _ = await self._acquire()
        try:
            row = await conn.fetchrow(sql, *args)
        except BaseException as exc:
            self._after_failure(conn, exc)
            raise
        self._give_back(conn)
        return row

    def _after_failure(self, conn: asyncpg.Connection, exc: BaseException) -> None:
        if isinstance(exc, asyncpg.PostgresError):
            self._give_back(conn)  # the server refused the statement: the connection is ready
        else:
            self._drop(conn)

    async def _acquire(self) -> tuple[asyncpg.Connection, bool]:
        """A connection, and whether it was used before (an idle one, or one given back)."""
        while self._idle:
            conn = self._idle.pop()  # the most recently used: its statement cache is warm
            if not conn.is_closed():
                return conn, True
            self._free_slot()
        if self.open < self._pool.size:
            self.open += 1
            return await self._open_in_slot(), False
        waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._pool.timeout):
                conn = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()  # handed over as this read gave up: pass it on
                if handed is None:
                    self._free_slot()
                else:
                    self._give_back(handed)
            else:
                with suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise TimeoutError(
                    f"no connection for a point read came free within {self._pool.timeout:g} s "
                    f"({self._pool.size} in use: raise [database] pool_size)"
                ) from None
            raise
        if conn is None:
            return await self._open_in_slot(), False
        return conn, True

    async def _open_in_slot(self) -> asyncpg.Connection:
        try:
            if self.closed:
                raise asyncpg.InterfaceError("the point-read connections were closed while this read waited")
            return await self._pool.connect()
        except BaseException:
            self._free_slot()
            raise

    def _give_back(self, conn: asyncpg.Connection) -> None:
        if conn.is_closed():
            self._free_slot()
        elif self.closed:
            conn.terminate()
            self._free_slot()
        else:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
            self._idle.append(conn)

    def _drop(self, conn: asyncpg.Connection) -> None:
        conn.terminate()
        self._free_slot()

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._drop(conn)

    def _free_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter
                return
        self.open -= 1

    async def close(self, *, graceful: bool) -> None:
        self.closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self.open -= 1
            if graceful:
                try:
                    await conn.close(timeout=_CLOSE_TIMEOUT)
                except Exception:
                    conn.terminate()
            else:
                with suppress(RuntimeError):  # its loop is closed: the socket goes with it
                    conn.terminate()
