"""PostgreSQL point reads on their own asyncpg connections (``engine.db.point_pool``): at most
``pool_size`` per process, closed with the database, independent per instance, replaced when the
server drops them, dropped when a read is cancelled, and a clear ``StorageError`` when the
server is down or every connection stays busy."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Iterable

import asyncpg
import pytest
from sqlalchemy import Float, bindparam, func, select

from engine.db.database import Database
from engine.db.pointread import PointRead
from engine.errors import StorageError
from tests.conftest import PG_ADMIN_DSN

pytestmark = pytest.mark.postgres

_PID = select(func.pg_backend_pid().label("pid"))
# the pid, after a pause that keeps the connection busy meanwhile
_SLOW_PID = select(func.pg_backend_pid().label("pid"), func.pg_sleep(bindparam("seconds", type_=Float)).label("slept"))


async def pid_of(db: Database, seconds: float = 0.0) -> int:
    """The backend pid of the point-read connection the read ran on."""
    row = await (PointRead.of(db, _SLOW_PID).one({"seconds": seconds}) if seconds else PointRead.of(db, _PID).one({}))
    assert row is not None
    return int(row.pid)


async def _admin(sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def live(pids: Iterable[int]) -> set[int]:
    rows = await _admin("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids))
    return {r["pid"] for r in rows}


async def gone(pids: set[int], timeout: float = 5.0) -> bool:
    """Whether every backend in ``pids`` has ended (pg_stat_activity lags a closed connection by
    a moment)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await live(pids):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_concurrent_reads_share_at_most_pool_size_connections_closed_with_the_database(pg_url: str) -> None:
    db = Database(pg_url, pool_size=3)
    try:
        pids = await asyncio.gather(*(pid_of(db, 0.05) for _ in range(20)))
        assert len(set(pids)) == 3  # 20 reads at once: all three opened, none beyond
        assert await live(pids) == set(pids)
        assert db.point_pool is not None and db.point_pool.open_count() == 3
    finally:
        await db.dispose()
    assert await gone(set(pids))
    # as SQLAlchemy's engine after dispose(): a later read connects again, and dispose closes it
    again = await pid_of(db)
    assert again not in pids and db.point_pool.open_count() == 1
    await db.dispose()
    assert await gone({again}) and db.point_pool.open_count() == 0


async def test_a_read_in_flight_when_the_database_closes_answers_then_its_connection_closes(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2)
    try:
        both = set(await asyncio.gather(pid_of(db, 0.05), pid_of(db, 0.05)))
        slow = asyncio.create_task(pid_of(db, 0.5))
        await asyncio.sleep(0.2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await db.dispose()
            assert await slow in both  # the read still answers, on the connection it had
            gc.collect()
        # closed by the pool, not left to asyncpg's finaliser ("unclosed connection")
        assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
        assert await gone(both)
        assert db.point_pool is not None and db.point_pool.open_count() == 0
    finally:
        await db.dispose()


async def test_instances_keep_their_own_connections(pg_url: str) -> None:
    first, second = Database(pg_url, pool_size=2), Database(pg_url, pool_size=2)
    try:
        mine = set(await asyncio.gather(*(pid_of(first, 0.05) for _ in range(6))))
        theirs = set(await asyncio.gather(*(pid_of(second, 0.05) for _ in range(6))))
        assert len(mine) == 2 and len(theirs) == 2 and not mine & theirs
        await first.dispose()
        assert await gone(mine)
        assert await live(theirs) == theirs
        assert await pid_of(second) in theirs  # the other instance reads on, on its own connections
    finally:
        await first.dispose()
        await second.dispose()
    assert await gone(theirs)


async def test_connections_the_server_closed_are_replaced_without_failing_a_read(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2)
    try:
        before = set(await asyncio.gather(pid_of(db, 0.05), pid_of(db, 0.05)))
        assert len(before) == 2

        # Ended from another thread while this loop is blocked: the connections still look open
        # when the next read takes one, as after a server restart between two requests.
        async def terminate() -> None:
            await _admin("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(before))
            assert await gone(before)

        worker = threading.Thread(target=asyncio.run, args=(terminate(),))
        worker.start()
        worker.join()
        after = await pid_of(db)
        assert after not in before
        assert db.point_pool is not None and db.point_pool.open_count() == 1  # the dead ones were let go
        assert await pid_of(db) == after
    finally:
        await db.dispose()


async def test_a_cancelled_read_gives_up_its_connection_and_reads_go_on(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    try:
        stuck = asyncio.create_task(pid_of(db, 2.0))
        await asyncio.sleep(0.3)
        waiting = asyncio.create_task(pid_of(db))
        await asyncio.sleep(0.05)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        # the waiting read gets the slot (a new connection: the cancelled one was dropped)
        pid = await asyncio.wait_for(waiting, 5)
        assert await pid_of(db) == pid
        assert db.point_pool is not None and db.point_pool.open_count() == 1
    finally:
        await db.dispose()


async def test_a_read_waits_for_a_busy_pool_only_up_to_its_timeout(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    assert db.point_pool is not None
    db.point_pool.timeout = 0.2
    try:
        busy = asyncio.create_task(pid_of(db, 1.0))
        await asyncio.sleep(0.1)
        with pytest.raises(StorageError, match=r"no connection for a point read came free within 0.2 s .*pool_size"):
            await pid_of(db)
        pid = await busy
        assert await pid_of(db) == pid  # the connection came back and serves the next read
    finally:
        await db.dispose()


async def test_a_refused_statement_keeps_the_connection(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    try:
        pid = await pid_of(db)
        with pytest.raises(StorageError, match="division by zero"):
            await PointRead.of(db, select((func.pg_backend_pid() / 0).label("x"))).one({})
        assert await pid_of(db) == pid
    finally:
        await db.dispose()


async def test_postgresql_down_is_a_storage_error_naming_the_database() -> None:
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/bakong", pool_size=2)
    try:
        with pytest.raises(StorageError, match=r"^database postgresql://127\.0\.0\.1:1/bakong: ") as caught:
            await pid_of(db)
        assert "Traceback" not in str(caught.value)
        # each failed connect gives its slot back: three reads on two slots all fail the same way
        failures = await asyncio.gather(*(pid_of(db) for _ in range(3)), return_exceptions=True)
        assert [type(f) for f in failures] == [StorageError] * 3
        assert db.point_pool is not None and db.point_pool.open_count() == 0
    finally:
        await db.dispose()
