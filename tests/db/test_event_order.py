"""Event order under concurrent writers: sequences in commit order, no gap a reader could skip,
each subject's events in the order they happened, and (PostgreSQL) no lock held across a whole
transaction (issue 19.1)."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.db import journal, state
from engine.db.storage import Storage

WRITERS = 12
ROUNDS = 6


async def follow(storage: Storage, done: asyncio.Event, seen: list[tuple[int, str, str]]) -> None:
    """A reader tailing the log by sequence, as the bus and the events feed do."""
    last = 0
    while True:
        finished = done.is_set()
        async with storage.read() as tx:
            events = await journal.events_since(tx, last, types=["test.step"])
        for event in events:
            seen.append((event.sequence, event.subject_id, event.payload["step"]))
            last = event.sequence
        if finished and not events:
            return
        await asyncio.sleep(0.001)


async def test_concurrent_writers_give_readers_every_event_once_in_commit_order(storage: Storage) -> None:
    """Writers interleave (each holds its transaction open across loop turns and appends two events
    of its subject); a reader follows the sequence meanwhile. The reader must see every committed
    event exactly once, in sequence order, and each subject's steps in the order they were made."""
    done = asyncio.Event()
    seen: list[tuple[int, str, str]] = []
    reader = asyncio.create_task(follow(storage, done, seen))

    async def writer(n: int) -> None:
        for round_ in range(ROUNDS):
            async with storage.transaction() as tx:
                await state.set_state(tx, f"writer-{n}", {"round": round_})
                await journal.append_event(tx, "test.step", "test", f"s{n}", {"step": f"{round_}a"})
                await asyncio.sleep(0.002 * ((n + round_) % 3))  # let other writers overtake this one
                await journal.append_event(tx, "test.step", "test", f"s{n}", {"step": f"{round_}b"})

    await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(WRITERS))), 60)
    done.set()
    await asyncio.wait_for(reader, 30)

    async with storage.read() as tx:
        stored = [(e.sequence, e.subject_id, e.payload["step"]) for e in await journal.events_since(tx, 0, limit=10_000)]
    assert len(stored) == WRITERS * ROUNDS * 2
    assert seen == stored  # nothing skipped, nothing twice, in sequence order
    for n in range(WRITERS):
        steps = [step for _, subject, step in stored if subject == f"s{n}"]
        assert steps == [f"{r}{half}" for r in range(ROUNDS) for half in "ab"]
        # A transaction's two events are adjacent in the sequence: events are ordered by commit.
        sequences = [seq for seq, subject, _ in stored if subject == f"s{n}"]
        assert all(b == a + 1 for a, b in zip(sequences[::2], sequences[1::2], strict=True))


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_postgres_writers_of_events_do_not_wait_for_each_others_whole_transaction(storage: Storage) -> None:
    """Issue 19.1: every transaction that appended an event held the event-log lock from its start
    to its commit, so ten writers each busy for 0.3 s took 3 s. The lock is now taken just before
    COMMIT: they overlap."""
    busy = 0.3

    async def writer(n: int) -> None:
        async with storage.transaction() as tx:
            await state.set_state(tx, f"slow-{n}", {"n": n})
            await journal.append_event(tx, "test.step", "test", f"slow-{n}", {"step": "only"})
            await asyncio.sleep(busy)  # the rest of a transaction's work, after its event

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(10))), 30)
    elapsed = time.monotonic() - started
    assert elapsed < 10 * busy / 2, f"ten writers took {elapsed:.2f} s: they ran one after another"
    async with storage.read() as tx:
        events = await journal.events_since(tx, 0, types=["test.step"])
    assert sorted(e.subject_id for e in events) == sorted(f"slow-{n}" for n in range(10))
    assert [e.sequence for e in events] == list(range(events[0].sequence, events[0].sequence + 10))


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_postgres_a_writer_slow_to_send_commit_holds_no_event_log_lock(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19.1: the event-log lock was taken by the transaction's last statement and held until
    the client's COMMIT arrived, so a Python process short of CPU held every other writer for that
    round trip. Events are now numbered inside COMMIT: a writer stalled just before sending COMMIT
    blocks nobody, and the later COMMIT gets the later sequence."""
    import asyncpg.transaction

    gate = asyncio.Event()
    stalled = asyncio.Event()
    real_commit = asyncpg.transaction.Transaction.commit
    stall_next = [True]

    async def commit_after_the_gate(self: asyncpg.transaction.Transaction) -> None:
        if stall_next[0]:
            stall_next[0] = False
            stalled.set()
            await gate.wait()  # the client is busy elsewhere: its COMMIT is late
        await real_commit(self)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "commit", commit_after_the_gate)

    async def write(name: str) -> None:
        async with storage.transaction() as tx:
            await state.set_state(tx, name, {"name": name})
            await journal.append_event(tx, "test.step", "test", name, {"step": "only"})

    slow = asyncio.create_task(write("slow"))
    await asyncio.wait_for(stalled.wait(), 10)
    await asyncio.wait_for(write("fast"), 5)  # not behind the stalled writer's lock
    gate.set()
    await asyncio.wait_for(slow, 10)
    async with storage.read() as tx:
        events = await journal.events_since(tx, 0, types=["test.step"])
    assert [e.subject_id for e in events] == ["fast", "slow"]  # sequence follows commit order
    assert events[1].sequence == events[0].sequence + 1


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_postgres_committed_events_come_back_with_their_sequences(storage: Storage) -> None:
    """Events numbered at commit are read back after it, in the order they were appended."""
    async with storage.transaction() as tx:
        await journal.append_event(tx, "test.step", "test", "s", {"step": "a"})
        await journal.append_event(tx, "test.step", "test", "s", {"step": "b"})
    assert tx.events == []  # not known before the commit
    committed = await journal.committed_events(storage, tx)
    assert [e.payload["step"] for e in committed] == ["a", "b"]
    assert committed[0].sequence > 0 and committed[1].sequence == committed[0].sequence + 1
