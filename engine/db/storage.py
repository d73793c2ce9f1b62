"""The unit of work: ``Storage.transaction()`` yields a ``Tx`` that repositories write through.

A ``Tx`` carries the session, the transaction's single "now" (so every row of one change shares
one timestamp), the id factory and the data cipher. Events appended in a transaction are handed
to ``on_commit`` listeners only after the commit succeeds (the event feed uses this to wake up).

Events get their ``sequence`` in commit order, so a reader following the sequence never skips
one that commits later. On SQLite writers are serialised anyway and an event gets its sequence
when it is appended. On PostgreSQL an event is inserted with a placeholder sequence and numbered
inside COMMIT by a deferred constraint trigger (migration 0011) that takes the event-log advisory
lock: the lock is taken and released within the server's commit, never held while the server
waits for us, and the holder waits for no row (every row lock was taken before), so it cannot
deadlock. Such events are not in ``Tx.events``; ``journal.committed_events`` reads them after the
commit. A transaction that needs an event's sequence before it commits (a test delivery refers
to its event) opens with ``sequence_at_start=True``: it takes the lock first, before any row lock,
and its events get their sequence at once. Transactions that never write an event say
``events=False``.

``Tx.execute`` runs the hot writes (a payment's row and history, audit rows, events), compiled
once, straight on the driver inside the transaction (see ``compiled``). A write transaction is
begun and committed on the driver (``Database.write_connection``, on SQLite and PostgreSQL), and
``Tx.session`` is made on the same connection, in the same transaction, only when the work asks
for it: a payment's creation, made of compiled statements alone, pays for no ORM session.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from engine.clock import Clock
from engine.crypto import DataCipher
from engine.db.compiled import Compiled
from engine.db.database import Database
from engine.db.group_commit import GroupCommit
from engine.db.write_connection import WriteConnection
from engine.ids import IdFactory
from engine.records import Event

__all__ = ["Storage", "Tx"]

T = TypeVar("T")


@dataclass
class Tx:
    #: The session of a read, or a write transaction's connection that makes one on first use (``session``).
    _session: AsyncSession | WriteConnection
    now: datetime
    ids: IdFactory
    cipher: DataCipher
    db: Database
    #: The appended events whose sequence is known already (SQLite, ``sequence_at_start``).
    events: list[Event] = field(default_factory=list)
    #: False when opened with ``transaction(events=False)``: appending an event is then an error
    may_append: bool = True
    #: PostgreSQL: events are numbered inside COMMIT (placeholder sequence until then).
    numbered_at_commit: bool = False
    #: The ids of every event appended, in order.
    appended: list[str] = field(default_factory=list)
    _driver: Any = None  # in-memory SQLite: the session's driver connection, once ``execute`` needed it

    @property
    def session(self) -> AsyncSession:
        """The ORM session of this transaction (of a write transaction: made the first time it is asked for)."""
        held = self._session
        return held.session if isinstance(held, WriteConnection) else held

    async def execute(self, statement: Executable, params: Mapping[str, Any]) -> SimpleNamespace | None:
        """Run one write (an INSERT for exactly ``params``' columns, or any statement with
        constant SQL) in this transaction; returns its RETURNING row, if any, as attributes.

        Whatever the session has pending is flushed first, so the statement sees and follows the
        ORM's writes. It runs compiled once, on the transaction's own driver connection (in a
        transaction opened with a session alone, an in-memory SQLite database's or PostgreSQL's
        reads, through that session)."""
        held = self._session
        if isinstance(held, WriteConnection):  # begun on the driver: a session only if one was made
            session = held.made
            if session is not None and (session.new or session.dirty or session.deleted):
                await session.flush()
            compiled = Compiled.of(self.db, statement, tuple(params))
            if held.deferring and not compiled.returns:  # sent with the group's others (PostgreSQL)
                held.defer(compiled.sql, compiled.args(params))
                return None
            return await compiled.fetchone(held.fetchone, params)
        session = held  # a read, or an in-memory SQLite database: through the session
        if session.new or session.dirty or session.deleted:
            await session.flush()
        if not self.db.is_sqlite:
            result = await session.execute(statement, dict(params))
            if not getattr(statement, "exported_columns", ()):  # nothing RETURNING
                return None
            row = result.first()
            return None if row is None else SimpleNamespace(**row._mapping)
        compiled = Compiled.of(self.db, statement, tuple(params))
        driver = self._driver
        if driver is None:  # the first statement checks the connection out and begins (BEGIN IMMEDIATE)
            connection = await (await session.connection()).get_raw_connection()
            driver = self._driver = connection.driver_connection
        return await compiled.fetchone(driver.fetchone, params)


class Storage:
    """Database + clock + ids + cipher: everything a repository needs to write a change."""

    def __init__(self, db: Database, *, clock: Clock, cipher: DataCipher, ids: IdFactory | None = None) -> None:
        self.db = db
        self.clock = clock
        self.cipher = cipher
        self.ids = ids or IdFactory(clock)
        self._commit_listeners: list[Callable[[list[Event]], None]] = []
        self._groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit] = weakref.WeakKeyDictionary()

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each commit that appended events (``journal.committed_events``
        reads them)."""
        self._commit_listeners.append(listener)

    @asynccontextmanager
    async def transaction(self, *, events: bool = True, sequence_at_start: bool = False) -> AsyncIterator[Tx]:
        """One write transaction. ``events=False`` promises it appends no event. On PostgreSQL
        the events it appends are numbered inside its COMMIT, under the event-log lock;
        ``sequence_at_start=True`` takes that lock first instead and numbers each event at once
        (for a transaction that needs an event's sequence before it commits)."""
        if self.db.is_memory:  # one connection: through the session alone
            async with self.db.transaction() as session:
                tx = Tx(session, now=self.clock.now(), ids=self.ids, cipher=self.cipher, db=self.db, may_append=events)
                yield tx
        else:
            # Begun on the driver, a session made only if the work asks for one (see write_connection)
            async with self.db.write_connection() as write:
                if events and sequence_at_start:
                    await self.db.lock_event_log(write)
                tx = Tx(
                    write, now=self.clock.now(), ids=self.ids, cipher=self.cipher, db=self.db, may_append=events,
                    numbered_at_commit=events and self.db.is_postgres and not sequence_at_start,
                )  # fmt: skip
                yield tx
        if tx.appended:
            for listener in self._commit_listeners:
                listener()

    async def grouped(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """``await work(tx)`` in a write transaction that may be shared with other concurrent
        work and committed once for all (``engine.db.group_commit``): returns after the commit.
        ``work`` only writes through ``tx`` and may run twice (a group that fails is run again
        one transaction each). Its events are numbered in commit order, as in ``transaction()``."""
        if self.db.is_memory:  # one connection: nothing to share
            async with self.transaction() as tx:
                return await work(tx)
        loop = asyncio.get_running_loop()
        group = self._groups.get(loop)
        if group is None:
            group = self._groups[loop] = GroupCommit(self.transaction, self._shared_transaction)
        return await group.run(work)

    @asynccontextmanager
    async def _shared_transaction(self) -> AsyncIterator[Callable[[], Tx]]:
        """One write transaction, yielding a maker of one ``Tx`` per piece of work in it."""
        made: list[Tx] = []

        async with self.db.write_connection() as write:
            if self.db.is_postgres:
                write.defer_writes()  # each statement's rows of the whole group in one round trip

            def new_tx() -> Tx:
                tx = Tx(
                    write, now=self.clock.now(), ids=self.ids, cipher=self.cipher, db=self.db,
                    numbered_at_commit=self.db.is_postgres,
                )  # fmt: skip
                made.append(tx)
                return tx

            yield new_tx
        if any(tx.appended for tx in made):
            for listener in self._commit_listeners:
                listener()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        async with self.db.read() as session:
            yield Tx(session, now=self.clock.now(), ids=self.ids, cipher=self.cipher, db=self.db, may_append=False)

    @asynccontextmanager
    async def lookup(self) -> AsyncIterator[Tx]:
        """For one read statement: no BEGIN and COMMIT around it (see ``Database.lookup``)."""
        async with self.db.lookup() as session:
            yield Tx(session, now=self.clock.now(), ids=self.ids, cipher=self.cipher, db=self.db, may_append=False)
