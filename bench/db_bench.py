"""Storage benchmark: payment creation rate and the poller's "due payments" query.

Prints, for SQLite (a file) and PostgreSQL (a scratch database on 127.0.0.1:5432, skipped if down):
- payments created per second through the real write path (row + history + audit + event, one
  transaction each), sequentially;
- the time of ``due_for_check`` (limit 50) with 100,000 payments of which 1% are due.

Targets (issue 3): due query under 5 ms on both; creation above 1,000/s on SQLite.
Run: .venv/bin/python bench/db_bench.py [--rows 100000] [--creates 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import insert

from engine.clock import SystemClock
from engine.crypto import DataCipher, generate_key_spec, parse_key_spec
from engine.db import payments as repo
from engine.db.database import Database
from engine.db.migrate import upgrade
from engine.db.models import PaymentRow
from engine.db.storage import Storage
from engine.ids import IdFactory
from engine.records import Actor, ActorType

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ACTOR = Actor(ActorType.CASHIER, "bench")


async def make_storage(url: str) -> Storage:
    kid, key = parse_key_spec(generate_key_spec("bench"))
    db = Database(url)
    await upgrade(db)
    clock = SystemClock()
    return Storage(db, clock=clock, cipher=DataCipher(kid, {kid: key}), ids=IdFactory(clock, random.Random(1)))


async def bench_creates(storage: Storage, n: int) -> float:
    now = storage.clock.now()
    start = time.perf_counter()
    for i in range(n):
        async with storage.transaction() as tx:
            await repo.insert(
                tx, actor=ACTOR, amount_minor=1000 + i, currency="KHR", khqr=f"create-{i}", md5=uuid.uuid4().hex,
                receiving_account="shop@devb", expires_at=now + timedelta(minutes=15), next_check_at=now,
            )
    return n / (time.perf_counter() - start)


async def load_rows(storage: Storage, rows: int) -> None:
    now = storage.clock.now()
    batch = []
    for i in range(rows):
        due = i % 100 == 0  # 1% due now; the rest scheduled later or finished (NULL)
        batch.append(
            dict(
                id=f"pay_bench{i:012d}", idempotency_scope="", amount_minor=1000, currency="USD", khqr=f"q{i}",
                md5=uuid.uuid4().hex, receiving_account="shop@devb", status="PENDING" if i % 3 else "PAID",
                created_at=now, updated_at=now, expires_at=now + timedelta(minutes=15),
                next_check_at=(now - timedelta(seconds=1)) if due else ((now + timedelta(seconds=30 + i % 600)) if i % 3 else None),
                check_count=0, created_by_type="cashier", created_by="bench",
            )
        )
        if len(batch) == 5000:
            async with storage.transaction() as tx:
                await tx.session.execute(insert(PaymentRow), batch)
            batch = []
    if batch:
        async with storage.transaction() as tx:
            await tx.session.execute(insert(PaymentRow), batch)
    if storage.db.is_postgres:
        async with storage.db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE payments")
    else:
        async with storage.db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")


async def bench_due(storage: Storage, repeats: int = 200) -> tuple[float, float, int]:
    now = storage.clock.now()
    times = []
    found = 0
    for _ in range(repeats):
        async with storage.read() as tx:
            t0 = time.perf_counter()
            due = await repo.due_for_check(tx, now, limit=50)
            times.append((time.perf_counter() - t0) * 1000)
            found = len(due)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)], found


async def run_one(label: str, url: str, rows: int, creates: int) -> None:
    storage = await make_storage(url)
    try:
        rate = await bench_creates(storage, creates)
        await load_rows(storage, rows)
        p50, p95, found = await bench_due(storage)
        print(f"{label:<11} creates/s {rate:>8,.0f}   due query ({rows:,} rows, 1% due, limit 50 -> {found}): "
              f"p50 {p50:.2f} ms  p95 {p95:.2f} ms")
    finally:
        await storage.db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--creates", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await run_one("SQLite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args.rows, args.creates)
    name = f"bc_bench_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(PG_ADMIN)
    except OSError as exc:
        print(f"PostgreSQL  skipped: {exc}")
        return
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        await run_one("PostgreSQL", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", args.rows, args.creates)
    finally:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
