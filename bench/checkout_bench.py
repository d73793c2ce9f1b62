"""Hosted checkout: how soon the page shows PAID, and what 200 open pages cost one `serve`.

Run from a checkout: ``python bench/checkout_bench.py [--runs 20] [--pages 200] [--idle 30]``.
Needs Debian's Chromium (/usr/bin/chromium) for part 1.

1. Latency, in a real browser (Chromium through Playwright): `serve`'s app on a loopback port,
   the engine's workers on the default poll schedule (a new payment is checked every
   ``payments.dense_interval_seconds``, 5 s, with ±10% jitter) against the built-in sandbox.
   For each run a checkout page is opened, the sandbox pays the KHQR at a random moment, and the
   time until the page's state is PAID is taken; then the same with the payer pressing "I have
   paid" right after paying. Target: p95 ≤ the poll interval + 1 s; with "I have paid" ≤ 2 s.
2. Open pages: `bakong-console serve` as its own process (SQLite, sandbox), ``--pages`` checkout
   pages each holding its event stream open (what a browser tab does), and the server's resident
   memory before and after, and its CPU over ``--idle`` seconds with nothing happening,
   against the same idle time with no page open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from bakong_console.api import create_app  # noqa: E402
from bakong_console.api.server import uvicorn_config  # noqa: E402
from engine.clock import SystemClock  # noqa: E402
from engine.config import Settings, load_settings  # noqa: E402
from engine.records import Actor, ActorType  # noqa: E402
from engine.runtime import Engine  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
ADMIN = Actor(ActorType.CLI, "bench")
DATA_KEY = "bench1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(folder: Path, port: int) -> Path:
    path = folder / "bench.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{folder / "bench.db"}"\n[security]\ndata_key = "{DATA_KEY}"\n'
        f'[api]\nport = {port}\nrate_limit_per_minute = 0\n[web]\ndeep_links = false\nredirect_seconds = 60\n[logging]\nlevel = "WARNING"\n',
        encoding="utf-8",
    )
    return path


@contextlib.asynccontextmanager
async def serving(engine: Engine, settings: Settings) -> AsyncIterator[str]:
    """`serve`'s app for ``engine`` on the settings' loopback port while the block runs; yields its base URL."""
    app = create_app(engine)
    server = uvicorn.Server(uvicorn_config(app, settings.api))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{settings.api.port}"
    finally:
        app.state.web.close()
        server.should_exit = True
        await task
        await app.state.api.aclose()


def _summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return f"{name:<34} median {statistics.median(ordered):5.2f} s   p95 {p95:5.2f} s   max {ordered[-1]:5.2f} s   (n={len(ordered)})"


async def latency(runs: int) -> None:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        settings = load_settings(_config(Path(tmp), port))
        async with Engine.open(settings, clock=SystemClock(), run_workers=True, migrate=True) as engine:
            _, key = await engine.api_keys.create("bench", None, actor=ADMIN)
            rng = random.Random(16)
            async with serving(engine, settings) as base:
                async with httpx.AsyncClient(base_url=base) as client, async_playwright() as p:
                    browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                    results: dict[str, list[float]] = {"page shows PAID (poller)": [], 'with "I have paid"': []}
                    for claim in (False, True):
                        name = 'with "I have paid"' if claim else "page shows PAID (poller)"
                        for _ in range(runs):
                            created = await client.post(
                                "/api/payments/create", json={"amount": "1.00", "currency": "USD", "checkout": True}, headers={"X-API-Key": key}
                            )
                            data = created.json()["data"]
                            page = await browser.new_page()
                            await page.goto(base + data["checkout_url"])
                            await page.wait_for_load_state("networkidle")
                            # Pay somewhere in the poll cycle, as a real payer would.
                            await asyncio.sleep(rng.uniform(0, settings.payments.dense_interval_seconds))
                            started = time.perf_counter()
                            await engine.sandbox.pay(qr=data["khqr"])
                            if claim:
                                await page.click("#paid")
                            await page.wait_for_selector('#checkout[data-state="paid"]', timeout=30_000)
                            results[name].append(time.perf_counter() - started)
                            await page.close()
                    await browser.close()
    interval = settings.payments.dense_interval_seconds
    print(f"1. Sandbox payment to PAID on the page (Chromium), poll interval {interval:g} s ±{settings.payments.jitter:.0%}:")
    for name, seconds in results.items():
        print("   " + _summary(name, seconds))
    print(f"   targets: p95 ≤ {interval + 1:g} s (poll interval + 1 s); with \"I have paid\" ≤ 2 s")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _idle_cpu(pid: int, seconds: float) -> float:
    before = _cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (_cpu_seconds(pid) - before) / seconds * 100


async def open_pages(pages: int, idle: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        config = _config(Path(tmp), port)
        settings = load_settings(config)
        async with Engine.open(settings, clock=SystemClock(), migrate=True) as engine:
            _, key = await engine.api_keys.create("bench", None, actor=ADMIN)
        proc = subprocess.Popen([sys.executable, "-m", "bakong_console", "--config", str(config), "serve"], stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            limits = httpx.Limits(max_connections=pages + 10, max_keepalive_connections=pages + 10)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
                for _ in range(200):
                    try:
                        if (await client.get("/api/health")).status_code in (200, 503):
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                links = []
                for _ in range(pages):
                    created = await client.post(
                        "/api/payments/create",
                        json={"amount": "1.00", "currency": "USD", "checkout": True, "timeout_minutes": 60},
                        headers={"X-API-Key": key},
                    )
                    links.append(created.json()["data"]["checkout_url"])
                await asyncio.sleep(2)
                rss_before = _rss_kib(proc.pid)
                cpu_without = await _idle_cpu(proc.pid, idle)
                streams = [client.stream("GET", link + "/events") for link in links]
                responses = [await s.__aenter__() for s in streams]
                for response in responses:
                    assert response.status_code == 200
                    assert await anext(response.aiter_lines()) == "event: state"
                await asyncio.sleep(2)
                rss_after = _rss_kib(proc.pid)
                cpu_with = await _idle_cpu(proc.pid, idle)
                for s in streams:
                    await s.__aexit__(None, None, None)
        finally:
            proc.terminate()
            proc.wait(20)
    added = rss_after - rss_before
    print(f"2. {pages} open checkout pages (event streams) on one `serve` (SQLite, sandbox, its workers running):")
    print(f"   resident memory {rss_before / 1024:.1f} MiB -> {rss_after / 1024:.1f} MiB: +{added / 1024:.1f} MiB ({added / pages:.0f} KiB per page)")
    print(f"   CPU at idle over {idle:g} s: {cpu_without:.1f}% with no page open, {cpu_with:.1f}% with {pages} open")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="payments per latency series")
    parser.add_argument("--pages", type=int, default=200, help="open checkout pages")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    parser.add_argument("--skip-browser", action="store_true", help="only the open-pages part")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    if not args.skip_browser:
        asyncio.run(latency(args.runs))
    asyncio.run(open_pages(args.pages, args.idle))


if __name__ == "__main__":
    main()
