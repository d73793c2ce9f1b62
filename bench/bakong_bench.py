"""Bakong client and sandbox throughput: MD5 checks per second.

Prints, against the sandbox served by uvicorn in a separate process over loopback HTTP:
- MD5 checks/s through ``BakongClient.check_payments`` in batches of 50 (the bulk endpoint),
- MD5 checks/s through single checks (``check_payment``, one request each),
each with 1 task and with several concurrent tasks; and the sandbox's own capacity in-process:
the ASGI app called directly (no HTTP, no client), and client + sandbox through
``httpx.ASGITransport``.

Every answer is checked: the paid MD5s (1 in 10) must come back PAID with their amount, the others
NOT_FOUND. Each figure is the best of ``--rounds`` runs (other work on the machine only ever slows
a run down), with the CPU time the client and the sandbox process spent per request, which does
not depend on what else the machine is doing.
Target (issue 4): at least 20,000 MD5 checks/s through batched calls.
Run: .venv/bin/python bench/bakong_bench.py [--seconds 2] [--rounds 3] [--tasks 8] [--md5s 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from engine.bakong import BakongClient, CheckStatus, InMemoryRequestLedger  # noqa: E402
from engine.bakong.sandbox import (  # noqa: E402
    InMemoryTransferStore,
    SandboxTransfer,
    create_sandbox_app,
    serve_forever,
)
from engine.clock import SystemClock  # noqa: E402

TOKEN = "bench-token"
ACCOUNT = "bench_shop@devb"
TARGET = 20_000


def md5_keys(n: int) -> list[str]:
    return [f"{i:032x}" for i in range(n)]


def paid_keys(n: int) -> set[str]:
    return {f"{i:032x}" for i in range(0, n, 10)}


def build_store(n: int) -> InMemoryTransferStore:
    rng = random.Random(1)
    transfers = []
    for i in range(0, n, 10):
        transfers.append(
            SandboxTransfer(
                hash=f"{rng.getrandbits(256):064x}",
                md5=f"{i:032x}",
                from_account="abaakhppxxx@abaa",
                to_account=ACCOUNT,
                currency="USD",
                amount=Decimal("1.25"),
                created_ms=1_700_000_000_000,
                acknowledged_ms=1_700_000_001_000,
                external_ref=f"100FT{i:011d}",
            )
        )
    return InMemoryTransferStore(transfers)


def build_app(n: int):  # noqa: ANN201
    return create_sandbox_app(build_store(n), clock=SystemClock(), token=TOKEN, rng=random.Random(2))


def serve(port: int, n: int) -> None:
    serve_forever(build_app(n), host="127.0.0.1", port=port, log_level="error")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_client(base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> BakongClient:
    return BakongClient(
        base_url=base_url,
        clock=SystemClock(),
        ledger=InMemoryRequestLedger(history=1000),
        token=TOKEN,
        daily_budget=10**12,
        max_retries=0,
        transport=transport,
    )


class Verifier:
    def __init__(self, n: int) -> None:
        self.paid = paid_keys(n)

    def check(self, outcomes: dict) -> None:
        for key, outcome in outcomes.items():
            if key in self.paid:
                if outcome.status is not CheckStatus.PAID or outcome.transaction.amount != Decimal("1.25"):
                    raise AssertionError(f"{key}: expected PAID 1.25, got {outcome}")
            elif outcome.status is not CheckStatus.NOT_FOUND:
                raise AssertionError(f"{key}: expected NOT_FOUND, got {outcome}")


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by this process (None) or by ``pid`` (Linux only)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Figure:
    """The best of several rounds of one measurement, with CPU per request on both sides."""

    def __init__(self) -> None:
        self.rate = 0.0
        self.request_rate = 0.0
        self.client_cpu_ms = float("inf")
        self.server_cpu_ms = float("inf")

    def add(self, checks: int, requests: int, elapsed: float, client_cpu: float, server_cpu: float) -> None:
        if checks / elapsed > self.rate:
            self.rate, self.request_rate = checks / elapsed, requests / elapsed
        self.client_cpu_ms = min(self.client_cpu_ms, client_cpu / requests * 1000)
        self.server_cpu_ms = min(self.server_cpu_ms, server_cpu / requests * 1000)


async def run_for(seconds: float, tasks: int, step: Callable[[int], Awaitable[int]]) -> tuple[int, int, float]:
    """Run ``step`` in ``tasks`` loops for ``seconds``; returns (checks, requests, elapsed)."""
    deadline = time.perf_counter() + seconds
    totals = [0, 0]

    async def loop(worker: int) -> None:
        i = worker
        while time.perf_counter() < deadline:
            checked = await step(i)  # not `totals[0] += await …`: that loses updates across tasks
            totals[0] += checked
            totals[1] += 1
            i += tasks

    start = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(tasks)))
    return totals[0], totals[1], time.perf_counter() - start


async def client_rates(
    client: BakongClient, n: int, seconds: float, rounds: int, tasks: int, server_pid: int | None
) -> dict[str, Figure]:
    keys = md5_keys(n)
    batches = [keys[i : i + 50] for i in range(0, n, 50)]
    verifier = Verifier(n)

    async def batched(i: int) -> int:
        outcomes = await client.check_payments(batches[i % len(batches)])
        verifier.check(outcomes)
        return len(outcomes)

    async def single(i: int) -> int:
        key = keys[i % n]
        verifier.check({key: await client.check_payment(key)})
        return 1

    await run_for(min(1.0, seconds), 1, batched)  # warm up: connection, caches, CPU clocks
    results: dict[str, Figure] = {}
    plans = dict.fromkeys([("batched", batched, 1), ("batched", batched, tasks), ("single", single, 1), ("single", single, tasks)])
    for label, step, count in plans:
        figure = results.setdefault(f"{label} x{count}", Figure())
        for _ in range(rounds):
            client0, server0 = process_cpu(None), process_cpu(server_pid) if server_pid else 0.0
            checks, requests, elapsed = await run_for(seconds, count, step)
            client1, server1 = process_cpu(None), process_cpu(server_pid) if server_pid else 0.0
            figure.add(checks, requests, elapsed, client1 - client0, server1 - server0)
    return results


async def raw_asgi_rate(n: int, seconds: float) -> tuple[float, float]:
    """The sandbox app called directly: md5_list requests/s and md5 requests/s (no HTTP, no client)."""
    app = build_app(n)
    keys = md5_keys(n)
    batches = [json.dumps(keys[i : i + 50]).encode() for i in range(0, n, 50)]
    singles = [json.dumps({"md5": k}).encode() for k in keys]
    headers = [(b"authorization", f"Bearer {TOKEN}".encode()), (b"content-type", b"application/json")]

    async def call(path: str, body: bytes) -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
        sent = False
        status = 0

        async def receive() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    rates = []
    for path, bodies in (("/v1/check_transaction_by_md5_list", batches), ("/v1/check_transaction_by_md5", singles)):
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            assert await call(path, bodies[count % len(bodies)]) == 200
            count += 1
        rates.append(count / (time.perf_counter() - start))
    return rates[0], rates[1]


def line(label: str, figure: Figure, *, server: bool = True) -> str:
    cpu = f"client {figure.client_cpu_ms:.2f} ms" + (f", sandbox {figure.server_cpu_ms:.2f} ms" if server else "")
    return (
        f"  {label:<34} {figure.rate:>9,.0f} MD5 checks/s  ({figure.request_rate:>6,.0f} requests/s; "
        f"CPU per request: {cpu})"
    )


async def main_async(args: argparse.Namespace) -> int:
    n = args.md5s
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"bakong bench: {n:,} MD5s, 1 in 10 paid; best of {args.rounds} x {args.seconds:g} s per figure; "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {load:.2f} at start"
    )

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--md5s", str(n)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/sandbox/info", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the sandbox server did not start") from None
                await asyncio.sleep(0.05)
        print(f"client -> sandbox over loopback HTTP (uvicorn in a separate process, {url}):")
        async with make_client(url) as client:
            loopback = await client_rates(client, n, args.seconds, args.rounds, args.tasks, server.pid)
        for label, figure in loopback.items():
            kind, count = label.split(" x")
            print(line(f"{kind}, {count} task{'s' if count != '1' else ''}", figure))
    finally:
        server.terminate()
        server.wait(10)

    print("sandbox capacity in-process:")
    bulk_rps, single_rps = await raw_asgi_rate(n, args.seconds)
    print(f"  {'ASGI app called directly, md5_list':<34} {bulk_rps * 50:>9,.0f} MD5 checks/s  ({bulk_rps:>6,.0f} requests/s)")
    print(f"  {'ASGI app called directly, md5':<34} {single_rps:>9,.0f} MD5 checks/s  ({single_rps:>6,.0f} requests/s)")
    app = build_app(n)
    async with make_client("http://sandbox.bench", transport=httpx.ASGITransport(app=app)) as client:
        in_process = await client_rates(client, n, args.seconds, args.rounds, 1, None)
    for label in ("batched x1", "single x1"):
        print(line(f"client via ASGITransport, {label.split()[0]}", in_process[label], server=False))

    best = max(figure.rate for label, figure in loopback.items() if label.startswith("batched"))
    capacity = 50_000 / min(f.client_cpu_ms for label, f in loopback.items() if label.startswith("batched"))
    verdict = "met" if best >= TARGET else "NOT met"
    print(f"client capacity batched: {capacity:,.0f} MD5 checks per client CPU-second")
    print(f"target >= {TARGET:,} MD5 checks/s batched over loopback: {verdict} ({best:,.0f}/s)")
    return 0 if best >= TARGET else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (the best is shown)")
    parser.add_argument("--tasks", type=int, default=8, help="concurrent tasks for the concurrent figures")
    parser.add_argument("--md5s", type=int, default=10_000, help="distinct MD5s asked about (1 in 10 paid)")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.md5s)
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
