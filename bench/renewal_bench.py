"""Renewer benchmark: 100,000 subscriptions of which 5% come due, on SQLite and PostgreSQL.

For each database (SQLite in a temporary file; PostgreSQL in a scratch database on 127.0.0.1:5432,
skipped when the server is down) it loads ``--subs`` ACTIVE subscriptions with one paid invoice
each, ``--due`` percent of them ending within ``renewal_lead_days``, then runs the real renewer
(``engine.workers.renewer.Renewer`` on an ``Engine`` with the built-in sandbox) and prints:

- **billing**: every pass until the due ones are billed (a renewal invoice, its KHQR payment and
  its ``renewal_due`` event each; a pass makes at most ``--batch`` changes per step and starts
  none after ``--budget`` seconds), its time and the SQL statements it sent (counted by a
  SQLAlchemy ``before_cursor_execute`` listener);
- **idle**: a pass with nothing to do over the whole table (what every tick costs);
- **period end**: the clock moved past the due periods with half of the renewals paid: passes
  that settle the paid ones, start their periods and move the unpaid ones to PAST_DUE.

Target (issue 8): one pass under 2 s on both databases.
Run: .venv/bin/python bench/renewal_bench.py [--subs 100000] [--due 5] [--batch 100] [--budget 1.0]
     [--deep-links] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, insert, select, update

from engine.clock import ManualClock
from engine.config import Settings
from engine.crypto import generate_key_spec
from engine.db.models import PaymentRow, PlanRow, SubscriptionInvoiceRow, SubscriptionRow
from engine.ids import IdFactory
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from engine.workers.renewer import Renewer

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
OPERATOR = Actor(ActorType.CLI, "bench")


class WallClockBudget:
    """The bench moves calendar time by hand (a ManualClock) but the renewer's per-pass time
    budget must be measured in real seconds, as with the SystemClock in production."""

    def __init__(self, manual: ManualClock) -> None:
        self._manual = manual

    def now(self):  # noqa: ANN201
        return self._manual.now()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._manual.sleep(seconds)


class QueryCounter:
    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine.storage.db.engine.sync_engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *_: Any) -> None:
        self.count += 1


def settings_for(url: str, *, deep_links: bool) -> Settings:
    base = Settings()
    return replace(
        base,
        database=replace(base.database, url=url),
        security=replace(base.security, data_key=generate_key_spec("bench")),
        bakong=replace(base.bakong, max_retries=0),
        subscriptions=replace(base.subscriptions, deep_links=deep_links),
    )


async def load(engine: Engine, subs: int, due_percent: float) -> int:
    """Plans, ``subs`` ACTIVE subscriptions each with its paid first invoice; returns how many are due."""
    clock = engine.clock
    now = clock.now()
    lead = timedelta(days=engine.settings.subscriptions.renewal_lead_days)
    basic = await engine.subscriptions.add_plan("basic", "Basic", "20000", "KHR", 30, 0, actor=OPERATOR)
    pro = await engine.subscriptions.add_plan("pro", "Pro", "50000", "KHR", 30, 0, actor=OPERATOR)
    rng = random.Random(5)
    every = round(100 / due_percent) if due_percent else 0
    due = 0
    batch_subs: list[dict[str, Any]] = []
    batch_invoices: list[dict[str, Any]] = []

    async def flush() -> None:
        async with engine.storage.transaction() as tx:
            await tx.session.execute(insert(SubscriptionRow), batch_subs)
            await tx.session.execute(insert(SubscriptionInvoiceRow), batch_invoices)
        batch_subs.clear()
        batch_invoices.clear()

    for i in range(subs):
        plan = basic if i % 4 else pro
        if every and i % every == 0:
            end = now + lead - timedelta(seconds=rng.randint(60, int(lead.total_seconds()) - 60))
            due += 1
        else:
            end = now + 2 * lead + timedelta(seconds=rng.randint(86400, 20 * 86400))
        start = end - timedelta(days=30)
        sid = f"sub_bench{i:017d}"
        batch_subs.append(
            dict(
                id=sid, user_id=f"user-{i}", plan_id=plan.id, status="ACTIVE", price_minor=plan.price_minor,
                currency="KHR", cycle_days=30, current_period_start=start, current_period_end=end,
                cancel_at_period_end=False, created_at=start, updated_at=start,
            )
        )  # fmt: skip
        batch_invoices.append(
            dict(
                id=f"inv_bench{i:017d}", subscription_id=sid, kind="initial", period_start=start, period_end=end,
                plan_id=plan.id, amount_minor=plan.price_minor, currency="KHR", status="PAID", payment_id=None,
                created_at=start, paid_at=start,
            )
        )  # fmt: skip
        if len(batch_subs) == 5000:
            await flush()
    if batch_subs:
        await flush()
    async with engine.storage.db.engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE")
        await conn.commit()
    return due


async def passes(renewer: Renewer, counter: QueryCounter, label: str) -> tuple[float, int, int]:
    """Run passes until the renewer has nothing more to do at once; print each; return totals."""
    total_time = 0.0
    total_queries = 0
    n = 0
    while True:
        counter.count = 0
        t0 = time.perf_counter()
        again = await renewer.run_once()
        elapsed = time.perf_counter() - t0
        n += 1
        total_time += elapsed
        total_queries += counter.count
        r = renewer.last_report
        print(
            f"  {label} pass {n:>3}: {elapsed * 1000:8.1f} ms {counter.count:>6} queries   repaired {r.repaired:>3} "
            f"billed {r.billed:>3} settled {r.settled:>3} renewed {r.renewed:>3} past_due {r.past_due:>3}"
        )
        if again != 0.0:
            return total_time, total_queries, n


async def run_one(label: str, url: str, args: argparse.Namespace) -> None:
    clock = ManualClock(datetime.now(UTC))
    settings = settings_for(url, deep_links=args.deep_links)
    async with Engine.open(settings, clock=clock, migrate=True, ids=IdFactory(clock, random.Random(3))) as engine:
        t0 = time.perf_counter()
        due = await load(engine, args.subs, args.due)
        print(f"{label}: loaded {args.subs:,} subscriptions ({due:,} due) in {time.perf_counter() - t0:.1f} s")
        counter = QueryCounter(engine)
        renewer = Renewer(engine.subscriptions, batch=args.batch, budget_seconds=args.budget)
        renewer.clock = WallClockBudget(clock)  # type: ignore[assignment]

        seconds, queries, n = await passes(renewer, counter, "billing   ")
        print(f"  billing: {due:,} renewals in {n} passes, {seconds:.2f} s ({seconds / max(due, 1) * 1000:.2f} ms and "
              f"{queries / max(due, 1):.1f} queries per renewal)")

        counter.count = 0
        t0 = time.perf_counter()
        await renewer.run_once()
        print(f"  idle pass over {args.subs:,}: {(time.perf_counter() - t0) * 1000:.1f} ms, {counter.count} queries")

        # half of the renewals are paid; the clock passes every due period end
        async with engine.storage.read() as tx:
            payment_ids = (
                await tx.session.scalars(
                    select(SubscriptionInvoiceRow.payment_id).where(SubscriptionInvoiceRow.kind == "renewal").order_by(SubscriptionInvoiceRow.id)
                )
            ).all()
        paid = payment_ids[::2]
        async with engine.storage.transaction() as tx:
            await tx.session.execute(
                update(PaymentRow)
                .where(PaymentRow.id.in_(paid))
                .values(status=PaymentStatus.PAID.value, paid_at=clock.now(), next_check_at=None)
            )
        clock.advance(engine.settings.subscriptions.renewal_lead_days * 86400 + 60)
        seconds, queries, n = await passes(renewer, counter, "period end")
        print(f"  period end: {len(paid):,} paid renewals settled and started, {len(payment_ids) - len(paid):,} past due, "
              f"in {n} passes, {seconds:.2f} s")
        counter.count = 0
        t0 = time.perf_counter()
        await renewer.run_once()
        print(f"  idle pass after: {(time.perf_counter() - t0) * 1000:.1f} ms, {counter.count} queries")
        async with engine.storage.read() as tx:
            plans = (await tx.session.scalars(select(PlanRow.code))).all()
        assert sorted(plans) == ["basic", "pro"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subs", type=int, default=100_000)
    parser.add_argument("--due", type=float, default=5.0, help="percent of subscriptions due for renewal")
    parser.add_argument("--batch", type=int, default=Renewer.DEFAULT_BATCH, help="changes per step of a pass (the renewer's batch)")
    parser.add_argument("--budget", type=float, default=Renewer.DEFAULT_BUDGET_SECONDS, help="seconds of work per pass")
    parser.add_argument("--deep-links", action="store_true", help="ask the sandbox for a deep link per KHQR")
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    args = parser.parse_args()
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            await run_one("SQLite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args)
    if args.only == "sqlite":
        return
    name = f"bc_bench_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(PG_ADMIN)
    except OSError as exc:
        print(f"PostgreSQL: skipped ({exc})")
        return
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        await run_one("PostgreSQL", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", args)
    finally:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
