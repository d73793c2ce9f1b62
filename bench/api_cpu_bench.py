"""API CPU per request, in-process: what one request costs the server, without a socket or a
load generator competing for the CPUs (the figure to compare before and after a change to the
request path on a shared machine, where requests per second wander with the neighbours' load).

The app (``create_app`` on an engine, workers off, SQLite file or PostgreSQL) is called directly
as an ASGI application, the way uvicorn calls it, for:

- ``ping``: ``GET /bench/ping``, no key (the edge middleware and the routing alone);
- ``keyed``: ``GET /bench/keyed-ping`` behind the key check and the rate limiter;
- ``status``: ``GET /api/payments/status/{md5}`` (key, limiter, one read);
- ``create``: ``POST /api/payments/create`` (key, limiter, KHQR, one write transaction).

Each figure is ``time.process_time`` over a batch of requests divided by their number; the median
of ``--runs`` batches is printed, in microseconds. ``--client httpx`` goes through
``httpx.AsyncClient`` with ``ASGITransport`` instead (adds the client's own cost, about what a
test sees). ``--profile FILE`` writes a cProfile of one more batch of ``--profile-mode``.

Run: .venv/bin/python bench/api_cpu_bench.py [--requests 2000] [--runs 5] [--only sqlite|postgres]
     [--client asgi|httpx] [--profile out.prof --profile-mode status]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_bench import _drop_pg, _pg_database, benched_api  # noqa: E402

MODES = ("ping", "keyed", "status", "create")


class AsgiCaller:
    """Calls the app as uvicorn does: one scope, a body, and the response messages collected."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"host", b"127.0.0.1:8000"))
        if body:
            raw.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": raw, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }  # fmt: skip
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        return status


def _requester(app: Any, client: str) -> tuple[Callable[..., Awaitable[int]], Callable[[], Awaitable[None]]]:
    if client == "asgi":
        caller = AsgiCaller(app)

        async def nothing() -> None:
            return None

        return caller.request, nothing
    import httpx

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)), base_url="http://127.0.0.1:8000")

    async def via_httpx(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
        answer = await http.request(method, path, headers=headers, content=body or None)
        return answer.status_code

    return via_httpx, http.aclose


async def _batch(request: Callable[..., Awaitable[int]], mode: str, n: int, key: str, md5s: list[str], run: int) -> float:
    auth = {"X-API-Key": key}
    json_auth = {**auth, "Content-Type": "application/json"}
    calls: list[tuple[str, str, dict[str, str], bytes]] = []
    for i in range(n):
        if mode == "ping":
            calls.append(("GET", "/bench/ping", {}, b""))
        elif mode == "keyed":
            calls.append(("GET", "/bench/keyed-ping", auth, b""))
        elif mode == "status":
            calls.append(("GET", f"/api/payments/status/{md5s[i % len(md5s)]}", auth, b""))
        else:
            body = json.dumps({"amount": f"{1 + i % 97}.{i % 100:02d}", "currency": "USD", "reference": f"cpu-{run}-{i}"}).encode()
            calls.append(("POST", "/api/payments/create", json_auth, body))
    started = time.process_time()
    for method, path, headers, body in calls:
        status = await request(method, path, headers, body)
        if status >= 400:
            raise SystemExit(f"{mode}: {method} {path} answered {status}")
    return (time.process_time() - started) / n * 1e6


async def bench_database(url: str, args: argparse.Namespace) -> dict[str, float]:
    async with benched_api(url, workers=False) as (_, app, key, md5s):
        request, close = _requester(app, args.client)
        results: dict[str, float] = {}
        try:
            modes = [m for m in MODES if args.modes is None or m in args.modes]
            for mode in modes:
                n = args.requests if mode != "create" else max(1, args.requests // 4)
                await _batch(request, mode, min(n, 200), key, md5s, run=-1)  # warm-up
                runs = [await _batch(request, mode, n, key, md5s, run=r) for r in range(args.runs)]
                results[mode] = statistics.median(runs)
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await _batch(request, args.profile_mode, args.requests, key, md5s, run=99)
                profiler.disable()
                profiler.dump_stats(args.profile)
        finally:
            await close()
    return results


async def main(args: argparse.Namespace) -> None:
    print(f"CPU per request in-process ({args.client}), median of {args.runs} batches of {args.requests} (create: a quarter)")
    targets: list[tuple[str, str]] = []
    tmp = tempfile.TemporaryDirectory()
    if args.only in (None, "sqlite"):
        targets.append(("SQLite", f"sqlite+aiosqlite:///{tmp.name}/cpu.db"))
    pg = await _pg_database() if args.only in (None, "postgres") else None
    if pg is not None:
        targets.append(("PostgreSQL", pg[1]))
    try:
        for name, url in targets:
            results = await bench_database(url, args)
            print(f"  {name:11} " + "  ".join(f"{mode} {us:6.0f} µs" for mode, us in results.items()))
    finally:
        if pg is not None:
            await _drop_pg(pg[0])
        tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--modes", nargs="*", choices=MODES)
    parser.add_argument("--client", choices=["asgi", "httpx"], default="asgi")
    parser.add_argument("--profile", help="write a cProfile of one more batch here")
    parser.add_argument("--profile-mode", choices=MODES, default="status")
    from bakong_console.daemon import event_loop_factory

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:  # as serve runs: uvloop where installed
        runner.run(main(parser.parse_args()))
