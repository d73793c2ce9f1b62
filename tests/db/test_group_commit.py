"""Group commit on SQLite and PostgreSQL: concurrent writes share a commit, a refused one fails
alone, a failed commit leaves nothing half-written, and payments created at once all land."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.clock import ManualClock
from engine.db import journal
from engine.db import payments as repo
from engine.db.group_commit import GroupCommit
from engine.db.models import AuditLogRow, EventRow, PaymentRow, PaymentStatusHistoryRow
from engine.db.storage import Storage, Tx
from engine.errors import Conflict
from engine.records import Actor, ActorType
from engine.runtime import Engine

CASHIER = Actor(ActorType.CASHIER, "dara")


def _create(n: int, md5: str | None = None):
    async def work(tx: Tx):
        return await repo.insert(
            tx, actor=CASHIER, amount_minor=100 * n, currency="KHR", khqr=f"khqr-{n}", md5=md5 or f"{n:032x}",
            receiving_account="shop@devb", expires_at=tx.now + timedelta(minutes=15), next_check_at=tx.now,
        )  # fmt: skip

    return work


async def _count(storage: Storage, row: type) -> int:
    async with storage.read() as tx:
        return int(await tx.session.scalar(select(func.count()).select_from(row)))


def _group(storage: Storage) -> GroupCommit:
    return storage._groups[asyncio.get_running_loop()]


async def test_concurrent_writes_share_commits_and_all_land(storage: Storage) -> None:
    woken: list[int] = []
    storage.on_commit(lambda: woken.append(1))
    payments = await asyncio.gather(*[storage.grouped(_create(n)) for n in range(1, 41)])
    assert sorted(p.amount_minor for p in payments) == [100 * n for n in range(1, 41)]
    group = _group(storage)
    assert group.grouped >= 30 and group.groups <= 5, (group.groups, group.grouped)  # shared, not 40 commits
    assert group.failed == 0
    for row in (PaymentRow, PaymentStatusHistoryRow, AuditLogRow, EventRow):
        assert await _count(storage, row) == 40
    # every event numbered, in one gap-free run, and the feed was woken once per commit, not per write
    async with storage.read() as tx:
        events = await journal.events_since(tx, 0, limit=100)
    assert [e.sequence for e in events] == list(range(events[0].sequence, events[0].sequence + 40))
    assert {e.subject_id for e in events} == {p.id for p in payments}
    assert 1 <= len(woken) <= group.groups + (40 - group.grouped)


async def test_a_refused_write_fails_alone_and_the_rest_commit(storage: Storage) -> None:
    await storage.grouped(_create(99, md5="d" * 32))  # already there: the clash below is refused
    works = [_create(n) for n in range(1, 11)]
    works.insert(4, _create(50, md5="d" * 32))
    results = await asyncio.gather(*[storage.grouped(w) for w in works], return_exceptions=True)
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1 and isinstance(refused[0], Conflict)
    assert isinstance(results[4], Conflict)
    assert await _count(storage, PaymentRow) == 11  # the first and the ten others
    assert await _count(storage, EventRow) == 11
    assert _group(storage).failed >= 1


async def test_a_failed_commit_runs_each_alone_and_nothing_is_half_written(storage: Storage) -> None:
    shared = storage._shared_transaction
    failures = []

    def failing_shared():
        cm = shared()

        class FailingExit:
            async def __aenter__(self):
                return await cm.__aenter__()

            async def __aexit__(self, *exc):
                if exc[0] is None:  # roll the group back and fail, as a refused COMMIT does
                    failures.append(1)
                    await cm.__aexit__(RuntimeError, RuntimeError("commit refused"), None)
                    raise RuntimeError("commit refused")
                return await cm.__aexit__(*exc)

        return FailingExit()

    group = GroupCommit(storage.transaction, failing_shared)
    storage._groups[asyncio.get_running_loop()] = group
    payments = await asyncio.gather(*[storage.grouped(_create(n)) for n in range(1, 9)])
    assert failures, "no group was tried"
    assert len({p.id for p in payments}) == 8
    assert await _count(storage, PaymentRow) == 8  # each once: the failed group left nothing
    assert await _count(storage, PaymentStatusHistoryRow) == 8


async def test_a_caller_cancelled_while_queued_writes_nothing(storage: Storage) -> None:
    blocker = asyncio.Event()

    async def slow(tx: Tx):
        await blocker.wait()
        return await _create(1)(tx)

    first = asyncio.create_task(storage.grouped(slow))
    await asyncio.sleep(0.01)  # the leader is inside the first one's transaction
    queued = asyncio.create_task(storage.grouped(_create(2)))
    await asyncio.sleep(0.01)
    queued.cancel()
    blocker.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await queued
    await asyncio.sleep(0.01)
    assert await _count(storage, PaymentRow) == 1


async def test_fifty_identical_creates_at_one_instant_all_get_their_own_khqr(engine: Engine, clock: ManualClock) -> None:
    # The clock stands still: every one of them would make the same KHQR string at first.
    created = await asyncio.gather(*[engine.payments.initiate("2.50", "USD", actor=CASHIER) for _ in range(50)])
    md5s = {c.payment.md5 for c in created}
    assert len(md5s) == 50 and all(c.created for c in created)
    async with engine.storage.read() as tx:
        assert await tx.session.scalar(select(func.count()).select_from(PaymentRow)) == 50
