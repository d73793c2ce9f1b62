"""HTTP API benchmark: requests per second and latency with 50 concurrent clients over loopback.

For SQLite (a file) and PostgreSQL (a scratch database on 127.0.0.1:5432, skipped if down), the
API is served by uvicorn on 127.0.0.1 inside the engine's event loop, as `bakong-console serve`
runs it (workers off, so the figures are the API's own), and measured on:

- ``GET /bench/ping``: a trivial route added to the same app (same middleware: request id,
  size limit, metrics), no key, no database: the ceiling;
- ``GET /bench/keyed-ping``: the same behind the API key check and the rate limiter (what
  authentication costs, for reading the two figures below);
- ``POST /api/payments/create``: authenticated, rate-limited (limit raised out of the way),
  a KHQR generated and one transaction (row, history, audit, event) per request;
- ``GET /api/payments/status/{md5}``: authenticated, one read.

The load comes from a separate process (the other CPU) holding 50 keep-alive connections that
each send their next request when the previous answer arrives. Targets (issue 9): create at
40% of the ceiling or better, status at 70% or better.

Run: .venv/bin/python bench/api_bench.py [--seconds 5] [--concurrency 50] [--only sqlite|postgres]
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
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import Depends, Request, Response

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def _requests(mode: str, key: str, md5s: list[str], worker: int) -> Any:
    host = b"Host: 127.0.0.1\r\n"
    auth = f"X-API-Key: {key}\r\n".encode()
    if mode == "ping":
        while True:
            yield b"GET /bench/ping HTTP/1.1\r\n" + host + b"\r\n"
    elif mode == "keyed":
        while True:
            yield b"GET /bench/keyed-ping HTTP/1.1\r\n" + host + auth + b"\r\n"
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
    # warm-up: a second of traffic that is not counted
    for seconds, counted in ((args.warmup, False), (args.seconds, True)):
        latencies: list[float] = []
        errors: list[int] = []
        until = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *[
                _connection("127.0.0.1", args.port, _requests(args.mode, args.key, md5s, w), until, latencies, errors)
                for w in range(args.concurrency)
            ]
        )
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": len(errors),
        "error_statuses": sorted(set(errors))[:5],
    }


def client_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
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


async def _measure(port: int, mode: str, key: str, md5s: list[str], args: argparse.Namespace) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", "--port", str(port), "--mode", mode, "--key", key,
        "--md5s", ",".join(md5s), "--seconds", str(args.seconds), "--warmup", str(args.warmup),
        "--concurrency", str(args.concurrency),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return json.loads(out)


async def bench_database(name: str, url: str, args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    import uvicorn

    from bakong_console.api import create_app
    from bakong_console.api.responses import ok
    from bakong_console.api.security import Principal, require
    from bakong_console.api.server import uvicorn_config
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
    async with Engine.open(settings, migrate=True) as engine:
        app = create_app(engine)

        async def ping(request: Request) -> Response:
            return ok(request, {"pong": True})

        async def keyed_ping(request: Request, principal: Principal = Depends(require("payments:read"))) -> Response:  # noqa: B008
            return ok(request, {"pong": True})

        app.add_api_route("/bench/ping", ping, methods=["GET"], include_in_schema=False)
        app.add_api_route("/bench/keyed-ping", keyed_ping, methods=["GET"], include_in_schema=False)
        _, key = await engine.api_keys.create("bench", None, actor=Actor(ActorType.CLI, "bench"))
        md5s = []
        for i in range(200):
            created = await engine.payments.initiate(f"{i + 1}.00", "USD", actor=Actor(ActorType.CLI, "bench"))
            md5s.append(created.payment.md5)
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
            await app.state.api.aclose()
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
TARGETS = {"create": 0.40, "status": 0.70}


def report(name: str, results: list[tuple[str, dict[str, Any]]]) -> None:
    ceiling = dict(results)["ping"]["rps"]
    print(f"\n{name}")
    print(f"  {'endpoint':34} {'req/s':>8} {'of ceiling':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for mode, r in results:
        share = r["rps"] / ceiling
        target = f" (target {TARGETS[mode]:.0%}: {'met' if share >= TARGETS[mode] else 'MISSED'})" if mode in TARGETS else ""
        print(
            f"  {LABELS[mode]:34} {r['rps']:8.0f} {share:10.0%} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['errors']:6d}{target}"
        )
        if r["errors"]:
            print(f"    error statuses: {r['error_statuses']}")


async def main(args: argparse.Namespace) -> None:
    print(f"{args.concurrency} concurrent keep-alive clients in a separate process, {args.seconds:g} s per endpoint after {args.warmup:g} s warm-up; CPUs: {os.cpu_count()}")
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            report("SQLite (file)", await bench_database("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", args))
    if args.only in (None, "postgres"):
        pg = await _pg_database()
        if pg is not None:
            name, url = pg
            try:
                report("PostgreSQL (127.0.0.1)", await bench_database("postgres", url, args))
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
        asyncio.run(main(parser.parse_args()))
