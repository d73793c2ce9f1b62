"""Group commit: small write transactions that arrive together are committed together.

Fifty clients creating payments at once each want a transaction of four INSERTs. Alone, each pays
for its own BEGIN, COMMIT (on SQLite the WAL frames of every page it touched, written again by
the next one; on PostgreSQL two round trips and a WAL flush), connection checkout and writer lock.
``GroupCommit.run(work)`` queues ``work`` instead; one leader task takes everything queued,
runs each piece of work in turn in one transaction, with its own ``Tx`` (its own "now", ids and
events), and commits once. Every caller is answered only after that commit: what a caller is told
was written, was written.

If a piece of work fails, the group's transaction is rolled back, that piece is run again in a
transaction of its own (so it fails alone: a replayed idempotency key, a duplicate KHQR) and the
rest are grouped again; if the commit fails, each piece runs again alone. The work
must therefore only write through its ``Tx`` and may run twice (the first run rolled back).

A caller that is cancelled while its work waits in the queue is dropped from the group; once the
leader has taken it, its work is committed or not with the group, like a request cancelled after
its own COMMIT was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["GROUP_LIMIT", "GroupCommit"]

T = TypeVar("T")

#: The most pieces of work in one transaction: a group holds the writer lock for about this many
#: creates' worth of statements (well under the p99 budget) before the next writer gets a turn.
GROUP_LIMIT = 32


class _Pending(Generic[T]):
    __slots__ = ("future", "work")

    def __init__(self, work: Callable[[Any], Awaitable[T]], future: asyncio.Future[T]) -> None:
        self.work = work
        self.future = future


class GroupCommit:
    """Runs queued write work in shared transactions, committed once per group.

    ``transaction`` is ``Storage.transaction`` (a context manager yielding a ``Tx``);
    ``shared_transaction`` opens one write transaction and yields a factory of ``Tx`` objects on
    it, one per piece of work (``Storage.shared_transaction``)."""

    def __init__(self, transaction: Callable[[], Any], shared_transaction: Callable[[], Any], *, limit: int = GROUP_LIMIT) -> None:
        self._transaction = transaction
        self._shared = shared_transaction
        self._limit = limit
        self._queue: list[_Pending[Any]] = []
        self._leader: asyncio.Task[None] | None = None
        #: how many groups and pieces of work were committed together (for the benches and tests)
        self.groups = 0
        self.grouped = 0
        self.failed = 0

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """``await work(tx)`` in a write transaction, committed (perhaps with others') before this returns."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(work, future))
        if self._leader is None:
            self._leader = asyncio.get_running_loop().create_task(self._lead())
        return await future

    async def _lead(self) -> None:
        taken: list[_Pending[Any]] = []
        try:
            while self._queue:
                taken = [p for p in self._queue[: self._limit] if not p.future.done()]
                del self._queue[: self._limit]
                if len(taken) == 1:
                    await self._alone(taken[0])
                elif taken:
                    await self._together(taken)
                taken = []
        except BaseException:
            # The leader itself was cancelled (the engine is closing): nobody waits for nothing.
            for pending in [*taken, *self._queue]:
                if not pending.future.done():
                    pending.future.cancel()
            self._queue.clear()
            raise
        finally:
            self._leader = None

    async def _alone(self, pending: _Pending[Any]) -> None:
        try:
            async with self._transaction() as tx:
                result = await pending.work(tx)
        except Exception as exc:  # the caller gets whatever its own work raised
            _settle(pending, exception=exc)
        else:
            _settle(pending, result=result)

    async def _together(self, group: list[_Pending[Any]]) -> None:
        results: list[Any] = []

        class _Refused(Exception):
            """A piece of work raised: the group's transaction is rolled back."""

        try:
            async with self._shared() as new_tx:
                for pending in group:
                    try:
                        results.append(await pending.work(new_tx()))
                    except Exception as exc:
                        raise _Refused from exc
        except _Refused:
            # Nothing of the group was written. The piece that failed runs again alone (and fails
            # alone, or succeeds now that what it met is gone); the rest go back to the head of
            # the queue to be grouped again.
            self.failed += 1
            failed = len(results)
            self._queue[:0] = group[:failed] + group[failed + 1 :]
            await self._alone(group[failed])
            return
        except Exception:
            # The commit failed: every piece runs again alone and hears its own outcome.
            self.failed += 1
            for pending in group:
                await self._alone(pending)
            return
        self.groups += 1
        self.grouped += len(group)
        for pending, result in zip(group, results, strict=True):
            _settle(pending, result=result)


def _settle(pending: _Pending[Any], *, result: Any = None, exception: BaseException | None = None) -> None:
    if pending.future.done():  # its caller was cancelled meanwhile
        return
    if exception is not None:
        pending.future.set_exception(exception)
    else:
        pending.future.set_result(result)
