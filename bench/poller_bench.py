"""The poller against the sandbox, in two regimes, beside a naive poller as the baseline.

1. Unlimited quota, bulk endpoint up (real time; the sandbox is uvicorn in a separate process over
   loopback HTTP; the engine on a SQLite file): 10,000 pending payments, a random 10% paid over the
   first seconds. Prints Bakong calls per poller pass against the floor ceil(due/50), p50/p95/max
   detection latency (sandbox payment time -> PAID in the database), the engine process's CPU
   and peak memory. The naive poller (every pending payment checked every 5 s, one request each)
   runs against the same sandbox with its own 10,000 payments.
   Targets: calls per pass at the floor; p95 latency within one check interval + 1 s; < 200 MB.

2. Production-like (simulated business days on the injected clock, the built-in sandbox
   in-process): 100 requests per day, bulk endpoint blocked (HTML 403), 60 payments 08:00-20:00
   Phnom Penh, each paid 10-120 s after its QR is shown, 5 never paid. Several days on one
   database (--days, default 2): the first has no history to forecast from, each later one has
   the day before. Prints, per day, payments detected before their QR expired, median detection
   latency, requests spent and when the quota ran dry, beside what our schedule achieves with a
   perfect forecast (told the day's payment count and paid share in advance, not when they pay)
   and the naive poller. Target: every paid payment detected, the quota not spent dry before the
   day ends, median < 30 s. ``--hours 08:00-20:00`` declares those opening hours for every
   weekday (``[hours]``), so the forecast runs to closing time instead of midnight; ``--expected
   60`` gives the shop's estimate of its payments on a normal open day
   (``[hours] expected_payments_per_day``: the first day's prior; 30 or 120 try a wrong one).

Run: .venv/bin/python bench/poller_bench.py [--payments 10000] [--seconds 40] [--regime 1|2|both] [--seed 3] [--days 2]
     [--hours 08:00-20:00] [--expected 60]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.bakong import BakongClient, InMemoryRequestLedger  # noqa: E402
from engine.bakong.sandbox import SandboxControl  # noqa: E402
from engine.clock import PHNOM_PENH, ManualClock, SystemClock  # noqa: E402
from engine.config import PaymentSettings, Settings  # noqa: E402
from engine.crypto import generate_key_spec  # noqa: E402
from engine.hours import WEEKDAYS, expected_payments_problem, parse_day  # noqa: E402
from engine.db import payments as repo  # noqa: E402
from engine.errors import InvalidInput  # noqa: E402
from engine.ids import IdFactory  # noqa: E402
from engine.records import Actor, PaymentStatus  # noqa: E402
from engine.runtime import Engine  # noqa: E402
from engine.services.schedule import Allowance, CheckSchedule  # noqa: E402

BENCH = Actor.daemon("bench")
MERCHANT = "sandbox_shop@devb"
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def settings_for(db_url: str, **sections: dict[str, object]) -> Settings:
    base = Settings()
    s = replace(base, database=replace(base.database, url=db_url), security=replace(base.security, data_key=generate_key_spec("bench")))
    for name, values in sections.items():
        s = replace(s, **{name: replace(getattr(s, name), **values)})
    return s


async def seed_payments(engine: Engine, n: int, *, amount_minor: int = 100) -> list:
    """Insert ``n`` PENDING payments quickly (500 per transaction), each with its own KHQR."""
    made = []
    service = engine.payments
    for start in range(0, n, 500):
        async with engine.storage.transaction() as tx:
            for i in range(start, min(n, start + 500)):
                expires = tx.now + timedelta(minutes=15)
                code = service._khqr_for(amount_minor + i, "USD", expires, None)
                made.append(
                    await repo.insert(
                        tx, actor=BENCH, amount_minor=amount_minor + i, currency="USD", khqr=code.qr, md5=code.md5,
                        receiving_account=MERCHANT, expires_at=expires,
                        next_check_at=service.schedule.first_check_at(tx.now, expires),
                    )
                )  # fmt: skip
    return made


# --- regime 1 -------------------------------------------------------------------------------------


async def regime_unlimited(n: int, seconds: float) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bakong_console", "sandbox", "serve", "--port", str(port), "--token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        control = SandboxControl(url)
        for _ in range(200):
            try:
                await control.stats()
                break
            except Exception:
                await asyncio.sleep(0.05)
        with tempfile.TemporaryDirectory() as tmp:
            settings = settings_for(
                f"sqlite+aiosqlite:///{tmp}/bench.db",
                bakong={"environment": "custom", "base_url": url, "token": TOKEN, "daily_budget": 10**9},
            )
            ours = await run_ours(settings, control, n, seconds)
        naive = await run_naive(url, control, n, min(seconds, 30.0))
    finally:
        server.terminate()
        server.wait(10)
    interval = Settings().payments.dense_interval_seconds
    print(f"regime 1: unlimited quota, bulk endpoint up, {n:,} pending payments, 10% paid, {seconds:g} s")
    print(f"  {'':<34}{'ours':>14}{'naive':>14}")
    for label, key in (
        ("Bakong calls per pass (mean)", "calls_per_pass"),
        ("floor ceil(due/50) per pass (mean)", "floor_per_pass"),
        ("passes at the floor", "at_floor"),
        ("payments detected", "detected"),
        ("latency p50 (s)", "p50"),
        ("latency p95 (s)", "p95"),
        ("latency max (s)", "max"),
        ("Bakong calls in total", "calls"),
        ("engine CPU (% of one core)", "cpu"),
        ("engine peak memory (MB)", "rss"),
    ):
        print(f"  {label:<34}{fmt(ours.get(key)):>14}{fmt(naive.get(key)):>14}")
    p95_ok = ours["p95"] <= interval * 1.1 + 1.0
    print(
        f"  targets: calls per pass at the floor: {'met' if ours['at_floor_share'] >= 0.95 else 'NOT met'} "
        f"({ours['at_floor_share']:.0%} of passes); p95 <= {interval * 1.1 + 1:.1f} s (interval with jitter + 1 s): "
        f"{'met' if p95_ok else 'NOT met'}; memory < 200 MB: {'met' if ours['rss'] < 200 else 'NOT met'}"
    )


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


async def run_ours(settings: Settings, control: SandboxControl, n: int, seconds: float) -> dict[str, object]:
    rng = random.Random(5)
    async with Engine.open(settings, clock=SystemClock(), migrate=True, rng=random.Random(1)) as engine:
        made = await seed_payments(engine, n)
        paid = rng.sample(made, n // 10)
        passes: list[tuple[int, int]] = []
        poller = engine.build_workers()[0]
        engine.start_workers()
        worker = engine.runners["poller"].worker
        original = worker.run_once

        async def counted() -> float | None:
            before = worker.state.requests_sent
            delay = await original()
            if worker.state.last_batch_size:
                passes.append((worker.state.last_batch_size, worker.state.requests_sent - before))
            return delay

        worker.run_once = counted  # type: ignore[method-assign]
        del poller
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        paid_ms: dict[str, int] = {}
        pay_window = seconds * 0.6
        schedule = sorted((rng.uniform(0, pay_window), p) for p in paid)
        for at, p in schedule:
            delay = t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            transfer = await control.pay(md5=p.md5, amount=str(p.amount), currency="USD", to_account=MERCHANT)
            paid_ms[p.id] = int(transfer["created_ms"])
        await asyncio.sleep(max(0.0, t0 + seconds - time.monotonic()))
        wall = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        latencies = []
        for p in paid:
            history = await engine.payments.history(p.id)
            done = [c for c in history if c.to_status == PaymentStatus.PAID.value]
            if done:
                latencies.append(done[0].at.timestamp() - paid_ms[p.id] / 1000)
    calls = [c for _, c in passes]
    floors = [math.ceil(d / 50) for d, _ in passes]
    at_floor = sum(1 for (d, c) in passes if c <= math.ceil(d / 50))
    return {
        "calls_per_pass": statistics.mean(calls) if calls else 0.0,
        "floor_per_pass": statistics.mean(floors) if floors else 0.0,
        "at_floor": f"{at_floor}/{len(passes)}",
        "at_floor_share": at_floor / len(passes) if passes else 0.0,
        "detected": f"{len(latencies)}/{len(paid)}",
        "p50": pct(latencies, 50),
        "p95": pct(latencies, 95),
        "max": max(latencies) if latencies else float("nan"),
        "calls": sum(calls),
        "cpu": 100 * ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)) / wall,
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


async def run_naive(url: str, control: SandboxControl, n: int, seconds: float) -> dict[str, object]:
    """Every pending payment checked every 5 s, one request each (16 in flight)."""
    rng = random.Random(6)
    clock = SystemClock()
    md5s = [f"{rng.getrandbits(128):032x}" for _ in range(n)]
    paid = set(rng.sample(md5s, n // 10))
    client = BakongClient(base_url=url, clock=clock, ledger=InMemoryRequestLedger(), token=TOKEN, daily_budget=10**9, max_retries=0)
    found: dict[str, float] = {}
    paid_at: dict[str, float] = {}
    calls_per_tick: list[int] = []
    t0 = time.monotonic()

    async def payer() -> None:
        for at, md5 in sorted((rng.uniform(0, seconds * 0.6), m) for m in paid):
            delay = t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            transfer = await control.pay(md5=md5, amount="1.00", currency="USD", to_account=MERCHANT)
            paid_at[md5] = transfer["created_ms"] / 1000

    async def tick() -> int:
        pending = [m for m in md5s if m not in found]
        sem = asyncio.Semaphore(16)

        async def one(md5: str) -> None:
            async with sem:
                outcome = await client.check_payment(md5)
                if outcome.paid:
                    found[md5] = time.time()

        await asyncio.gather(*(one(m) for m in pending))
        return len(pending)

    pay_task = asyncio.create_task(payer())
    async with client:
        while time.monotonic() - t0 < seconds:
            started = time.monotonic()
            calls_per_tick.append(await tick())
            await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - started)))
    await pay_task
    latencies = [found[m] - paid_at[m] for m in found if m in paid_at]
    return {
        "calls_per_pass": statistics.mean(calls_per_tick),
        "floor_per_pass": statistics.mean(math.ceil(c / 50) for c in calls_per_tick),
        "at_floor": f"0/{len(calls_per_tick)}",
        "detected": f"{len(latencies)}/{len(paid)}",
        "p50": pct(latencies, 50),
        "p95": pct(latencies, 95),
        "max": max(latencies) if latencies else float("nan"),
        "calls": sum(calls_per_tick),
    }


# --- regime 2 -------------------------------------------------------------------------------------


def business_day(rng: random.Random, day: datetime) -> list[tuple[datetime, float | None]]:
    """60 QR shown times 08:00-20:00 local, each with its pay delay (None: never paid)."""
    start = day.replace(hour=8, tzinfo=PHNOM_PENH)
    shown = sorted(start + timedelta(seconds=rng.uniform(0, 12 * 3600)) for _ in range(60))
    never = set(rng.sample(range(60), 5))
    return [(t.astimezone(UTC), None if i in never else rng.uniform(10, 120)) for i, t in enumerate(shown)]


async def settle(engine: Engine) -> None:
    quiet = 0
    while quiet < 2:
        parked = all(r.sleeping for r in engine.runners.values()) and engine.bus.sleeping
        quiet = quiet + 1 if parked else 0
        await asyncio.sleep(0.001)


async def regime_production(seed: int = 3, n_days: int = 2, hours: str = "", expected: int = 0) -> None:
    """Simulated business days on one database: the first has no history to forecast from, each
    later one can use the day before (what came after this time yesterday)."""
    rng = random.Random(seed)
    first_day = datetime(2026, 3, 2)
    days = [first_day + timedelta(days=i) for i in range(n_days)]
    scripts = [business_day(rng, day) for day in days]
    clock = ManualClock(first_day.replace(hour=7, minute=30, tzinfo=PHNOM_PENH).astimezone(UTC))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(
            f"sqlite+aiosqlite:///{tmp}/day.db",
            bakong={"daily_budget": 100, "max_retries": 0},
            sandbox={"bulk_blocked": True},
            # one process on a simulated clock: no lease contention, no other writers to tail
            daemon={"lease_seconds": 3600.0},
            webhooks={"tick_seconds": 3600.0},
            subscriptions={"tick_seconds": 3600.0},
            hours={**dict.fromkeys(WEEKDAYS, hours), "expected_payments_per_day": expected},
        )
        async with Engine.open(
            settings, clock=clock, run_workers=True, migrate=True, rng=random.Random(seed), ids=IdFactory(clock, random.Random(seed))
        ) as engine:
            engine.bus.poll_seconds = 3600.0
            for day, script in zip(days, scripts, strict=True):
                opening = day.replace(hour=7, minute=30, tzinfo=PHNOM_PENH).astimezone(UTC)
                if clock.now() < opening:
                    clock.set(opening)
                results.append(await simulate_day(engine, clock, day, script, rng))
    ideal = [ideal_day(script, budget=100, payments=settings.payments) for script in scripts]
    print(f"regime 2: production-like days (seed {seed}), 100 requests a day, bulk endpoint blocked, 60 payments a day (5 never paid)")
    print(f"  opening hours: {hours or 'not declared'}; expected payments a day: {expected or 'not given'}")
    print("  ideal: our schedule told the day's payment count and paid share in advance (not when they pay)")
    print(f"  {'day':<5}{'history':<10}{'detected':>10}{'median (s)':>12}{'ideal (s)':>11}{'spent':>7}{'ideal':>7}{'ran dry':>9}  target")
    for i, (r, best) in enumerate(zip(results, ideal, strict=True)):
        ok = r["all"] and r["dry"] == "never" and r["median"] < 30
        history = ("estimate" if expected and hours else "none") if i == 0 else "yesterday"
        print(
            f"  {i + 1:<5}{history:<10}{r['detected']:>10}{r['median']:>12.1f}{best['median']:>11.1f}"
            f"{r['used']:>7}{best['used']:>7}{r['dry']:>9}  {'met' if ok else 'NOT met'}"
        )
    naive = naive_day(scripts[-1], budget=100)
    print(
        f"  naive poller on day {n_days}: {naive[0]}/{results[-1]['paid']} detected, median {naive[1]:.1f} s, "
        f"{naive[2]} requests, ran dry at {naive[3]}"
    )
    if n_days > 2:
        pooled = statistics.median(x for r in results[1:] for x in r["latencies"])
        pooled_ideal = statistics.median(x for r in ideal[1:] for x in r["latencies"])
        print(f"  days 2-{n_days}, every paid payment pooled: median {pooled:.1f} s (ideal {pooled_ideal:.1f} s)")
    print("  target per day: every paid payment detected, the quota never dry, median < 30 s")


def ideal_day(script: list[tuple[datetime, float | None]], *, budget: int, payments: PaymentSettings) -> dict:
    """What our schedule does with a perfect forecast: told in advance how many payments the day
    brings and what share of them gets paid (not when), every payment gets the same allowance."""
    paid = sum(1 for _, delay in script if delay is not None)
    allowance = Allowance((budget - payments.reserve_requests) / len(script), budget, float(len(script)), from_history=True, paid_share=paid / len(script))
    plan = CheckSchedule(payments).scarce_plan(allowance)
    spent, latencies = 0, []
    for i, (_, delay) in enumerate(script):
        offsets = plan.offsets((i + 0.5) / len(script))  # stratified: the plan's mix of check counts is exact
        found = next((k for k, at in enumerate(offsets) if delay is not None and at >= delay), None)
        if found is None:  # never paid (every payer pays inside the window, whose end is checked)
            spent += len(offsets) + int(plan.at_expiry) + int(payments.late_watch_minutes > 0)
        else:
            spent += found + 1
            latencies.append(offsets[found] - delay)  # type: ignore[operator]
    return {"median": statistics.median(latencies), "used": spent, "latencies": latencies}


async def simulate_day(engine: Engine, clock: ManualClock, day: datetime, script: list[tuple[datetime, float | None]], rng: random.Random) -> dict:
    end_of_day = day.replace(hour=23, minute=59, tzinfo=PHNOM_PENH).astimezone(UTC)
    actions: list[tuple[datetime, str, object]] = sorted(((t, "create", i) for i, (t, _) in enumerate(script)), key=lambda a: a[0])
    paid_at: dict[str, datetime] = {}
    ran_dry_at: datetime | None = None
    while clock.now() < end_of_day:
        await settle(engine)
        usage = await engine.client.budget_usage()
        if usage.remaining == 0 and ran_dry_at is None:
            ran_dry_at = clock.now()
        nxt_action = min(actions[0][0] if actions else end_of_day, end_of_day)
        wake = clock.next_wakeup()
        step = (nxt_action - clock.now()).total_seconds()
        if wake is not None:
            step = min(step, wake)
        if step > 0 or (wake == 0 and clock.sleepers):
            # advance by seconds, not to a datetime: a wakeup less than a microsecond away must
            # still be reached
            clock.advance(max(step, 0.0))
            if step > 0:
                continue
        while actions and actions[0][0] <= clock.now():
            _, kind, arg = actions.pop(0)
            if kind == "create":
                i = int(arg)  # type: ignore[call-overload]
                p = (await engine.payments.initiate(Decimal(rng.randrange(100, 5000)) / 100, "USD", actor=BENCH)).payment
                delay = script[i][1]
                if delay is not None:
                    actions.append((clock.now() + timedelta(seconds=delay), "pay", p))
                    actions.sort(key=lambda a: a[0])
            else:
                await engine.sandbox.pay(qr=arg.khqr)  # type: ignore[attr-defined]
                paid_at[arg.id] = clock.now()  # type: ignore[attr-defined]
    await settle(engine)
    usage = await engine.client.budget_usage()
    latencies = []
    for pid, when in paid_at.items():
        history = await engine.payments.history(pid)
        done = [c for c in history if c.to_status == PaymentStatus.PAID.value]
        if done:
            latencies.append((done[0].at - when).total_seconds())
    return {
        "detected": f"{len(latencies)}/{len(paid_at)}",
        "all": len(latencies) == len(paid_at),
        "paid": len(paid_at),
        "median": statistics.median(latencies) if latencies else float("nan"),
        "used": usage.used,
        "dry": ran_dry_at.astimezone(PHNOM_PENH).strftime("%H:%M") if ran_dry_at else "never",
        "latencies": latencies,
    }


def naive_day(script: list[tuple[datetime, float | None]], *, budget: int) -> tuple[int, float, int, str]:
    """Every pending payment checked every 5 s with one request each, until the budget is spent."""
    spent = 0
    detected = 0
    latencies: list[float] = []
    dry = "never"
    ticks: dict[int, list[int]] = {}
    for i, (shown, _) in enumerate(script):
        t = 5
        while t <= 15 * 60:
            ticks.setdefault(int(shown.timestamp()) + t, []).append(i)
            t += 5
    found: set[int] = set()
    for when in sorted(ticks):
        for i in ticks[when]:
            if i in found:
                continue
            if spent >= budget:
                if dry == "never":
                    dry = datetime.fromtimestamp(when, UTC).astimezone(PHNOM_PENH).strftime("%H:%M")
                continue
            spent += 1
            shown, delay = script[i]
            if delay is not None and when >= shown.timestamp() + delay:
                found.add(i)
                detected += 1
                latencies.append(when - (shown.timestamp() + delay))
    return detected, statistics.median(latencies) if latencies else float("nan"), spent, dry


async def main_async(args: argparse.Namespace) -> None:
    print(f"poller bench: python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if args.regime in ("1", "both"):
        await regime_unlimited(args.payments, args.seconds)
    if args.regime in ("2", "both"):
        await regime_production(args.seed, args.days, args.hours, args.expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--regime", choices=["1", "2", "both"], default="both")
    parser.add_argument("--seed", type=int, default=3, help="the simulated days' random seed (regime 2)")
    parser.add_argument("--days", type=int, default=2, help="simulated business days, the first without history (regime 2)")
    parser.add_argument("--hours", default="", help='opening hours of every weekday, e.g. "08:00-20:00" (regime 2; default: none declared)')
    parser.add_argument(
        "--expected", type=int, default=0, help="the shop's estimate of payments on a normal open day (regime 2; default: not given)"
    )
    args = parser.parse_args()
    if args.days < 1:
        parser.error("--days must be at least 1")
    try:
        parse_day(args.hours)
    except InvalidInput as exc:
        parser.error(f"--hours: {exc.message}")
    problem = expected_payments_problem(args.expected, allow_none=True)
    if problem:
        parser.error(f"--expected: {problem}")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
