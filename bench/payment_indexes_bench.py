"""The payments table's indexes: what a create's writes cost, and which index each query uses.

For SQLite (a file) and PostgreSQL (scratch databases on 127.0.0.1:5432, skipped if down), a
database at ``--before`` (default 0012: 17 indexes, all whole) and one at head:

- ``inserts``: raw creates, as the create transaction writes them (payment, status history,
  audit, event, then COMMIT), straight on the driver (stdlib ``sqlite3``, ``asyncpg``) so only
  the database's work is measured: CPU µs per create (SQLite in-process; on PostgreSQL the
  server backend's, from /proc, the server being local), and what a create writes (WAL frames on
  SQLite, WAL bytes on PostgreSQL). Each figure is the median of ``--runs`` batches over ``--rows`` payments.
- ``plans``: every query the engine runs that can read a partial index (or the dropped
  ``created_at`` index), explained on both schemas (``EXPLAIN QUERY PLAN``, ``EXPLAIN``) over
  ``--rows`` payments shaped like a shop's (most without customer, subscription or terminal);
  SQLite as the engine runs it (no ANALYZE), PostgreSQL analysed.

Run: .venv/bin/python bench/payment_indexes_bench.py [inserts|plans] [--rows 100000] [--creates 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import ClauseElement, Executable, func, insert, or_, select  # noqa: E402
from sqlalchemy.dialects import postgresql, sqlite  # noqa: E402
from sqlalchemy.ext.compiler import compiles  # noqa: E402

from engine.db.database import Database  # noqa: E402
from engine.db.migrate import upgrade  # noqa: E402
from engine.db.models import AuditLogRow, EventRow, PaymentRow, PaymentStatusHistoryRow, SubscriptionInvoiceRow  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 12, 5, 5, 0, tzinfo=UTC)
PAID = ("PAID", "PAID_LATE")
P = PaymentRow


class Explain(Executable, ClauseElement):
    """``EXPLAIN [QUERY PLAN]`` of a statement, its parameters bound as the engine binds them."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain)
def _explain(element: Explain, compiler: Any, **kw: Any) -> str:
    prefix = "EXPLAIN QUERY PLAN " if compiler.dialect.name == "sqlite" else "EXPLAIN "
    return prefix + compiler.process(element.statement, **kw)


def _queries() -> list[tuple[str, Any]]:
    """The engine's reads of the payments table that an index on a NULL-at-create column or on
    ``created_at`` serves, as the repositories build them (file: function)."""
    day = NOW - timedelta(days=1)
    newest = (P.created_at.desc(), P.id.desc())
    return [
        ("listing.search reference", select(P).where(P.reference == "ref-77").order_by(*newest).limit(51)),
        ("listing.search customer_id", select(P).where(P.customer_id == "cust-7").order_by(*newest).limit(51)),
        ("listing.search subscription_id", select(P).where(P.subscription_id == "sub-7").order_by(*newest).limit(51)),
        ("listing.search created window", select(P).where(P.created_at >= day, P.created_at < NOW).order_by(*newest).limit(51)),
        ("due_queue: customer says paid",
         select(P).where(P.check_requested_at.is_not(None), P.next_check_at.is_not(None)).order_by(P.check_requested_at).limit(50)),
        ("renewals.paid_open_invoices",
         select(SubscriptionInvoiceRow.id, P.id).join(P, P.invoice_id == SubscriptionInvoiceRow.id)
         .where(SubscriptionInvoiceRow.status == "OPEN", P.status == "PAID")
         .order_by(SubscriptionInvoiceRow.created_at, SubscriptionInvoiceRow.id).limit(50)),
        ("displays.latest_payment", select(P.id).where(P.terminal == "till-3").order_by(*newest).limit(1)),
        ("reports: terminal exists", select(P.id).where(P.terminal == "till-3").limit(1)),
        ("reports: terminals", select(P.terminal).where(P.terminal.is_not(None)).distinct().order_by(P.terminal)),
        ("reports: window of a terminal",
         select(func.count()).where(P.created_at >= day, P.created_at < NOW, P.terminal == "till-3")),
        ("reports: paid count in window",
         select(func.count()).where(P.status == "PAID", P.paid_at.is_not(None), P.created_at >= day, P.created_at < NOW)),
        ("reconciliation.to_reconcile",
         select(P).where(P.status.in_(PAID), P.bakong_hash.is_not(None), P.paid_at < NOW, P.paid_at >= day - timedelta(days=30),
                         P.reconcile_status.is_(None)).order_by(P.paid_at, P.id).limit(50)),
        ("reconciliation.flagged_on",
         select(P).where(P.status.in_(PAID), P.paid_at >= day, P.paid_at < NOW, P.reconcile_status.is_not(None),
                         P.reconcile_status != "ok").order_by(P.paid_at, P.id).limit(50)),
        ("reconciliation.count_day",
         select(P.reconcile_status, func.count()).where(P.status.in_(PAID), P.paid_at >= day, P.paid_at < NOW)
         .group_by(P.reconcile_status)),
        ("counts.today_totals",
         select(P.currency, func.count()).where(P.status.in_(PAID), P.paid_at >= day).group_by(P.currency)),
        ("counts.count_created_since", select(func.count()).where(P.created_at >= day)),
        ("counts.count_shop_payments_created_between",
         select(func.count()).where(P.created_at >= day, P.created_at < NOW, P.subscription_id.is_(None))),
        ("listing.search text", select(P).where(or_(P.reference.ilike("%ref-77%"), P.md5 == "ref-77", P.id == "ref-77"))
         .order_by(*newest).limit(51)),
    ]  # fmt: skip


def _shop_payment(i: int) -> dict[str, Any]:
    """One of ``--rows`` payments: a month of a shop's, 2% by a customer, 1% a subscription's,
    a third at a console terminal, 70% paid (a few flagged), the 50 newest pending (10 of them
    "customer says paid")."""
    created = NOW - timedelta(seconds=i * 26)
    paid = i % 10 < 7
    return {
        "id": f"pay_{i:012d}", "idempotency_scope": "api:bench", "idempotency_key": None, "request_fingerprint": None,
        "reference": f"ref-{i}", "amount_minor": 100 + i % 5000, "currency": "USD" if i % 3 else "KHR",
        "khqr": "0002010102" + "x" * 180, "md5": f"{i:032x}", "receiving_account": "shop@devb", "bill_number": None,
        "description": None, "customer_id": f"cust-{i % 997}" if i % 50 == 0 else None,
        "status": "PAID" if paid else ("PENDING" if i < 50 else "TIMEOUT"), "created_at": created, "updated_at": created,
        "expires_at": created + timedelta(minutes=15), "paid_at": created + timedelta(seconds=40) if paid else None,
        "next_check_at": created + timedelta(seconds=5) if i < 50 else None,
        "check_requested_at": created if i < 50 and i % 5 == 0 else None, "late_watch_until": None,
        "check_count": 3, "last_checked_at": None, "last_check_result": None,
        "bakong_hash": f"{i:064x}" if paid else None, "payer_account_enc": None, "bakong_record": None,
        "created_by_type": "api_key" if i % 3 else "cashier", "created_by": "bench",
        "api_key_id": None, "subscription_id": f"sub-{i % 331}" if i % 100 == 0 else None,
        "invoice_id": f"inv-{i}" if i % 100 == 0 else None, "deep_link": None,
        "terminal": f"till-{i % 5}" if i % 3 == 0 else None,
        "reconcile_status": ("ok" if i % 97 else "not_found") if paid and i > 3000 else None,
        "reconciled_at": created + timedelta(hours=20) if paid and i > 3000 else None,
    }  # fmt: skip


async def _make(url: str, revision: str, rows: int) -> Database:
    db = Database(url)
    await upgrade(db, revision)
    if rows:
        payments = [_shop_payment(i) for i in range(rows)]
        invoices = [
            {"id": p["invoice_id"], "subscription_id": "sub", "kind": "renewal", "period_start": p["created_at"],
             "period_end": p["created_at"], "plan_id": "plan", "amount_minor": 100, "currency": "USD",
             "status": "OPEN" if j % 20 == 0 else "PAID", "payment_id": p["id"], "created_at": p["created_at"],
             "updated_at": p["created_at"], "paid_at": None}
            for j, p in enumerate(x for x in payments if x["invoice_id"])
        ]  # fmt: skip
        async with db.engine.begin() as conn:
            for start in range(0, rows, 5000):
                await conn.execute(insert(PaymentRow), payments[start : start + 5000])
            if db.engine.dialect.name == "postgresql":  # invoices of subscriptions this bench does not make
                await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                await conn.execute(insert(SubscriptionInvoiceRow), invoices)
        if db.engine.dialect.name == "sqlite":  # the same, on a connection without foreign keys
            raw = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
            statement = str(insert(SubscriptionInvoiceRow).compile(dialect=sqlite.dialect(paramstyle="named"), column_keys=list(invoices[0])))
            raw.executemany(statement, [{k: _raw(v, "sqlite") for k, v in inv.items()} for inv in invoices])
            raw.close()
        if db.engine.dialect.name == "postgresql":
            async with db.engine.connect() as conn:
                await conn.exec_driver_sql("COMMIT")
                await conn.exec_driver_sql("VACUUM ANALYZE payments")  # as autovacuum leaves it
                await conn.exec_driver_sql("VACUUM ANALYZE subscription_invoices")
    return db


async def _plan(db: Database, statement: Any) -> str:
    """The plan, and the median time of 21 runs of the statement."""
    async with db.engine.connect() as conn:
        rows = (await conn.execute(Explain(statement))).all()
        took = []
        for _ in range(21):
            started = time.perf_counter()
            (await conn.execute(statement)).all()
            took.append(time.perf_counter() - started)
    if db.engine.dialect.name == "sqlite":
        plan = "; ".join(str(r[-1]) for r in rows)
    else:
        plan = " | ".join(str(r[0]).strip().split("  (cost")[0] for r in rows if any(w in r[0] for w in ("Scan", "Join", "Sort")))
    return f"{statistics.median(took) * 1e3:7.2f} ms  {plan}"


async def plans(targets: list[tuple[str, Callable[[str], str]]], args: argparse.Namespace) -> None:
    for name, url_for in targets:
        before = await _make(url_for("before"), args.before, args.rows)
        after = await _make(url_for("after"), "head", args.rows)
        print(f"\n{name}, {args.rows:,} payments: query plans at {args.before} -> head")
        try:
            for label, statement in _queries():
                old, new = await _plan(before, statement), await _plan(after, statement)
                print(f"  {label}\n    {args.before}: {old}\n    head: {new}")
        finally:
            await before.dispose()
            await after.dispose()


# -- inserts -----------------------------------------------------------------------------------


def _create_rows(i: int, run: str) -> list[tuple[Any, dict[str, Any]]]:
    """What one API create writes: its payment (reference set, the rest as the API leaves it),
    the first status-history row, an audit row and the ``payment.created`` event."""
    payment = {**_shop_payment(0), "id": f"pay_{run}_{i}", "md5": uuid.uuid4().hex, "reference": f"ref-{run}-{i}",
               "status": "PENDING", "created_at": NOW, "updated_at": NOW, "expires_at": NOW + timedelta(minutes=15),
               "paid_at": None, "next_check_at": NOW + timedelta(seconds=5), "check_requested_at": None, "bakong_hash": None,
               "customer_id": None, "subscription_id": None, "invoice_id": None, "terminal": None, "reconcile_status": None,
               "reconciled_at": None, "check_count": 0, "created_by_type": "api_key", "request_fingerprint": "f" * 64}  # fmt: skip
    data = {k: str(v) for k, v in payment.items() if k in ("id", "status", "reference", "md5", "amount_minor", "currency")}
    return [
        (PaymentRow, payment),
        (PaymentStatusHistoryRow, {"payment_id": payment["id"], "from_status": None, "to_status": "PENDING",
                                   "reason": "created", "actor": "api_key:bench", "at": NOW}),
        (AuditLogRow, {"at": NOW, "actor_type": "api_key", "actor": "bench", "action": "payment.create",
                       "subject_type": "payment", "subject_id": payment["id"], "before": None, "after": data,
                       "reason": None, "source_ip": None}),
        (EventRow, {"id": f"evt_{run}_{i}", "type": "payment.created", "subject_type": "payment",
                    "subject_id": payment["id"], "payload": data, "occurred_at": NOW}),
    ]  # fmt: skip


def _raw(value: Any, dialect: str) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, datetime) and dialect == "sqlite":
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return value


def _sqlite_inserts(path: str, creates: int, runs: int) -> tuple[float, float]:
    dialect = sqlite.dialect(paramstyle="named")
    sql = {m: str(insert(m).compile(dialect=dialect, column_keys=list(r))) for m, r in _create_rows(0, "x")}
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    cpu: list[float] = []
    frames: list[float] = []
    for run in range(runs):
        batch = [[(sql[m], {k: _raw(v, "sqlite") for k, v in r.items()}) for m, r in _create_rows(i, str(run))] for i in range(creates)]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        started = time.process_time()
        for writes in batch:
            conn.execute("BEGIN IMMEDIATE")
            for statement, params in writes:
                conn.execute(statement, params)
            conn.execute("COMMIT")
        cpu.append((time.process_time() - started) / creates * 1e6)
        frames.append(os.path.getsize(path + "-wal") / (page + 24) / creates)
    conn.close()
    return statistics.median(cpu), statistics.median(frames)


async def _pg_inserts(dsn: str, creates: int, runs: int) -> tuple[float, float]:
    dialect = postgresql.asyncpg.dialect()
    statements = {}
    for model, row in _create_rows(0, "x"):
        stmt = insert(model).values(sequence=-func.nextval("events_pending_seq")) if model is EventRow else insert(model)
        compiled = stmt.compile(dialect=dialect, column_keys=list(row))
        statements[model] = (str(compiled), list(compiled.positiontup or ()), compiled.params)
    conn = await asyncpg.connect(dsn)
    # The server's backend runs on this machine: its CPU is read from /proc. No wait for the
    # WAL flush (the disk's time is not the indexes' cost), and a checkpoint before each batch
    # so every batch writes its pages' full images alike.
    stat = Path(f"/proc/{await conn.fetchval('SELECT pg_backend_pid()')}/stat")
    await conn.execute("SET synchronous_commit = off")
    cpu: list[float] = []
    wal: list[float] = []
    try:
        for run in range(runs):
            batch = [[(statements[m][0], [_raw(r[k] if k in r else statements[m][2][k], "pg") for k in statements[m][1]])
                      for m, r in _create_rows(i, str(run))] for i in range(creates)]  # fmt: skip
            await conn.execute("CHECKPOINT")
            lsn_before = await conn.fetchval("SELECT pg_current_wal_lsn()")
            ticks = _cpu_ticks(stat)
            for writes in batch:
                async with conn.transaction():
                    for statement, params in writes:
                        await conn.execute(statement, *params)
            cpu.append((_cpu_ticks(stat) - ticks) / os.sysconf("SC_CLK_TCK") / creates * 1e6)
            wal.append(float(await conn.fetchval("SELECT pg_current_wal_lsn() - $1::pg_lsn", lsn_before)) / creates)
    finally:
        await conn.close()
    return statistics.median(cpu), statistics.median(wal)


def _cpu_ticks(stat: Path) -> int:
    """utime + stime of a process, in clock ticks."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def inserts(targets: list[tuple[str, Callable[[str], str]]], args: argparse.Namespace) -> None:
    print(f"creates written raw (payment + history + audit + event + COMMIT), median of {args.runs} batches of "
          f"{args.creates} over {args.rows:,} payments")  # fmt: skip
    for name, url_for in targets:
        for label, revision in ((args.before, args.before), ("head", "head")):
            db = await _make(url_for(label), revision, args.rows)
            await db.dispose()
            url = url_for(label)
            if name == "SQLite":
                cpu, frames = _sqlite_inserts(url.split("///", 1)[1], args.creates, args.runs)
                print(f"  SQLite      {label:5} {cpu:6.0f} µs CPU per create  {frames:5.1f} WAL pages per create")
            else:
                cpu, wal = await _pg_inserts(url.replace("postgresql+asyncpg", "postgresql"), args.creates, args.runs)
                print(f"  PostgreSQL  {label:5} {cpu:6.0f} µs server CPU per create  {wal:7.0f} WAL bytes per create")


async def main(args: argparse.Namespace) -> None:
    tmp = tempfile.TemporaryDirectory()
    targets: list[tuple[str, Callable[[str], str]]] = [("SQLite", lambda label: f"sqlite+aiosqlite:///{tmp.name}/{label}.db")]
    pg_names: list[str] = []
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    except Exception as exc:  # any failure to connect: skip PostgreSQL
        print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}")
        admin = None
    if admin is not None:
        prefix = f"bc_index_bench_{uuid.uuid4().hex[:8]}"
        for label in ("before", "after", args.before, "head"):
            if f"{prefix}_{label}" not in pg_names:
                pg_names.append(f"{prefix}_{label}")
                await admin.execute(f'CREATE DATABASE "{prefix}_{label}"')
        targets.append(("PostgreSQL", lambda label: f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefix}_{label}"))
    try:
        await (plans if args.what == "plans" else inserts)(targets, args)
    finally:
        if admin is not None:
            for name in pg_names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["inserts", "plans"])
    parser.add_argument("--rows", type=int, default=100_000, help="payments in the table first")
    parser.add_argument("--creates", type=int, default=2000, help="creates per batch (inserts)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", default="0012", help="the revision to compare head with")
    asyncio.run(main(parser.parse_args()))
