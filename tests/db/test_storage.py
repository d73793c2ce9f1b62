"""Storage on SQLite and PostgreSQL: schema, transitions, history/audit/events, leases, ledger."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select, text, update
from sqlalchemy.engine import make_url

from engine.clock import ManualClock
from engine.db import journal, leases, state
from engine.db import payments as repo
from engine.db.ledger import DatabaseRequestLedger
from engine.db.migrate import current_revision, head_revision
from engine.db.models import AuditLogRow, Base, EngineStateRow, EventRow, PaymentRow, PaymentStatusHistoryRow
from engine.db.storage import Storage
from engine.errors import BudgetExhausted, Conflict, InvalidInput, NotFound, QuotaExhausted, StorageError
from engine.records import Actor, ActorType, PaymentStatus

CASHIER = Actor(ActorType.CASHIER, "dara")


async def new_payment(storage: Storage, n: int = 1, **kw) -> str:
    now = storage.clock.now()
    async with storage.transaction() as tx:
        p = await repo.insert(
            tx,
            actor=CASHIER,
            amount_minor=kw.pop("amount_minor", 1000 * n),
            currency=kw.pop("currency", "KHR"),
            khqr=f"khqr-{n}",
            md5=kw.pop("md5", f"{n:032x}"),
            receiving_account="shop@devb",
            expires_at=now + timedelta(minutes=15),
            next_check_at=kw.pop("next_check_at", now),
            **kw,
        )
    return p.id


async def test_migrations_produce_exactly_the_models_schema(storage: Storage) -> None:
    assert await current_revision(storage.db) == head_revision()
    async with storage.db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
        )
    assert diff == []


def _predicate(where: Any) -> str | None:
    """An index's WHERE as comparable text: PostgreSQL reflects ``(x IS NOT NULL)``, SQLite the
    text of the CREATE INDEX, the models a ``text()``."""
    return None if where is None else str(where).strip("() ").lower()


async def test_migrations_give_every_partial_index_the_models_predicate(storage: Storage) -> None:
    # compare_metadata does not look at an index's WHERE: a migration that built a partial index
    # whole (or filtered on another column) would pass the test above.
    option = f"{storage.db.engine.dialect.name}_where"

    def reflected(conn: Any) -> dict[str, str | None]:
        inspector = inspect(conn)
        return {
            ix["name"]: _predicate(ix.get("dialect_options", {}).get(option))
            for table in Base.metadata.tables
            for ix in inspector.get_indexes(table)
        }

    async with storage.db.engine.connect() as conn:
        found = await conn.run_sync(reflected)
    wanted = {ix.name: _predicate(ix.dialect_kwargs.get(option)) for t in Base.metadata.tables.values() for ix in t.indexes}
    assert {name: found.get(name, "missing") for name in wanted} == wanted
    assert wanted["ix_payments_customer_id"] == "customer_id is not null"
    assert wanted["ix_payments_reconcile_status_paid_at"] is None


async def test_partial_payment_indexes_downgrade_to_the_whole_ones(storage: Storage) -> None:
    from alembic import command
    from alembic.config import Config

    from engine.db.migrate import script_location

    def downgrade_and_reflect(conn: Any) -> dict[str, tuple[list[str], Any]]:
        cfg = Config()
        cfg.set_main_option("script_location", str(script_location()))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0012")
        option = f"{conn.dialect.name}_where"
        return {ix["name"]: (ix["column_names"], ix.get("dialect_options", {}).get(option)) for ix in inspect(conn).get_indexes("payments")}

    async with storage.db.engine.begin() as conn:
        indexes = await conn.run_sync(downgrade_and_reflect)
    assert indexes["ix_payments_created_at"] == (["created_at"], None)
    assert indexes["ix_payments_customer_id"] == (["customer_id"], None)
    assert indexes["ix_payments_terminal_created_at"] == (["terminal", "created_at"], None)
    assert not [name for name, (_, where) in indexes.items() if where is not None]
    assert await current_revision(storage.db) == "0012"


async def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_url: str) -> None:
    from engine.db.database import Database

    db = Database(sqlite_url, busy_timeout=7)
    async with db.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        # Neither waits on the event loop: the driver retries a busy statement with asyncio
        # sleeps, and checkpoints run on the checkpointer's thread.
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 0
        assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0
    await db.dispose()


def _hold_write_lock(sqlite_url: str) -> sqlite3.Connection:
    """Another writer (as another process would be): a plain connection inside BEGIN IMMEDIATE."""
    other = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def _ticks_while(work: Awaitable[Any]) -> tuple[Any, int]:
    """Run ``work`` while a task counts event-loop turns of 10 ms: proof the loop kept running."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        return await work, ticks
    finally:
        ticker.cancel()


async def test_sqlite_write_waits_for_another_writer_without_blocking_the_loop(sqlite_url: str) -> None:
    from engine.db.database import Database

    db = Database(sqlite_url, busy_timeout=5)
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE t (x INTEGER)"))
    other = _hold_write_lock(sqlite_url)
    asyncio.get_running_loop().call_later(0.3, other.rollback)

    async def write() -> float:
        started = time.monotonic()
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
        return time.monotonic() - started

    waited, ticks = await _ticks_while(write())
    assert 0.25 <= waited < 2
    assert ticks >= 15  # about 30 turns in 0.3 s; a busy wait inside SQLite would allow none
    async with db.lookup() as session:
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 1
    other.close()
    await db.dispose()


async def test_sqlite_write_gives_up_after_the_busy_timeout(sqlite_url: str) -> None:
    from engine.db.database import Database

    db = Database(sqlite_url, busy_timeout=0.3)
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE t (x INTEGER)"))
    other = _hold_write_lock(sqlite_url)

    async def write() -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))

    started = time.monotonic()
    with pytest.raises(StorageError, match="database is locked"):
        await _ticks_while(write())
    assert 0.25 <= time.monotonic() - started < 2
    other.rollback()
    other.close()
    async with db.lookup() as session:
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    await db.dispose()


async def test_sqlite_checkpoints_run_on_the_checkpointer(sqlite_url: str) -> None:
    from engine.db import sqlite_driver
    from engine.db.database import Database

    db = Database(sqlite_url)
    path = Path(make_url(sqlite_url).database)
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE t (x TEXT)"))
    size_before = path.stat().st_size
    for i in range(sqlite_driver.CHECKPOINT_EVERY * 2):
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (:x)"), {"x": "x" * 2000 + str(i)})
    checkpointer = db._checkpointer
    assert checkpointer is not None
    for _ in range(200):
        if checkpointer.runs >= 1:
            break
        await asyncio.sleep(0.01)
    assert checkpointer.runs >= 1
    assert path.stat().st_size > size_before + 100_000  # pages copied from the WAL into the file
    await db.dispose()


async def test_datetimes_come_back_timezone_aware_utc(storage: Storage) -> None:
    pid = await new_payment(storage)
    async with storage.read() as tx:
        p = await repo.get(tx, pid)
    assert p.created_at.tzinfo is not None
    assert p.created_at.utcoffset() == timedelta(0)
    assert p.created_at == storage.clock.now()
    assert p.expires_at - p.created_at == timedelta(minutes=15)


async def test_insert_writes_row_history_audit_and_event(storage: Storage) -> None:
    pid = await new_payment(storage, reference="order-1")
    async with storage.read() as tx:
        hist = await repo.history(tx, pid)
        events = await journal.events_since(tx, 0)
        audit = await journal.list_audit(tx)
    assert [(h.from_status, h.to_status) for h in hist] == [(None, "PENDING")]
    assert [e.type for e in events] == ["payment.created"]
    assert events[0].payload["reference"] == "order-1" and events[0].payload["amount"] == "1000"
    assert [(a.action, a.actor, a.subject_id) for a in audit] == [("payment.create", "dara", pid)]


async def test_transition_is_conditional_and_writes_everything_once(storage: Storage) -> None:
    pid = await new_payment(storage)
    async with storage.transaction() as tx:
        paid = await repo.transition(
            tx, pid, expected=[PaymentStatus.PENDING], to=PaymentStatus.PAID, actor=Actor.daemon(), reason="found",
            changes={"paid_at": tx.now, "bakong_hash": "a" * 64, "next_check_at": None}, payer_account="abaakhppxxx@abaa",
        )
    assert paid is not None and paid.status is PaymentStatus.PAID and paid.payer_account == "abaakhppxxx@abaa"
    async with storage.transaction() as tx:
        again = await repo.transition(
            tx, pid, expected=[PaymentStatus.PENDING], to=PaymentStatus.CANCELLED, actor=CASHIER, reason="late"
        )
    assert again is None
    async with storage.read() as tx:
        types = [e.type for e in await journal.events_since(tx, 0)]
        hist = await repo.history(tx, pid)
        raw = await tx.session.scalar(select(PaymentRow.payer_account_enc).where(PaymentRow.id == pid))
    assert types == ["payment.created", "payment.completed"]
    assert [h.to_status for h in hist] == ["PENDING", "PAID"]
    assert raw is not None and "abaakhppxxx" not in raw and raw.startswith("v1:test1:")


async def test_two_concurrent_transitions_exactly_one_wins(storage: Storage) -> None:
    pid = await new_payment(storage)
    gate = asyncio.Event()

    async def attempt(to: PaymentStatus, actor: Actor) -> bool:
        await gate.wait()
        async with storage.transaction() as tx:
            result = await repo.transition(tx, pid, expected=[PaymentStatus.PENDING], to=to, actor=actor, reason="race")
            await asyncio.sleep(0.05)  # hold the transaction open so the other one really overlaps
            return result is not None

    tasks = [
        asyncio.create_task(attempt(PaymentStatus.PAID, Actor.daemon())),
        asyncio.create_task(attempt(PaymentStatus.CANCELLED, CASHIER)),
    ]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert sorted(results) == [False, True]
    async with storage.read() as tx:
        n_events = await tx.session.scalar(select(func.count()).select_from(EventRow).where(EventRow.type != "payment.created"))
        n_hist = await tx.session.scalar(select(func.count()).select_from(PaymentStatusHistoryRow))
        n_audit = await tx.session.scalar(select(func.count()).select_from(AuditLogRow))
    assert (n_events, n_hist, n_audit) == (1, 2, 2)


async def test_a_bakong_hash_can_complete_only_one_payment(storage: Storage) -> None:
    a = await new_payment(storage, 1)
    b = await new_payment(storage, 2)
    for pid in (a, b):
        try:
            async with storage.transaction() as tx:
                await repo.transition(
                    tx, pid, expected=[PaymentStatus.PENDING], to=PaymentStatus.PAID, actor=Actor.daemon(), reason="found",
                    changes={"bakong_hash": "f" * 64},
                )
        except Conflict as exc:
            assert "already recorded" in exc.message
            failed = pid
    assert failed == b
    async with storage.read() as tx:
        assert (await repo.get(tx, b)).status is PaymentStatus.PENDING
        assert [e.type for e in await journal.events_since(tx, 0)].count("payment.completed") == 1


async def test_idempotency_key_is_unique_per_scope(storage: Storage) -> None:
    await new_payment(storage, 1, idempotency_scope="key_a", idempotency_key="order-7")
    await new_payment(storage, 2, idempotency_scope="key_b", idempotency_key="order-7")
    with pytest.raises(Conflict, match="idempotency key"):
        await new_payment(storage, 3, idempotency_scope="key_a", idempotency_key="order-7")
    async with storage.read() as tx:
        found = await repo.get_by_idempotency_key(tx, "key_a", "order-7")
        assert found is not None and found[0].amount_minor == 1000
        assert await tx.session.scalar(select(func.count()).select_from(PaymentRow)) == 2


async def test_due_query_serves_customer_requests_first(storage: Storage, clock: ManualClock) -> None:
    now = clock.now()
    early = await new_payment(storage, 1, next_check_at=now - timedelta(seconds=30))
    later = await new_payment(storage, 2, next_check_at=now - timedelta(seconds=5))
    future = await new_payment(storage, 3, next_check_at=now + timedelta(minutes=5))
    async with storage.transaction() as tx:
        assert await repo.request_check(tx, future)
    async with storage.read() as tx:
        due = await repo.due_for_check(tx, now, limit=10)
        assert [p.id for p in due] == [future, early, later]
        assert [p.id for p in await repo.due_for_check(tx, now, limit=1)] == [future]
    async with storage.transaction() as tx:
        await repo.record_check(tx, future, result="not_found", next_check_at=now + timedelta(seconds=30))
    async with storage.read() as tx:
        assert [p.id for p in await repo.due_for_check(tx, now, limit=10)] == [early, later]
        p = await repo.get(tx, future)
    assert p.check_count == 1 and p.last_check_result == "not_found" and p.check_requested_at is None


async def test_search_filters_and_pages(storage: Storage, clock: ManualClock) -> None:
    ids = []
    for n in range(1, 8):
        ids.append(await new_payment(storage, n, reference=f"ref-{n}", currency="USD" if n % 2 else "KHR"))
        clock.advance(1)
    async with storage.read() as tx:
        page1, cursor = await repo.search(tx, repo.PaymentFilter(), limit=3)
        page2, cursor2 = await repo.search(tx, repo.PaymentFilter(), limit=3, cursor=cursor)
        page3, cursor3 = await repo.search(tx, repo.PaymentFilter(), limit=3, cursor=cursor2)
        usd, _ = await repo.search(tx, repo.PaymentFilter(currency="USD"), limit=50)
        by_text, _ = await repo.search(tx, repo.PaymentFilter(text="ref-4"), limit=50)
        with pytest.raises(InvalidInput):
            await repo.search(tx, repo.PaymentFilter(), cursor="garbage!")
    assert [p.id for p in page1 + page2 + page3] == ids[::-1]
    assert cursor3 is None
    assert len(usd) == 4 and all(p.currency == "USD" for p in usd)
    assert [p.reference for p in by_text] == ["ref-4"]


async def test_get_unknown_payment_is_not_found(storage: Storage) -> None:
    async with storage.read() as tx:
        with pytest.raises(NotFound):
            await repo.get(tx, "pay_nope")


async def test_leases_one_holder_and_takeover_after_expiry(storage: Storage, clock: ManualClock) -> None:
    async with storage.transaction() as tx:
        assert await leases.acquire(tx, "poller", "proc-a", ttl=30)
    async with storage.transaction() as tx:
        assert not await leases.acquire(tx, "poller", "proc-b", ttl=30)
    async with storage.transaction() as tx:
        assert await leases.acquire(tx, "poller", "proc-a", ttl=30)  # renewal
    clock.advance(31)
    async with storage.transaction() as tx:
        assert await leases.acquire(tx, "poller", "proc-b", ttl=30)
    async with storage.transaction() as tx:
        assert not await leases.release(tx, "poller", "proc-a")
        held = await leases.list_leases(tx)
    assert [(lease.name, lease.holder) for lease in held] == [("poller", "proc-b")]


async def test_concurrent_lease_acquisition_has_one_winner(storage: Storage) -> None:
    async def take(holder: str) -> bool:
        async with storage.transaction() as tx:
            return await leases.acquire(tx, "deliverer", holder, ttl=30)

    results = await asyncio.gather(*(take(f"proc-{i}") for i in range(5)))
    assert sum(results) == 1


async def test_ledger_reserves_atomically_under_concurrency(storage: Storage, clock: ManualClock) -> None:
    ledger = DatabaseRequestLedger(storage)

    async def reserve() -> bool:
        try:
            await ledger.reserve("tok123", "check_transaction_by_md5", now=clock.now(), daily_budget=10)
        except BudgetExhausted:
            return False
        return True

    results = await asyncio.gather(*(reserve() for _ in range(25)))
    assert sum(results) == 10
    usage = await ledger.usage("tok123", now=clock.now(), daily_budget=10)
    assert (usage.used, usage.remaining) == (10, 0)
    # The budget is per token: another token is untouched.
    assert (await ledger.usage("other", now=clock.now(), daily_budget=10)).used == 0


async def test_ledger_resets_at_phnom_penh_midnight_and_latches(storage: Storage) -> None:
    ledger = DatabaseRequestLedger(storage)
    # 16:59 UTC is 23:59 in Phnom Penh.
    before_midnight = datetime(2026, 3, 1, 16, 59, tzinfo=UTC)
    rid = await ledger.reserve("tok", "md5", now=before_midnight, daily_budget=1)
    await ledger.record(rid, outcome="not_found", http_status=200, error_code=1, duration_ms=12.5)
    with pytest.raises(BudgetExhausted) as err:
        await ledger.reserve("tok", "md5", now=before_midnight, daily_budget=1)
    assert err.value.until == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    after = datetime(2026, 3, 1, 17, 0, 1, tzinfo=UTC)
    await ledger.reserve("tok", "md5", now=after, daily_budget=1)
    # errorCode 17 latches until the next local midnight whatever our own budget says.
    await ledger.latch_exhausted("tok", now=after, until=datetime(2026, 3, 2, 17, 0, tzinfo=UTC))
    with pytest.raises(QuotaExhausted):
        await ledger.reserve("tok", "md5", now=after + timedelta(hours=3), daily_budget=100)
    assert (await ledger.usage("tok", now=after, daily_budget=100)).exhausted_until is not None


async def test_writers_locking_a_row_and_the_event_log_in_either_order_both_commit(storage: Storage) -> None:
    """One writer locks a row and then appends an event, the other appends and then locks the
    same row. Taking the event-log lock at the first event let PostgreSQL abort one as a
    deadlock; the lock is taken first, so the second writer waits and both commit."""
    async with storage.transaction() as tx:
        await state.set_state(tx, "shared", {"by": None})
    row_locked, event_appended = asyncio.Event(), asyncio.Event()

    async def row_then_event() -> None:
        async with storage.transaction() as tx:
            await state.set_state(tx, "shared", {"by": "row-first"})
            row_locked.set()
            with contextlib.suppress(TimeoutError):  # the other writer cannot get this far now
                await asyncio.wait_for(event_appended.wait(), 0.3)
            await journal.append_event(tx, "test.row_first", "test", "1", {})

    async def event_then_row() -> None:
        await row_locked.wait()
        async with storage.transaction() as tx:
            await journal.append_event(tx, "test.event_first", "test", "2", {})
            event_appended.set()
            await state.set_state(tx, "shared", {"by": "event-first"})

    await asyncio.wait_for(asyncio.gather(row_then_event(), event_then_row()), 10)
    async with storage.read() as tx:
        types = list((await tx.session.scalars(select(EventRow.type).where(EventRow.type.like("test.%")).order_by(EventRow.sequence))).all())
        assert await state.get_state(tx, "shared") == {"by": "event-first"}
    assert types == ["test.row_first", "test.event_first"]


async def test_a_transaction_without_the_event_log_lock_refuses_events(storage: Storage) -> None:
    with pytest.raises(RuntimeError, match="events=False"):
        async with storage.transaction(events=False) as tx:
            await state.set_state(tx, "lonely", {"n": 1})
            await journal.append_event(tx, "test.refused", "test", "1", {})
    async with storage.read() as tx:
        assert await state.get_state(tx, "lonely") is None
        assert await tx.session.scalar(select(func.count()).select_from(EventRow).where(EventRow.type == "test.refused")) == 0


async def test_state_and_secrets(storage: Storage) -> None:
    async with storage.transaction() as tx:
        await state.set_state(tx, "poller", {"paused": True})
        await state.set_secret(tx, "bakong_token", "eyJhbGciOi.secret.token")
    async with storage.transaction() as tx:
        await state.set_state(tx, "poller", {"paused": False})
    async with storage.read() as tx:
        assert await state.get_state(tx, "poller") == {"paused": False}
        assert await state.get_secret(tx, "bakong_token") == "eyJhbGciOi.secret.token"
        raw = (await tx.session.execute(text("SELECT value_enc FROM secrets"))).scalar()
    assert "secret.token" not in raw


async def test_point_read_by_md5_reads_exactly_what_a_session_reads(storage: Storage) -> None:
    pid = await new_payment(storage, md5="ab" * 16, reference="order-7")
    async with storage.transaction() as tx:
        await repo.transition(
            tx, pid, expected=[PaymentStatus.PENDING], to=PaymentStatus.PAID, actor=Actor.daemon(), reason="found",
            changes={"paid_at": tx.now, "bakong_hash": "c" * 64, "next_check_at": None,
                     "bakong_record": {"hash": "c" * 64, "amount": 10.5, "memo": "ខ្មែរ"}},
            payer_account="abaakhppxxx@abaa",
        )  # fmt: skip
    async with storage.read() as tx:
        through_session = await repo.get_by_md5(tx, "ab" * 16)
    for md5 in ("ab" * 16, "AB" * 16):
        point = await repo.read_by_md5(storage, md5)
        assert point == through_session
    assert point.paid_at is not None and point.paid_at.utcoffset() == timedelta(0)
    assert point.bakong_record == {"hash": "c" * 64, "amount": 10.5, "memo": "ខ្មែរ"}
    assert point.payer_account == "abaakhppxxx@abaa" and point.status is PaymentStatus.PAID
    with pytest.raises(NotFound):
        await repo.read_by_md5(storage, "cd" * 16)


async def test_compiled_writes_store_exactly_what_a_session_stores(storage: Storage) -> None:
    row = dict(
        at=storage.clock.now(), actor_type="cashier", actor="dara", action="test.write", subject_type="payment",
        subject_id="pay_1", before=None, after={"amount": 10.5, "memo": "ខ្មែរ", "tags": [1, None]}, reason=None,
    )  # fmt: skip
    insert_audit = insert(AuditLogRow)
    async with storage.transaction() as tx:
        await tx.session.execute(insert_audit, {**row, "action": "test.session"})
        assert await tx.execute(insert_audit, {**row, "action": "test.compiled"}) is None
        returned = await tx.execute(insert(EventRow).returning(EventRow.sequence, EventRow.occurred_at), dict(
            id="msg_1", type="test.compiled", subject_type="payment", subject_id="pay_1", payload={}, occurred_at=row["at"],
        ))  # fmt: skip
    assert returned is not None and returned.sequence >= 1 and returned.occurred_at == row["at"]
    columns = "at, actor_type, actor, subject_type, subject_id, before, after, reason, source_ip"
    async with storage.read() as tx:
        stored = (await tx.session.execute(text(f"SELECT action, {columns} FROM audit_log WHERE action LIKE 'test.%' ORDER BY action"))).all()
        typed = (await tx.session.scalars(select(AuditLogRow).where(AuditLogRow.action == "test.compiled"))).one()
    assert [r[0] for r in stored] == ["test.compiled", "test.session"]
    assert stored[0][1:] == stored[1][1:]
    assert typed.after == row["after"] and typed.before is None and typed.at == row["at"]


async def test_compiled_writes_follow_the_sessions_pending_changes(storage: Storage) -> None:
    async with storage.transaction() as tx:
        tx.session.add(EngineStateRow(name="pending", value={"n": 1}, updated_at=tx.now))  # not flushed yet
        await tx.execute(update(EngineStateRow).where(EngineStateRow.name == "pending").values(value={"n": 2}), {})
    async with storage.read() as tx:
        assert await state.get_state(tx, "pending") == {"n": 2}


async def test_compiled_write_conflicts_and_failures_are_sqlalchemys_errors(storage: Storage) -> None:
    await new_payment(storage, md5="ef" * 16)
    with pytest.raises(Conflict, match="KHQR"):
        await new_payment(storage, 2, md5="ef" * 16)
    with pytest.raises(StorageError):
        async with storage.transaction() as tx:
            await tx.execute(insert(PaymentStatusHistoryRow), dict(
                payment_id="pay_missing", from_status=None, to_status="PENDING", reason="x", actor="y", at=tx.now,
            ))  # fmt: skip  # no such payment: a foreign key failure
    async with storage.read() as tx:
        assert await tx.session.scalar(select(func.count()).select_from(PaymentRow)) == 1
        assert await tx.session.scalar(select(func.count()).select_from(PaymentStatusHistoryRow)) == 1


async def test_sqlite_long_work_shares_the_loop_and_big_results_arrive_whole(sqlite_url: str) -> None:
    from engine.db import sqlite_driver
    from engine.db.database import Database

    db = Database(sqlite_url)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.thread_time()
        while not stop.is_set():
            await asyncio.sleep(0)
            now = time.thread_time()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.thread_time()
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE t (n INTEGER, pad TEXT)"))
        for n in range(3000):  # one statement at a time: the loop must get turns in between
            await session.execute(text("INSERT INTO t VALUES (:n, :pad)"), {"n": n, "pad": "p" * 50})
    async with db.lookup() as session:
        rows = (await session.execute(text("SELECT n FROM t ORDER BY n"))).all()
    took = time.thread_time() - started
    stop.set()
    await task
    assert [r.n for r in rows] == list(range(3000))  # fetched in chunks of FETCH_CHUNK, none lost
    assert len(rows) > sqlite_driver.FETCH_CHUNK * 10
    assert len(gaps) > 20 and took > 0.05
    # The loop was never held for long: far less than the whole run, whatever the machine's speed.
    # Measured in this thread's CPU time (the statements run on the loop's thread), so a busy machine
    # that takes the CPU away mid-statement does not read as the driver holding the loop.
    assert max(gaps) < max(0.05, took / 10)
    await db.dispose()


async def test_sqlite_tasks_of_a_few_statements_each_never_yield(sqlite_url: str) -> None:
    """The slice is one task's run of statements: thousands of tasks of a few statements each,
    all ready in one loop turn (many ``SLICE_SECONDS`` of work together), each finish in the turn
    they start in, instead of the late ones waiting a turn each."""
    from engine.db import sqlite_driver
    from engine.db.database import Database

    db = Database(sqlite_url)
    reader = await db.point_reader()
    turn = 0
    stop = False
    lagged = 0

    def count() -> None:
        nonlocal turn
        turn += 1
        if not stop:
            asyncio.get_running_loop().call_soon(count)

    async def one() -> None:
        nonlocal lagged
        began = turn
        for _ in range(5):
            await reader.fetchone("SELECT 1", ())
        lagged += turn != began

    tasks = [asyncio.ensure_future(one()) for _ in range(4000)]
    asyncio.get_running_loop().call_soon(count)
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    took = time.perf_counter() - started
    stop = True
    assert took > 8 * sqlite_driver.SLICE_SECONDS  # enough work to have yielded under a per-turn slice
    assert lagged == 0
    await db.dispose()


async def _sqlite_storage(sqlite_url: str, clock: ManualClock, *, busy_timeout: float = 10.0) -> Storage:
    from engine.crypto import DataCipher, parse_key_spec
    from engine.db.database import Database
    from engine.db.migrate import upgrade
    from tests.support.settings import TEST_DATA_KEY

    kid, key = parse_key_spec(TEST_DATA_KEY)
    db = Database(sqlite_url, busy_timeout=busy_timeout)
    await upgrade(db)
    return Storage(db, clock=clock, cipher=DataCipher(kid, {kid: key}))


async def _pooled_connections_in_a_transaction(storage: Storage) -> int:
    """How many of the pool's idle connections are still inside a transaction (should be none)."""
    pool = storage.db.engine.sync_engine.pool
    held = []
    try:
        while pool.checkedin():  # type: ignore[attr-defined]
            held.append(await storage.db.engine.connect())
        drivers = [(await c.get_raw_connection()).driver_connection for c in held]
        return sum(d.is_in_transaction() if storage.db.is_postgres else d.in_transaction for d in drivers)
    finally:
        for c in held:
            await c.close()


async def test_write_of_compiled_statements_makes_no_session_and_commits(storage: Storage) -> None:
    async with storage.transaction() as tx:
        await tx.execute(insert(EngineStateRow), {"name": "a", "value": {"n": 1}, "updated_at": tx.now})
        await journal.append_event(tx, "test.written", "state", "a", {"n": 1})
        held = tx._session
    assert held.made is None  # type: ignore[union-attr]  # begun and committed on the driver alone
    async with storage.read() as tx:
        assert await state.get_state(tx, "a") == {"n": 1}
        assert [e.type for e in await journal.events_since(tx, 0)] == ["test.written"]
    assert await _pooled_connections_in_a_transaction(storage) == 0


async def test_write_mixing_compiled_statements_and_the_session_commits_both_once(storage: Storage) -> None:
    async with storage.transaction() as tx:
        await tx.execute(insert(EngineStateRow), {"name": "compiled", "value": {}, "updated_at": tx.now})
        await state.set_state(tx, "through-session", {"n": 1})  # the session, made now, sees the row above
        assert await state.get_state(tx, "compiled") == {}
        await tx.execute(insert(EngineStateRow), {"name": "after", "value": {}, "updated_at": tx.now})
    async with storage.read() as tx:
        names = (await tx.session.scalars(select(EngineStateRow.name).order_by(EngineStateRow.name))).all()
    assert names == ["after", "compiled", "through-session"]
    assert await _pooled_connections_in_a_transaction(storage) == 0


async def test_write_that_fails_rolls_back_compiled_and_session_writes(storage: Storage) -> None:
    for with_session in (False, True):
        with pytest.raises(RuntimeError, match="midway"):
            async with storage.transaction() as tx:
                await tx.execute(insert(EngineStateRow), {"name": "compiled", "value": {}, "updated_at": tx.now})
                if with_session:
                    await state.set_state(tx, "through-session", {"n": 1})
                raise RuntimeError("midway")
        async with storage.read() as tx:
            assert await tx.session.scalar(select(func.count()).select_from(EngineStateRow)) == 0
        assert await _pooled_connections_in_a_transaction(storage) == 0


async def test_write_whose_commit_fails_leaves_no_transaction_open(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    if storage.db.is_postgres:
        import asyncpg.transaction
        from asyncpg.exceptions import SerializationError

        async def failing_commit(self: Any) -> None:
            raise SerializationError("could not serialize access")

        monkeypatch.setattr(asyncpg.transaction.Transaction, "commit", failing_commit)
        message = "could not serialize access"
    else:
        from engine.db import sqlite_driver

        async def failing_commit(self: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(sqlite_driver.Connection, "commit", failing_commit)
        message = "disk I/O error"
    with pytest.raises(StorageError, match=message):
        async with storage.transaction() as tx:
            await tx.execute(insert(EngineStateRow), {"name": "lost", "value": {}, "updated_at": tx.now})
    monkeypatch.undo()
    assert await _pooled_connections_in_a_transaction(storage) == 0
    async with storage.transaction() as tx:  # the connection went back usable
        await tx.execute(insert(EngineStateRow), {"name": "kept", "value": {}, "updated_at": tx.now})
    async with storage.read() as tx:
        assert (await tx.session.scalars(select(EngineStateRow.name))).all() == ["kept"]


async def test_compiled_write_of_a_duplicate_is_an_integrity_error_on_both_databases(storage: Storage) -> None:
    from sqlalchemy.exc import IntegrityError

    async with storage.transaction() as tx:
        await tx.execute(insert(EngineStateRow), {"name": "one", "value": {}, "updated_at": tx.now})
    with pytest.raises(RuntimeError, match="refused"):
        async with storage.transaction() as tx:
            with pytest.raises(IntegrityError):  # as through a session: what callers catch (a Conflict)
                await tx.execute(insert(EngineStateRow), {"name": "one", "value": {}, "updated_at": tx.now})
            raise RuntimeError("refused")
    assert await _pooled_connections_in_a_transaction(storage) == 0


async def test_sqlite_write_waits_for_another_process_then_gives_up_with_a_storage_error(sqlite_url: str, clock: ManualClock) -> None:
    storage = await _sqlite_storage(sqlite_url, clock, busy_timeout=0.3)
    other = _hold_write_lock(sqlite_url)
    started = time.monotonic()
    with pytest.raises(StorageError, match="database is locked"):
        async with storage.transaction() as tx:
            await tx.execute(insert(EngineStateRow), {"name": "late", "value": {}, "updated_at": tx.now})
    assert 0.25 <= time.monotonic() - started < 2
    other.rollback()
    asyncio.get_running_loop().call_later(0.2, other.rollback)
    other.execute("BEGIN IMMEDIATE")  # held again, released in 0.2 s: this time the write waits and lands
    async with storage.transaction() as tx:
        await tx.execute(insert(EngineStateRow), {"name": "waited", "value": {}, "updated_at": tx.now})
    other.close()
    async with storage.read() as tx:
        assert (await tx.session.scalars(select(EngineStateRow.name))).all() == ["waited"]
    await storage.db.dispose()
