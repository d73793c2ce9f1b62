"""Reconciliation benchmark: 5,000 paid payments re-checked with the sandbox by the nightly worker.

A SQLite file holds 5,000 PAID payments of one day (their transfers in an in-memory sandbox); each
simulated day live polling spends ``--live`` of a ``--budget``-request day (reserved in the
request ledger like the poller's), and at 02:00 the ``NightlyReconciler`` runs its night on the
manual clock (its spread of requests is time on that clock, not waited for). Per scenario it prints
the Bakong requests reconciliation spent, the payments covered per night, and the nights it took
to reconcile them all:

- bulk allowed, an ample budget: the target is ceil(5000 / 50) = 100 requests;
- bulk allowed and bulk blocked, under a 100-request daily budget, with live polling leaving
  ``100 - live`` unused each day.

Run: .venv/bin/python bench/reconcile_bench.py [--payments 5000] [--budget 100] [--live 60]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select

from engine.bakong.client import BakongClient
from engine.bakong.sandbox import InMemoryTransferStore, SandboxFaults, SandboxTransfer, create_sandbox_app
from engine.clock import ManualClock
from engine.config import Settings
from engine.crypto import DataCipher, generate_key_spec, parse_key_spec
from engine.db import reconciliation as repo
from engine.db.database import Database
from engine.db.ledger import DatabaseRequestLedger
from engine.db.migrate import upgrade
from engine.db.models import PaymentRow
from engine.db.storage import Storage
from engine.ids import IdFactory
from engine.services.reconciliation import ReconciliationService
from engine.workers.reconciler import NightlyReconciler

#: The payments' day: 2026-01-15 in Phnom Penh (paid from 10:00 on).
PAID_FROM = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
ACCOUNT = "shop@devb"


def transfers(n: int, rng: random.Random) -> tuple[list[dict], list[SandboxTransfer]]:
    rows, paid = [], []
    for i in range(n):
        at = PAID_FROM + timedelta(seconds=8 * i)
        minor = 100 + i % 5000
        tx_hash, md5 = f"{rng.getrandbits(256):064x}", f"{rng.getrandbits(128):032x}"
        rows.append(dict(
            id=f"pay_bench{i:06d}", idempotency_scope="", amount_minor=minor, currency="USD", khqr=f"q{i}", md5=md5,
            receiving_account=ACCOUNT, status="PAID", created_at=at, updated_at=at, expires_at=at + timedelta(minutes=15),
            paid_at=at, check_count=1, created_by_type="cashier", created_by="bench", bakong_hash=tx_hash,
        ))  # fmt: skip
        ms = int(at.timestamp() * 1000)
        paid.append(SandboxTransfer(tx_hash, md5, "abaakhppxxx@abaa", ACCOUNT, "USD", Decimal(minor) / 100, ms, ms + 900))
    return rows, paid


async def scenario(name: str, *, payments: int, budget: int, live: int, bulk_blocked: bool, max_nights: int) -> None:
    clock = ManualClock(PAID_FROM)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await upgrade(db)
        kid, key = parse_key_spec(generate_key_spec("bench"))
        storage = Storage(db, clock=clock, cipher=DataCipher(kid, {kid: key}), ids=IdFactory(clock, random.Random(1)))
        rows, paid = transfers(payments, random.Random(7))
        for start in range(0, len(rows), 1000):
            async with storage.transaction(events=False) as tx:
                await tx.session.execute(insert(PaymentRow), rows[start : start + 1000])
        app = create_sandbox_app(InMemoryTransferStore(paid), clock=clock, faults=SandboxFaults(hash_list_blocked=bulk_blocked), rng=random.Random(3))
        ledger = DatabaseRequestLedger(storage)
        client = BakongClient(
            # the e-mail renews the 90-day token when a long catch-up outlives it
            base_url="http://bakong-sandbox.internal", clock=clock, ledger=ledger, token=app.state.sandbox.token, email="merchant@example.com",
            daily_budget=budget, transport=httpx.ASGITransport(app=app), bulk_retry_after_seconds=3600,
        )  # fmt: skip
        base = Settings()
        settings = replace(base, payments=replace(base.payments, reserve_requests=3))
        service = ReconciliationService(storage, settings, clock=clock, client=client)
        worker = NightlyReconciler(service, storage, settings, clock=clock)
        covered: list[int] = []
        spent: list[int] = []
        started = time.perf_counter()
        day = PAID_FROM
        for _ in range(max_nights):
            for _ in range(live):  # the day's live polling, before the night that follows it
                await ledger.reserve(client.fingerprint, "check_transaction_by_md5_list", now=day, daily_budget=budget)
            night = day.replace(hour=19, minute=0, second=0)  # 02:00 the next day in Phnom Penh
            clock.advance((night - clock.now()).total_seconds())
            before = await count_done(storage)
            requests_before = await hash_requests(storage)
            while clock.now() < night + timedelta(hours=5):
                delay = await worker.run_once()
                clock.advance(max(1.0, delay or 1.0))
                if delay is not None and delay > 6 * 3600:
                    break
            covered.append(await count_done(storage) - before)
            spent.append(await hash_requests(storage) - requests_before)
            day = night + timedelta(hours=5)
            if await count_done(storage) >= payments:
                break
        elapsed = time.perf_counter() - started
        await client.aclose()
        await db.dispose()
    nights = len(covered)
    print(
        f"{name}: {sum(spent)} requests for {sum(covered)} of {payments} payments in {nights} night(s) "
        f"(per night: {covered[0]} payments on {spent[0]} requests"
        + (f", then {covered[-1]} on {spent[-1]}" if nights > 1 else "")
        + f"); {elapsed:.1f} s wall-clock on this machine"
    )


async def count_done(storage: Storage) -> int:
    async with storage.read() as tx:
        return int(await tx.session.scalar(select(func.count()).where(PaymentRow.reconcile_status.is_not(None))) or 0)


async def hash_requests(storage: Storage) -> int:
    from engine.db.models import BakongRequestRow

    async with storage.read() as tx:
        stmt = select(func.count()).where(BakongRequestRow.endpoint.in_(repo.RECONCILE_ENDPOINTS))
        return int(await tx.session.scalar(stmt) or 0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=5000)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--live", type=int, default=60, help="requests live polling spends each day")
    args = parser.parse_args()
    logging.getLogger("engine").setLevel(logging.ERROR)  # the fallback to single checks is the point, not news
    n = args.payments
    print(f"{n} paid payments; target with bulk: ceil({n}/50) = {math.ceil(n / 50)} requests")
    await scenario("bulk allowed, ample budget", payments=n, budget=100_000, live=0, bulk_blocked=False, max_nights=3)
    await scenario(f"bulk allowed, {args.budget}/day, live polling {args.live}/day", payments=n, budget=args.budget, live=args.live, bulk_blocked=False, max_nights=30)
    await scenario(f"bulk blocked, {args.budget}/day, live polling {args.live}/day", payments=n, budget=args.budget, live=args.live, bulk_blocked=True, max_nights=400)
    await scenario(f"bulk blocked, {args.budget}/day, no live polling", payments=n, budget=args.budget, live=0, bulk_blocked=True, max_nights=400)


if __name__ == "__main__":
    asyncio.run(main())
