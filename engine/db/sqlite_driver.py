"""An aiosqlite-compatible SQLite connection that runs each statement on the event loop.

SQLAlchemy's aiosqlite dialect drives whatever ``async_creator`` returns through aiosqlite's
interface. aiosqlite hands every DB-API call to a thread of its own; on this engine's statements
(point reads, single-row writes, a few-page COMMIT in WAL mode with ``synchronous=NORMAL``) the
SQLite work takes tens of microseconds and the hand-off costs far more: a queue, a thread
wake-up, a self-pipe write, an event-loop turn, and a fight for the GIL with the loop that
served HTTP in the meantime. So this connection calls SQLite directly, with three guards for
the event loop:

- **No busy wait on the loop.** The connection's own busy timeout is 0. A statement refused with
  SQLITE_BUSY (another process holds the write lock, or is recovering the WAL) did nothing; it
  is retried after an ``asyncio.sleep`` (1, 2, 5 ... 100 ms) until the configured busy timeout,
  then the error is raised as SQLite would have raised it.
- **No checkpoint on the loop.** SQLite's automatic checkpoint runs inside the COMMIT that
  crosses the WAL threshold and copies pages back with fsyncs (tens of milliseconds). It is off
  on these connections; a ``Checkpointer`` runs PASSIVE checkpoints for the file on a thread of
  its own, with its own connection, every ``CHECKPOINT_EVERY`` commits or ``CHECKPOINT_ROWS``
  rows written.
- **No long hold of the loop.** One task's statements (and the chunks of ``FETCH_CHUNK`` rows a
  big result is fetched in) run back to back until they have used ``SLICE_SECONDS`` of the loop
  thread's CPU time since its run began; its next statement first yields one loop turn. CPU time,
  not wall time: while the OS runs another process the loop serves nobody, so a preemption is no
  reason to yield (and would make a busy machine yield at random). A transaction of many statements (a
  poller pass, a bulk import) thus shares the loop with key presses and HTTP requests, while
  many tasks of one statement each (fifty status reads) pay nothing. One statement's step holds
  the loop for its own duration: milliseconds on this engine's indexed queries.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["CHECKPOINT_EVERY", "Checkpointer", "Connection", "connect"]

#: Commits between two checkpoints (SQLite's own default is about every 1,000 WAL pages; a
#: payment's write transaction is about a dozen)...
CHECKPOINT_EVERY = 64
#: ...or rows written: a bulk transaction fills the WAL alone, and reads from a long WAL are slower.
CHECKPOINT_ROWS = 1_000

#: The most loop-thread CPU time one task's back-to-back statements use before the driver yields a turn.
SLICE_SECONDS = 0.004


class _Slice(threading.local):
    """This thread's current run of statements: whose, and since when (per event loop thread)."""

    task: object = None
    started = 0.0
    ending = False  # an ``_end_slice`` is scheduled


_slice = _Slice()


def _end_slice() -> None:
    """Runs at the loop's next turn: the loop got control, so the statements' run is over."""
    _slice.task = None
    _slice.ending = False


def _begin_slice(task: object) -> None:
    _slice.task = task
    _slice.started = time.thread_time()
    if not _slice.ending:
        _slice.ending = True
        asyncio.get_running_loop().call_soon(_end_slice)


#: Rows fetched per call: a result bigger than this is read a chunk at a time.
FETCH_CHUNK = 100

#: Sleeps between retries of a statement refused with SQLITE_BUSY (the last one repeats).
_BUSY_NAPS = (0.001, 0.002, 0.005, 0.010, 0.020, 0.050, 0.100)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


class Checkpointer:
    """PASSIVE checkpoints of one database file, on a thread and a connection of their own.

    PASSIVE never waits for readers or writers: it copies what it can and leaves the rest for
    the next one. At most one checkpoint is queued at a time. ``close()`` stops the thread; a
    later commit (the engine used again after ``dispose()``) starts it again."""

    def __init__(self, database: str, *, uri: bool = False) -> None:
        self.database = database
        self.uri = uri
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending = threading.Event()
        self._commits = 0
        self._rows = 0
        self.runs = 0

    def committed(self, rows: int) -> None:
        """Count one commit of ``rows`` changed rows; queue a checkpoint when enough have passed."""
        self._commits += 1
        self._rows += rows
        if (self._commits < CHECKPOINT_EVERY and self._rows < CHECKPOINT_ROWS) or self._pending.is_set():
            return
        self._commits = self._rows = 0
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpoint")
        self._pending.set()
        self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                # a busy timeout here blocks only this thread: a checkpoint that starts while a
                # commit holds the WAL index waits for it instead of being skipped
                self._conn = sqlite3.connect(
                    self.database, timeout=1.0, isolation_level=None, check_same_thread=False, uri=self.uri
                )
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.runs += 1
        except sqlite3.Error:
            pass  # busy or gone: the next one tries again, and SQLite checkpoints at the last close
        finally:
            self._pending.clear()

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Stop the thread, after the checkpoint in progress if any (a few milliseconds)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(self._close_conn)
            executor.shutdown(wait=True)
        self._pending.clear()


class Cursor:
    """A DB-API cursor over the connection's SQLite handle, rows fetched as the statement runs."""

    arraysize = 1

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._open: sqlite3.Cursor | None = None

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _run(self, op: str, params: Any, many: bool) -> None:
        cur = self._conn._conn.cursor()
        try:
            if many:
                cur.executemany(op, params)
            elif params is None:
                cur.execute(op)
            else:
                cur.execute(op, params)
            self.description = cur.description
            self._rows = cur.fetchmany(FETCH_CHUNK) if cur.description else []
            self.rowcount = cur.rowcount
            self.lastrowid = cur.lastrowid
        except BaseException:
            cur.close()
            raise
        if len(self._rows) == FETCH_CHUNK:
            self._open = cur  # more rows may follow: fetched chunk by chunk (see execute)
        else:
            cur.close()

    def _more(self) -> bool:
        assert self._open is not None
        chunk = self._open.fetchmany(FETCH_CHUNK)
        self._rows.extend(chunk)
        if len(chunk) < FETCH_CHUNK:
            self._open.close()
            self._open = None
            return False
        return True

    async def execute(self, op: str, params: Any = None) -> Cursor:
        await self._conn._call(self._run, op, params, False)
        # A big result is read in chunks, each a separate call, so the loop gets its turns.
        while self._open is not None and await self._conn._call(self._more, retry=False):
            pass
        return self

    async def executemany(self, op: str, seq_of_params: Sequence[Any]) -> Cursor:
        # Outside a transaction each row commits by itself: a retry could write the first rows twice.
        await self._conn._call(self._run, op, seq_of_params, True, retry=self._conn.in_transaction)
        while self._open is not None and await self._conn._call(self._more, retry=False):
            pass
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
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class Connection:
    """The subset of ``aiosqlite.Connection`` that SQLAlchemy's aiosqlite dialect uses."""

    def __init__(self, database: str, *, timeout: float = 5.0, checkpointer: Checkpointer | None = None, **kwargs: Any) -> None:
        self._database = database
        self._busy_timeout = timeout
        self._kwargs = kwargs
        self._checkpointer = checkpointer
        self._sqlite: sqlite3.Connection | None = None
        self._changes = 0  # total_changes at the last commit
        self._tx = _Immediate(self)

    async def _call(self, function: Callable[..., Any], *args: Any, retry: bool = True) -> Any:
        task = asyncio.current_task()
        if _slice.task is not task:  # the loop ran something else since this task's last statement
            _begin_slice(task)
        elif time.thread_time() - _slice.started > SLICE_SECONDS:
            await asyncio.sleep(0)  # the loop serves the others (and ends this run)
            _begin_slice(task)
        deadline: float | None = None
        nap = 0
        while True:
            try:
                return function(*args)
            except sqlite3.OperationalError as exc:
                if not retry or not _is_busy(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._busy_timeout
                if now >= deadline:
                    raise
                await asyncio.sleep(min(_BUSY_NAPS[nap], deadline - now))
                nap = min(nap + 1, len(_BUSY_NAPS) - 1)

    def __await__(self) -> Any:
        return self._open().__await__()

    async def _open(self) -> Connection:
        # check_same_thread off: SQLAlchemy's pool may close a connection it gave up from the
        # garbage collector's thread. Statements only ever run on the event loop.
        conn = sqlite3.connect(self._database, **{**self._kwargs, "timeout": 0, "check_same_thread": False})
        if self._checkpointer is not None:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        self._sqlite = conn
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

    async def fetchone(self, sql: str, params: Sequence[Any]) -> Any:
        """One statement's first row (or None), for callers that need no DB-API cursor."""
        return await self._call(lambda: self._conn.execute(sql, params).fetchone())

    async def commit(self) -> None:
        if self.in_transaction:
            await self._call(self._conn.commit)
            if self._checkpointer is not None:
                changes = self._conn.total_changes
                self._checkpointer.committed(changes - self._changes)
                self._changes = changes

    async def rollback(self) -> None:
        if self.in_transaction:
            await self._call(self._conn.rollback)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close now (SQLAlchemy's pool calls this for a connection it gives up)."""
        conn, self._sqlite = self._sqlite, None
        if conn is not None:
            conn.close()


def connect(database: str, **kwargs: Any) -> Connection:
    return Connection(database, **kwargs)
