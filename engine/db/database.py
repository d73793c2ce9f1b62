"""The database handle: one async engine and session factory per process, on SQLite or PostgreSQL.

SQLite runs in WAL mode with foreign keys on, its statements on the event loop (see
``sqlite_driver``: a busy database is waited for with asyncio sleeps up to the busy timeout, and
checkpoints run on a thread of their own), and every write transaction starts with
``BEGIN IMMEDIATE`` so two writers queue instead of failing mid-transaction.
PostgreSQL serialises writers of the event log with a transaction-level advisory lock, taken
just before COMMIT (``engine.db.storage``), so that event sequence numbers become visible in
order (the change feed never skips an event).
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from engine.config import DatabaseSettings
from engine.db import sqlite_driver
from engine.db.point_pool import PointReadPool
from engine.db.write_connection import WriteConnection
from engine.errors import StorageError

log = logging.getLogger(__name__)

#: pg_advisory_xact_lock key that orders event-log writers ("bakong" in ASCII, as an int).
EVENT_LOG_LOCK = 0x62616B6F6E67


def _is_uri(parsed: Any) -> bool:
    """Whether a SQLite URL names its file as a ``file:`` URI (SQLite opens it itself)."""
    return str(parsed.query.get("uri", "")).lower() in ("true", "1") or (parsed.database or "").startswith("file:")


def create_private_file(path: Path) -> None:
    """Make a new SQLite file 0600 (SQLite gives its -wal and -shm the same mode), in a directory
    made 0700 if it is new. An existing file or directory keeps its mode (the doctor warns)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)  # an empty file is an empty SQLite database


class Database:
    """Owns the engine and hands out sessions and transactions."""

    def __init__(self, url: str, *, busy_timeout: float = 10.0, echo: bool = False, pool_size: int = DatabaseSettings.pool_size) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        self._checkpointer: sqlite_driver.Checkpointer | None = None
        self._sqlite_args: tuple[list[Any], dict[str, Any]] = ([], {})
        self._point_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, sqlite_driver.Connection] = (
            weakref.WeakKeyDictionary()
        )
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._memory = self.dialect == "sqlite" and (parsed.database or ":memory:") == ":memory:"
        if self.dialect not in ("sqlite", "postgresql"):
            raise StorageError(f"unsupported database {self.dialect!r}: use SQLite or PostgreSQL")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not _is_uri(parsed):
                create_private_file(Path(database).expanduser())
            # Statements on the event loop instead of a thread hop each (see sqlite_driver).
            cargs, cparams = SQLiteDialect_aiosqlite().create_connect_args(parsed)
            cparams = {**cparams, "timeout": busy_timeout}
            if self._memory:
                kwargs["poolclass"] = NullPool
            else:
                self._checkpointer = sqlite_driver.Checkpointer(cargs[0], uri=bool(cparams.get("uri")))
                cparams["checkpointer"] = self._checkpointer
                # Sessions always end in COMMIT or ROLLBACK; the pool's extra rollback is a wasted hop.
                kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_reset_on_return=None)
            kwargs["async_creator"] = partial(sqlite_driver.connect, *cargs, **cparams)
            self._sqlite_args = (cargs, cparams)
        else:
            # No pre-ping: it cost every checkout a round trip. A connection the server dropped
            # fails its first statement, SQLAlchemy invalidates the pool, and the next call reconnects.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        #: PostgreSQL: the connections ``PointRead`` runs on, outside the engine's pool.
        self.point_pool: PointReadPool | None = None
        if self.dialect == "postgresql":
            self.point_pool = PointReadPool(url, self.engine.dialect, size=pool_size)
        if self.dialect == "sqlite":
            self._install_sqlite_pragmas()
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Reads on SQLite begin DEFERRED so they never queue behind writers (WAL lets them run).
        self._read_sessions = async_sessionmaker(
            self.engine.execution_options(bc_read_only=True), expire_on_commit=False, autoflush=False
        )
        # One statement needs no transaction around it: no BEGIN and COMMIT round trips (a hop
        # each on SQLite, a network round trip each on PostgreSQL).
        autocommit: dict[str, Any] = {"bc_autocommit": True}
        if self.dialect == "postgresql":
            autocommit["isolation_level"] = "AUTOCOMMIT"
        self._lookup_sessions = async_sessionmaker(
            self.engine.execution_options(**autocommit), expire_on_commit=False, autoflush=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_memory(self) -> bool:
        return self._memory

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def _install_sqlite_pragmas(self) -> None:
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers take the write lock up front: a deferred transaction that later writes can
            # fail with SQLITE_BUSY without waiting, losing the work done so far.
            options = conn.get_execution_options()
            if options.get("bc_autocommit", False):
                return  # the driver runs each statement in its own implicit transaction
            if conn.connection.driver_connection.in_transaction:
                return  # begun on the driver already (``write_connection``): the session joins it
            conn.exec_driver_sql("BEGIN" if options.get("bc_read_only", False) else "BEGIN IMMEDIATE")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        async with storage_errors(self), self._writer(), self._session(self.sessions) as session, session.begin():
            yield session

    @asynccontextmanager
    async def write_connection(self) -> AsyncIterator[WriteConnection]:
        """One write transaction begun and ended on the driver, a session made only if the work
        asks for one (see ``write_connection``); on SQLite queued behind this process's other
        writers. Committed on success, rolled back on any error, like ``transaction()``."""
        assert not self.is_memory, "an in-memory SQLite database has one connection: use transaction()"
        async with storage_errors(self), self._writer(), self.connection() as conn:
            write = WriteConnection(conn, await conn.get_raw_connection(), postgres=self.is_postgres)
            await write.begin()
            try:
                yield write
            except BaseException:
                await write.end(commit=False)
                raise
            await write.end(commit=True)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection, given back as soon as the work is done.

        Not ``async with engine.connect()``: its exit gives the connection back in a shielded
        task, a loop turn later (a task and a turn per transaction or status read). The work in
        here leaves the connection nothing to wait on at its close: a write transaction is ended
        on the driver first. (PostgreSQL point reads have connections of their own, ``point_pool``.)"""
        conn = await self.engine.connect()
        try:
            yield conn
        finally:
            await conn.close()

    @asynccontextmanager
    async def _session(self, maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
        session = maker()
        if not self.is_sqlite:
            async with session:
                yield session
            return
        # AsyncSession's own exit closes in a shielded task: a loop turn later, so a burst of
        # requests each held a connection through that turn and the pool overflowed. SQLite's
        # close never waits (statements run on the loop): nothing to shield, close it now.
        try:
            yield session
        finally:
            await session.close()

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        """On SQLite, this process's writers queue on an asyncio lock, first come first served.

        SQLite has one writer at a time anyway; left to ``BEGIN IMMEDIATE``, the others sleep in
        SQLite's busy handler (1, 2, 5 ... 100 ms naps) and wake long after the lock is free.
        Writers in other processes still meet at ``BEGIN IMMEDIATE`` and its busy timeout."""
        if not self.is_sqlite:
            yield
            return
        loop = asyncio.get_running_loop()
        lock = self._write_locks.get(loop)
        if lock is None:
            lock = self._write_locks[loop] = asyncio.Lock()
        try:
            async with asyncio.timeout(self.busy_timeout):
                await lock.acquire()
        except TimeoutError:
            raise StorageError(f"database {self.describe()}: database is locked") from None
        try:
            yield
        finally:
            lock.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads (one short transaction that takes no write lock on SQLite)."""
        async with storage_errors(self), self._session(self._read_sessions) as session, session.begin():
            yield session

    @asynccontextmanager
    async def lookup(self) -> AsyncIterator[AsyncSession]:
        """A session for a single read statement, run outside any explicit transaction.

        One statement is consistent by itself; for several that must agree, use ``read()``."""
        async with storage_errors(self), self._session(self._lookup_sessions) as session:
            yield session

    async def point_reader(self) -> sqlite_driver.Connection:
        """SQLite: this event loop's connection for ``PointRead`` (read-only, outside the pool)."""
        loop = asyncio.get_running_loop()
        reader = self._point_readers.get(loop)
        if reader is None:
            cargs, cparams = self._sqlite_args
            reader = await sqlite_driver.connect(*cargs, **{**cparams, "checkpointer": None})
            await reader.fetchone("PRAGMA query_only=1", ())
            self._point_readers[loop] = reader
        return reader

    async def lock_event_log(self, write: WriteConnection) -> None:
        """Serialise writers of the event log on PostgreSQL from here to COMMIT (SQLite is serialised
        already): for a transaction that needs an event's sequence before it commits."""
        if self.is_postgres:
            await write.fetchone("SELECT pg_advisory_xact_lock($1)", [EVENT_LOG_LOCK])

    async def ping(self) -> None:
        async with storage_errors(self), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        for reader in list(self._point_readers.values()):
            reader.stop()
        self._point_readers.clear()
        if self.point_pool is not None:
            await self.point_pool.close()
        await self.engine.dispose()
        if self._checkpointer is not None:
            self._checkpointer.close()

    def describe(self) -> str:
        """Where the data lives, without credentials."""
        parsed = make_url(self.url)
        if self.is_sqlite:
            return f"sqlite:{parsed.database}"
        return f"postgresql://{parsed.host or ''}{':' + str(parsed.port) if parsed.port else ''}/{parsed.database}"


@asynccontextmanager
async def storage_errors(db: Database) -> AsyncIterator[None]:
    """Driver and connection failures become one ``StorageError`` naming the database."""
    try:
        yield
    except (OperationalError, DBAPIError, OSError) as exc:
        raise StorageError(f"database {db.describe()}: {_describe(exc)}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):
            raise StorageError(f"database {db.describe()}: {_describe(exc)}") from exc
        raise


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text_ = str(orig or exc).strip().splitlines()
    return text_[0] if text_ else type(exc).__name__
