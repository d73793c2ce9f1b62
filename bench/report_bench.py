"""Reports benchmark: the day report and the 30-day reports over 1,000,000 payments on SQLite.

Writes ``--rows`` payments (default 1,000,000) into a migrated SQLite file, spread evenly over the
last ``--days`` days (default 365: about 2,740 a day; ``--days 30`` puts them all in the 30-day
window, the worst case), in two currencies, eight statuses, four terminals and six cashiers, with
Bakong requests in the ledger. Then times, ``--runs`` times each: ``ReportService.day`` (today),
``ReportService.last_days(30)`` (the screen's line with its ghost week) and
``ReportService.range(30 days, by="terminal")``. Prints p50 and p95 in milliseconds.

Target (issue 17): p95 < 200 ms on SQLite.
Run: .venv/bin/python bench/report_bench.py [--rows 1000000] [--days 365] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.clock import ManualClock
from engine.crypto import DataCipher, generate_key_spec, parse_key_spec
from engine.db.database import Database
from engine.db.migrate import upgrade
from engine.db.storage import Storage
from engine.services.reports import ReportService
from engine.config import Settings

STATUSES = ["PAID"] * 6 + ["TIMEOUT", "CANCELLED", "PENDING", "NEEDS_REVIEW", "PAID_LATE", "FAILED"]
TERMINALS = ["front", "back", "bar", None]
CASHIERS = [("cashier", "dara"), ("cashier", "sok"), ("cashier", "vicheka"), ("api_key", "shop"), ("api_key", "app"), ("cli", "root")]
FMT = "%Y-%m-%d %H:%M:%S.%f"


def fill(path: Path, rows: int, days: int, now: datetime) -> None:
    """Rows straight through sqlite3 (the bench measures reading them, not writing them)."""
    rng = random.Random(17)
    span = days * 86400
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")

    def payments():
        for n in range(rows):
            created = now - timedelta(seconds=rng.random() * span)
            status = rng.choice(STATUSES)
            currency = "KHR" if rng.random() < 0.7 else "USD"
            amount = rng.randrange(1000, 200_000, 100) if currency == "KHR" else rng.randrange(50, 5_000)
            by_type, by = rng.choice(CASHIERS)
            paid = (created + timedelta(seconds=rng.randrange(5, 300))).strftime(FMT) if status == "PAID" else None
            at = created.strftime(FMT)
            yield (f"pay_{n:012d}", "", amount, currency, "khqr", f"{n:032x}", "shop@devb", status, at, at, at, paid, 0, by_type, by, rng.choice(TERMINALS))

    conn.executemany(
        "INSERT INTO payments (id, idempotency_scope, amount_minor, currency, khqr, md5, receiving_account, status, created_at,"
        " updated_at, expires_at, paid_at, check_count, created_by_type, created_by, terminal) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        payments(),
    )
    requests = []
    for d in range(min(days, 60)):
        for i in range(100):
            at = now - timedelta(days=d, seconds=rng.random() * 86400)
            requests.append(("fp", at.date().isoformat(), "check_transaction_by_md5", at.strftime(FMT)))
    conn.executemany("INSERT INTO bakong_requests (token_fingerprint, day, endpoint, reserved_at) VALUES (?,?,?,?)", requests)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


async def timed(label: str, runs: int, call: Callable[[], Awaitable[object]]) -> None:
    await call()  # warm: the first run pays for opening the file and the page cache
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    p95 = took[max(0, int(round(0.95 * len(took))) - 1)]
    print(f"{label:<34} p50 {statistics.median(took):7.1f} ms   p95 {p95:7.1f} ms   ({runs} runs)")


async def main(rows: int, days: int, runs: int) -> None:
    now = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reports.db"
        url = f"sqlite+aiosqlite:///{path}"
        db = Database(url)
        await upgrade(db)
        await db.dispose()
        started = time.perf_counter()
        fill(path, rows, days, now)
        print(f"{rows:,} payments over {days} days written in {time.perf_counter() - started:.0f} s")
        kid, key = parse_key_spec(generate_key_spec())
        db = Database(url)
        clock = ManualClock(now)
        storage = Storage(db, clock=clock, cipher=DataCipher(kid, {kid: key}))
        reports = ReportService(storage, Settings(), clock=clock)
        try:
            today = reports.today()
            await timed("day report (today)", runs, lambda: reports.day())
            await timed("30-day line with ghost week", runs, lambda: reports.last_days(30))
            await timed("30-day range by terminal", runs, lambda: reports.range(today - timedelta(days=29), today, by="terminal"))
        finally:
            await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.days, args.runs))
