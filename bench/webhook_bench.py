"""Webhook delivery benchmark: signed deliveries per second to a local receiver, on SQLite.

A receiver runs in its own process on 127.0.0.1 (a minimal keep-alive HTTP/1.1 server answering
204). The engine's real deliverer fans out N committed events to 1 and then to 10 endpoints
(all on that receiver) and sends every delivery through the whole path: claim, sign, POST,
record the attempt. Printed per case: the fan-out time, the send rate, and the end-to-end rate
(fan-out included), with the receiver's count as a cross-check.

Target (issue 6): at least 500 deliveries per second with SQLite on this machine.
Run: .venv/bin/python bench/webhook_bench.py [--events 2000] [--concurrency 16] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import socket
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select

from engine.clock import SystemClock
from engine.config import Settings
from engine.crypto import generate_key_spec
from engine.db import journal
from engine.db.models import WebhookDeliveryRow
from engine.ids import IdFactory
from engine.records import Actor, ActorType
from engine.runtime import Engine
from engine.workers.deliverer import Deliverer

ACTOR = Actor(ActorType.CLI, "bench")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


# --- the receiver (its own process) --------------------------------------------------------------


def _serve(port: int, ready: multiprocessing.Event, counter: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                with counter.get_lock():
                    counter.value += 1
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- one case ------------------------------------------------------------------------------------


async def _count(engine: Engine, status: str | None = None) -> int:
    async with engine.storage.read() as tx:
        stmt = select(func.count()).select_from(WebhookDeliveryRow)
        if status:
            stmt = stmt.where(WebhookDeliveryRow.status == status)
        return int(await tx.session.scalar(stmt) or 0)


async def run_case(url: str, base_url: str, *, endpoints: int, events: int, concurrency: int, counter) -> dict[str, float]:  # noqa: ANN001
    settings = Settings()
    settings = replace(
        settings,
        database=replace(settings.database, url=url),
        security=replace(settings.security, data_key=generate_key_spec("bench")),
        webhooks=replace(settings.webhooks, concurrency=concurrency),
    )
    clock = SystemClock()
    async with Engine.open(settings, clock=clock, migrate=True, ids=IdFactory(clock, random.Random(3))) as engine:
        for i in range(endpoints):
            await engine.webhooks.add_endpoint(f"{base_url}/ep{i}", actor=ACTOR)
        # committed events, one subject each (as payments would be), in transactions of 100
        for start in range(0, events, 100):
            async with engine.storage.transaction() as tx:
                for i in range(start, min(events, start + 100)):
                    await journal.append_event(
                        tx, "payment.completed", "payment", f"pay_{i:06d}",
                        {"id": f"pay_{i:06d}", "status": "PAID", "amount": "12.50", "currency": "USD", "md5": uuid.uuid4().hex},
                    )  # fmt: skip
        deliverer = Deliverer(engine.storage, settings, clock=clock, sender=engine.webhooks.sender, rng=random.Random(1))
        before = counter.value
        t0 = time.perf_counter()
        await deliverer.fan_out()
        t1 = time.perf_counter()
        expected = events * endpoints
        while deliverer.succeeded < expected:
            await deliverer.run_once()
        t2 = time.perf_counter()
        succeeded = await _count(engine, "SUCCEEDED")
        received = counter.value - before
    return {
        "deliveries": expected,
        "succeeded": succeeded,
        "received": received,
        "fan_out_s": t1 - t0,
        "send_rate": expected / (t2 - t1),
        "total_rate": expected / (t2 - t0),
    }


async def _pg_database(created: list[str]) -> str:
    import asyncpg

    name = f"bc_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    created.append(name)
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _drop_pg(created: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        for name in created:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace, base_url: str, counter) -> None:  # noqa: ANN001
    tmp = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    labels = ["sqlite", "postgresql"] if args.postgres else ["sqlite"]
    created: list[str] = []
    print(f"webhook delivery, concurrency {args.concurrency}, receiver in its own process")
    print(f"{'database':<11} {'endpoints':>9} {'deliveries':>10} {'fan-out':>9} {'send/s':>9} {'total/s':>9}  check")
    try:
        for label in labels:
            for endpoints in (1, 10):
                # a fresh database per case keeps the cases comparable
                url = f"sqlite+aiosqlite:///{tmp / f'bench-{endpoints}.db'}" if label == "sqlite" else await _pg_database(created)
                events = args.events if endpoints == 1 else max(1, args.events // 4)
                r = await run_case(url, base_url, endpoints=endpoints, events=events, concurrency=args.concurrency, counter=counter)
                ok = "ok" if r["succeeded"] == r["deliveries"] and r["received"] >= r["deliveries"] else "MISMATCH"
                print(
                    f"{label:<11} {endpoints:>9} {r['deliveries']:>10} {r['fan_out_s'] * 1000:>7.0f}ms "
                    f"{r['send_rate']:>9.0f} {r['total_rate']:>9.0f}  {ok} (received {r['received']})"
                )
    finally:
        if created:
            await _drop_pg(created)
    print("target: >= 500 deliveries/s on SQLite (send/s: claim, sign, POST, record; total/s: fan-out included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000, help="events for the 1-endpoint case (a quarter of them, x10, for 10)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres", action="store_true", help="also run on a scratch PostgreSQL database")
    args = parser.parse_args()
    port = _free_port()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    counter = ctx.Value("q", 0)
    proc = ctx.Process(target=_serve, args=(port, ready, counter), daemon=True)
    proc.start()
    try:
        if not ready.wait(10):
            raise SystemExit("the receiver did not start")
        asyncio.run(main_async(args, f"http://127.0.0.1:{port}", counter))
    finally:
        proc.terminate()
        proc.join(5)


if __name__ == "__main__":
    main()
