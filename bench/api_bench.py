"""HTTP API benchmark: requests per second and latency with 50 concurrent clients over loopback.

For SQLite (a file) and PostgreSQL (a scratch database on 127.0.0.1:5432, skipped if down), the
API is served by uvicorn on 127.0.0.1 inside the engine's event loop, as `bakong-console serve`
runs it (uvloop and httptools where installed), once with the workers on (poller, expirer,
deliverer, renewer ... as `serve` runs them) and once with them off (the API's own figures), and
measured on:

- ``GET /bench/ping``: a trivial route added to the same app (same middleware: request id,
  size limit, metrics), no key, no database: the ceiling;
- ``GET /bench/keyed-ping``: the same behind the API key check and the rate limiter (what
  authentication costs, for reading the two figures below);
- ``POST /api/payments/create``: authenticated, rate-limited (limit raised out of the way),
  a KHQR generated and one transaction (row, history, audit, event) per request;
- ``GET /api/payments/status/{md5}``: authenticated, one read.

The load comes from a separate process (it takes a CPU of its own: on a 2-CPU machine the
server has the other) holding 50 keep-alive connections that each send their next request when
the previous answer arrives. Targets (issue 19, workers on, 50 connections): PostgreSQL create
>= 900/s and status >= 2,000/s, SQLite create >= 900/s and status >= 1,800/s, p99 < 150 ms.

Beside requests per second and latency, each line shows the server process's CPU time per
answered request (warm-up included; with the workers on, their CPU too): the figure that holds
still when neighbours on a shared machine take the CPUs and requests per second wander.

``--target URL --key KEY`` aims the same load at a server already running elsewhere (another
implementation, or a `serve` started by hand): create, then status on payments it created
(their ``md5`` read from the create answers' ``data.md5`` or ``md5``), and ``--keyed-path`` if
given (a keyed route to compare with ``/bench/keyed-ping``).

Run: .venv/bin/python bench/api_bench.py [--seconds 5] [--concurrency 50] [--only sqlite|postgres]
     [--workers on|off|both] [--target http://host:port --key KEY [--keyed-path /path]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request, Response

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# At module level: the routes' annotations (``Principal``, ``Response``) must resolve from here.
from bakong_console.api.responses import ok  # noqa: E402
from bakong_console.api.security import Principal, require  # noqa: E402

if TYPE_CHECKING:
    from engine.config import Settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


# --- the load generator (runs in its own process) ---------------------------------------------


async def _connection(host: str, port: int, requests: Any, until: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while time.perf_counter() < until:
            payload = next(requests)
            started = time.perf_counter()
            writer.write(payload)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            if status >= 400:
                errors.append(status)
    finally:
        writer.close()


def _requests(mode: str, key: str, md5s: list[str], worker: int, *, host_name: str = "127.0.0.1", keyed_path: str = "/bench/keyed-ping") -> Any:
    host = f"Host: {host_name}\r\n".encode()
    auth = f"X-API-Key: {key}\r\n".encode()
    if mode == "ping":
        while True:
            yield b"GET /bench/ping HTTP/1.1\r\n" + host + b"\r\n"
    elif mode == "keyed":
        while True:
            yield f"GET {keyed_path} HTTP/1.1\r\n".encode() + host + auth + b"\r\n"
    elif mode == "status":
        rng = random.Random(worker)
        while True:
            md5 = md5s[rng.randrange(len(md5s))]
            yield f"GET /api/payments/status/{md5} HTTP/1.1\r\n".encode() + host + auth + b"\r\n"
    else:
        n = 0
        run = uuid.uuid4().hex[:8]
        while True:
            n += 1
            body = json.dumps({"amount": f"{1 + n % 97}.{n % 100:02d}", "currency": "USD", "reference": f"b-{run}-{worker}-{n}"}).encode()
            yield (
                b"POST /api/payments/create HTTP/1.1\r\n" + host + auth
                + b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )  # fmt: skip


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    md5s = args.md5s.split(",") if args.md5s else []
    answered = 0  # warm-up included: what the server's CPU time is divided by
    # warm-up: a second of traffic that is not counted
    for seconds, counted in ((args.warmup, False), (args.seconds, True)):
        latencies: list[float] = []
        errors: list[int] = []
        until = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *[
                _connection(
                    args.host, args.port,
                    _requests(args.mode, args.key, md5s, w, host_name=args.host, keyed_path=args.keyed_path),
                    until, latencies, errors,
                )  # fmt: skip
                for w in range(args.concurrency)
            ]
        )
        elapsed = time.perf_counter() - started
        answered += len(latencies)
    latencies.sort()
    return {
        "requests": len(latencies),
        "answered": answered,
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": len(errors),
        "error_statuses": sorted(set(errors))[:5],
    }


def client_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--keyed-path", default="/bench/keyed-ping")
    parser.add_argument("--mode")
    parser.add_argument("--key", default="")
    parser.add_argument("--md5s", default="")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--concurrency", type=int)
    print(json.dumps(asyncio.run(_load(parser.parse_args(argv)))))


# --- the server side ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _measure(
    port: int,
    mode: str,
    key: str,
    md5s: list[str],
    args: argparse.Namespace,
    *,
    host: str = "127.0.0.1",
    keyed_path: str = "/bench/keyed-ping",
    measure_cpu: bool = True,
) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", "--host", host, "--port", str(port), "--keyed-path", keyed_path,
        "--mode", mode, "--key", key,
        "--md5s", ",".join(md5s), "--seconds", str(args.seconds), "--warmup", str(args.warmup),
        "--concurrency", str(args.concurrency),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    cpu = time.process_time()
    out, _ = await proc.communicate()
    cpu = time.process_time() - cpu
    result = json.loads(out)
    if measure_cpu:  # this process is the server: its CPU per answered request (workers included)
        result["cpu_us"] = 1e6 * cpu / max(1, result["answered"])
    return result


def add_bench_routes(app: Any) -> None:
    """``/bench/ping`` (no key) and ``/bench/keyed-ping`` (``payments:read``) on ``app``."""

    async def ping(request: Request) -> Response:
        return ok(request, {"pong": True})

    async def keyed_ping(request: Request, principal: Principal = Depends(require("payments:read"))) -> Response:  # noqa: B008
        return ok(request, {"pong": True})

    app.add_api_route("/bench/ping", ping, methods=["GET"], include_in_schema=False)
    app.add_api_route("/bench/keyed-ping", keyed_ping, methods=["GET"], include_in_schema=False)


@asynccontextmanager
async def benched_api(url: str, *, workers: bool) -> AsyncIterator[tuple[Settings, FastAPI, str, list[str]]]:
    """The API on a fresh engine at ``url`` (rate limit out of the way) with the bench routes:
    (settings, app, an API key with every scope, the md5s of 200 payments to ask the status of)."""
    from bakong_console.api import create_app
    from engine.config import Settings
    from engine.crypto import generate_key_spec
    from engine.records import Actor, ActorType
    from engine.runtime import Engine

    base = Settings()
    settings = replace(
        base,
        database=replace(base.database, url=url),
        security=replace(base.security, data_key=generate_key_spec("bench")),
        api=replace(base.api, rate_limit_per_minute=10**9),
    )
    bench = Actor(ActorType.CLI, "bench")
    async with Engine.open(settings, migrate=True, run_workers=workers) as engine:
        app = create_app(engine)
        add_bench_routes(app)
        try:
            _, key = await engine.api_keys.create("bench", None, actor=bench)
            md5s = [(await engine.payments.initiate(f"{i + 1}.00", "USD", actor=bench)).payment.md5 for i in range(200)]
            yield settings, app, key, md5s
        finally:
            await app.state.api.aclose()


async def bench_database(name: str, url: str, args: argparse.Namespace, *, workers: bool) -> list[tuple[str, dict[str, Any]]]:
    import uvicorn

    from bakong_console.api.server import settle_heap, uvicorn_config

    async with benched_api(url, workers=workers) as (settings, app, key, md5s):
        settle_heap()  # as serve does once the app is built
        port = _free_port()
        server = uvicorn.Server(uvicorn_config(app, settings.api, host="127.0.0.1", port=port))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        results = []
        try:
            for mode in ("ping", "keyed", "create", "status"):
                results.append((mode, await _measure(port, mode, key, md5s, args)))
        finally:
            server.should_exit = True
            await task
    return results


async def _pg_database() -> tuple[str, str] | None:
    import asyncpg

    name = f"bc_api_bench_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except Exception as exc:  # any failure to connect: skip PostgreSQL
        print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}")
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _drop_pg(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


LABELS = {
    "ping": "GET /bench/ping (ceiling)",
    "keyed": "GET /bench/keyed-ping (key, limit)",
    "create": "POST /api/payments/create",
    "status": "GET /api/payments/status/{md5}",
}
#: Issue 19's targets with the workers on, per database: requests per second (p99 under 150 ms).
TARGETS = {"SQLite": {"create": 900, "status": 1800}, "PostgreSQL": {"create": 900, "status": 2000}}
P99_TARGET_MS = 150.0


def report(name: str, results: list[tuple[str, dict[str, Any]]]) -> None:
    ceiling = dict(results).get("ping", {}).get("rps")
    targets = next((t for db, t in TARGETS.items() if name.startswith(db)), {})
    print(f"\n{name}")
    print(f"  {'endpoint':34} {'req/s':>8} {'of ceiling':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'CPU µs/req':>10}")
    for mode, r in results:
        share = f"{r['rps'] / ceiling:10.0%}" if ceiling else f"{'-':>10}"
        target = ""
        if mode in targets:
            met = r["rps"] >= targets[mode] and r["p99_ms"] < P99_TARGET_MS
            target = f" (target {targets[mode]}/s, p99 < {P99_TARGET_MS:g} ms: {'met' if met else 'MISSED'})"
        cpu = f"{r['cpu_us']:10.0f}" if "cpu_us" in r else f"{'-':>10}"
        print(f"  {LABELS[mode]:34} {r['rps']:8.0f} {share} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['errors']:6d} {cpu}{target}")
        if r["errors"]:
            print(f"    error statuses: {r['error_statuses']}")


async def bench_target(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """The same load against a server running elsewhere (``--target``)."""
    import httpx

    parsed = httpx.URL(args.target)
    host, port = parsed.host, parsed.port or 80
    headers = {"X-API-Key": args.key}
    md5s: list[str] = []
    async with httpx.AsyncClient(base_url=args.target, timeout=10) as client:
        for i in range(50):
            answer = await client.post("/api/payments/create", json={"amount": f"{i + 1}.00", "currency": "USD"}, headers=headers)
            answer.raise_for_status()
            body = answer.json()
            md5 = (body.get("data") or {}).get("md5") or body.get("md5")
            if md5:
                md5s.append(md5)
    results = []
    if args.keyed_path:
        results.append(("keyed", await _measure(port, "keyed", args.key, [], args, host=host, keyed_path=args.keyed_path, measure_cpu=False)))
    results.append(("create", await _measure(port, "create", args.key, [], args, host=host, measure_cpu=False)))
    if md5s:
        results.append(("status", await _measure(port, "status", args.key, md5s, args, host=host, measure_cpu=False)))
    return results


async def main(args: argparse.Namespace) -> None:
    from bakong_console.api.server import HTTP_PARSER

    loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    print(
        f"{args.concurrency} concurrent keep-alive clients in a separate process, {args.seconds:g} s per endpoint after "
        f"{args.warmup:g} s warm-up; CPUs: {os.cpu_count()}; server: {loop} loop, {HTTP_PARSER} parser"
    )
    if args.target:
        report(f"{args.target} (external)", await bench_target(args))
        return
    runs = {"on": [True], "off": [False], "both": [True, False]}[args.workers]
    for workers in runs:
        label = "workers on, as serve runs" if workers else "workers off"
        if args.only in (None, "sqlite"):
            with tempfile.TemporaryDirectory() as tmp:
                results = await bench_database("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", args, workers=workers)
                report(f"SQLite (file), {label}", results)
        if args.only in (None, "postgres"):
            pg = await _pg_database()
            if pg is not None:
                name, url = pg
                try:
                    report(f"PostgreSQL (127.0.0.1), {label}", await bench_database("postgres", url, args, workers=workers))
                finally:
                    await _drop_pg(name)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--seconds", type=float, default=5.0)
        parser.add_argument("--warmup", type=float, default=1.0)
        parser.add_argument("--concurrency", type=int, default=50)
        parser.add_argument("--only", choices=["sqlite", "postgres"])
        parser.add_argument("--workers", choices=["on", "off", "both"], default="both", help="run the engine's workers as serve does")
        parser.add_argument("--target", help="measure a server already running at this URL instead")
        parser.add_argument("--key", default="", help="the API key for --target")
        parser.add_argument("--keyed-path", default="", help="with --target: a keyed GET route to measure too")
        from bakong_console.daemon import event_loop_factory

        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:  # as serve runs: uvloop where installed
            runner.run(main(parser.parse_args()))
