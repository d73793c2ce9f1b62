"""Customer display: how soon a paired display shows the terminal's new payment, and goes back
to idle after a cancel.

Run from a checkout: ``python bench/display_bench.py [--runs 20]``. Needs Debian's Chromium.

`serve`'s app on a loopback port with the engine's workers (SQLite, the built-in sandbox), one
Chromium page paired with terminal ``counter-1`` through its form. For each run a payment is made
on that terminal and the time until the page shows it (``data-state="pending"``) is taken, then
it is cancelled and the time until the page is idle again. Two ways of making the payment: in the
process that serves the display (the console serving its own display: the event reaches the
stream at commit), and by a second engine on the same database (a console while a daemon serves
the display: the event arrives through the bus's poll of the events table, every second).
Target: ≤ 1 s in the first case.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.checkout_bench import ARGS, CHROMIUM, _config, _port, _summary, serving  # noqa: E402
from engine.clock import SystemClock  # noqa: E402
from engine.config import load_settings  # noqa: E402
from engine.records import Actor, ActorType  # noqa: E402
from engine.runtime import Engine  # noqa: E402

CASHIER = Actor(ActorType.CASHIER, "bench")
TERMINAL = "counter-1"


async def run(runs: int) -> None:
    from playwright.async_api import async_playwright

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        settings = load_settings(_config(Path(tmp), port))
        async with Engine.open(settings, clock=SystemClock(), run_workers=True, migrate=True) as engine:
            async with serving(engine, settings) as base:
                async with async_playwright() as p, Engine.open(settings, clock=SystemClock(), holder="bench-other") as other:
                    browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                    page = await browser.new_page()
                    await page.goto(f"{base}/display/{TERMINAL}")
                    code = await engine.displays.start_pairing(TERMINAL, actor=CASHIER)
                    await page.fill("#code", code.code)
                    async with page.expect_navigation():
                        await page.click("#pair")
                    await page.wait_for_selector('#display[data-state="idle"]')
                    for maker, label in ((engine, "same process"), (other, "another process")):
                        shown, idle = f"new payment shown ({label})", f"idle after cancel ({label})"
                        results[shown], results[idle] = [], []
                        for _ in range(runs):
                            await asyncio.sleep(0.3)
                            started = time.perf_counter()
                            made = (await maker.payments.initiate("1.00", "USD", actor=CASHIER, terminal=TERMINAL)).payment
                            await page.wait_for_selector('#display[data-state="pending"]', timeout=30_000)
                            results[shown].append(time.perf_counter() - started)
                            await page.wait_for_load_state("load")
                            started = time.perf_counter()
                            await maker.payments.cancel(made.id, actor=CASHIER, reason="bench")
                            await page.wait_for_selector('#display[data-state="idle"]', timeout=30_000)
                            results[idle].append(time.perf_counter() - started)
                            await page.wait_for_load_state("load")
                    await browser.close()
    print("Customer display (Chromium, serve's app on loopback, SQLite):")
    for name, seconds in results.items():
        print("   " + _summary(name, seconds))
    print("   target: a payment made where the display is served shows within 1 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(run(parser.parse_args().runs))


if __name__ == "__main__":
    main()
