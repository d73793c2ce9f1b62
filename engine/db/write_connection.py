"""A write transaction begun and ended on the driver, the ORM session made only when asked for.

The hot writes (a payment's row and status history, audit rows, events) run compiled on the
driver (``Tx.execute``, ``compiled``). A transaction made of them alone, a payment's creation for
one, then needs no ``AsyncSession``: no session object, no greenlet hop to begin, flush and
commit, no shielded close a loop turn later. Measured on a payment's creation in the engine:
950 -> 750 µs of CPU on SQLite. ``Database.write_connection`` opens one:

- SQLite: ``BEGIN IMMEDIATE`` and ``COMMIT`` on the ``sqlite_driver`` connection. A session, when
  the work asks for one, is bound to the same pooled connection; the begin listener
  (``Database``) sees the driver in a transaction and emits no second BEGIN.
- PostgreSQL: an asyncpg transaction on the pooled connection's asyncpg handle. A session, when
  asked for, adopts it: SQLAlchemy's asyncpg adapter is handed the transaction as the one it
  started, so the session's statements run in it and the session's commit is its commit.

A driver's errors are raised as SQLAlchemy's (``IntegrityError``, ``OperationalError`` ...), as
through a session, so callers and ``storage_errors`` treat both paths alike. However the work
ends, the connection goes back to the pool outside any transaction (or is discarded).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

__all__ = ["WriteConnection"]


class WriteConnection:
    """One write transaction on a checked-out connection, begun on its driver."""

    def __init__(self, conn: AsyncConnection, adapter: Any, *, postgres: bool) -> None:
        self.conn = conn
        #: SQLAlchemy's DB-API adapter of the connection, and the driver connection under it
        self._adapter = adapter
        self.driver: Any = adapter.driver_connection
        self._postgres = postgres
        self._xact: Any = None  # PostgreSQL: the asyncpg transaction
        self._session: AsyncSession | None = None
        #: PostgreSQL, ``defer_writes``: statements with nothing to return, by SQL, in first-seen order
        self._deferred: dict[str, list[Sequence[Any]]] | None = None

    @property
    def in_transaction(self) -> bool:
        if self._postgres:
            return bool(self.driver.is_in_transaction())
        return bool(self.driver.in_transaction)

    async def begin(self) -> None:
        if self._postgres:
            xact = self.driver.transaction()
            await self.run(xact.start)
            self._xact = xact
        else:
            await self.run(self.driver.fetchone, "BEGIN IMMEDIATE", ())

    def defer_writes(self) -> None:
        """PostgreSQL: hold the writes that return nothing and send each statement's rows with
        one ``executemany`` (one round trip for all its rows) before the next statement that
        returns something, and before COMMIT. For a group of creates (``group_commit``): four
        round trips for the group instead of four for each payment. A refused row then fails the
        whole flush, and the group is run again one transaction each. The ORM session cannot
        see the held writes, so a transaction that defers them makes none."""
        assert self._postgres, "deferred writes are for PostgreSQL (SQLite numbers events at insert)"
        self._deferred = {}

    @property
    def deferring(self) -> bool:
        return self._deferred is not None

    def defer(self, sql: str, args: Sequence[Any]) -> None:
        assert self._deferred is not None
        rows = self._deferred.get(sql)
        if rows is None:
            rows = self._deferred[sql] = []
        rows.append(args)

    async def flush(self) -> None:
        """Send the held writes, each statement's rows at once, in the order first seen."""
        held, self._deferred = self._deferred, {}
        if held:
            for sql, rows in held.items():
                await self.run(self.driver.executemany, sql, rows)

    async def fetchone(self, sql: str, args: Sequence[Any]) -> Any:
        """One compiled statement's first row, or None (``Compiled.fetchone``'s ``fetch``)."""
        if self._deferred:
            await self.flush()
        if self._postgres:
            return await self.run(self.driver.fetchrow, sql, *args)
        return await self.run(self.driver.fetchone, sql, args)

    @property
    def made(self) -> AsyncSession | None:
        """The session, if the work asked for one."""
        return self._session

    @property
    def session(self) -> AsyncSession:
        if self._deferred is not None:
            raise RuntimeError("a transaction that defers its writes (group commit on PostgreSQL) has no ORM session")
        if self._session is None:
            if self._postgres:
                # The adapter starts its own asyncpg transaction at its first statement unless it
                # holds one: hand it ours, so the session runs in it and commits it.
                self._adapter.dbapi_connection._transaction = self._xact
            # SQLite: the session's first statement "begins"; the begin listener emits nothing.
            self._session = AsyncSession(bind=self.conn, expire_on_commit=False, autoflush=False)
        return self._session

    async def run(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """A driver call, its exceptions raised as SQLAlchemy's (as through a session)."""
        try:
            return await call(*args)
        except DBAPIError:
            raise
        except Exception as exc:
            if self._postgres:  # asyncpg's exceptions as the adapter's DB-API ones first
                adapter = self._adapter.dbapi_connection
                try:
                    type(adapter)._handle_exception_no_connection(adapter.dbapi, exc)
                except Exception as translated:
                    exc = translated
            raise DBAPIError.instance(None, None, exc, Exception, hide_parameters=True) from exc

    async def end(self, *, commit: bool) -> None:
        """Commit (or roll back) through the session if one was made, else on the driver. After a
        failed commit the transaction is rolled back, or the connection discarded if that fails."""
        session, self._session = self._session, None
        try:
            if commit and self._deferred:
                await self.flush()
            if session is not None:
                try:
                    if commit:
                        await session.commit()  # flushes what is pending, then commits the transaction
                    else:
                        await session.rollback()
                finally:
                    await session.close()
            if self.in_transaction:
                if self._postgres:
                    await self.run(self._xact.commit if commit else self._xact.rollback)
                else:
                    await self.run(self.driver.commit if commit else self.driver.rollback)
        finally:
            await self._leave_no_transaction()

    async def _leave_no_transaction(self) -> None:
        try:
            if self._postgres:
                adapter = self._adapter.dbapi_connection
                if adapter._transaction is self._xact:
                    adapter._transaction = None  # the adapter must not think it holds it any more
                if self.in_transaction:
                    if self.driver._top_xact is self._xact:
                        await self._xact.rollback()
                    else:
                        await self.driver.execute("ROLLBACK")
            elif self.in_transaction:
                await self.driver.rollback()
        except Exception:
            await self.conn.invalidate()  # the pool discards it instead of lending it out mid-transaction
