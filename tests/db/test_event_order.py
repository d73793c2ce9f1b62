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
