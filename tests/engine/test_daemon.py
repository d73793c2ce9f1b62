"""`bakong-console serve` as a real process: SIGKILL mid-work loses nothing, SIGTERM exits 0 with
leases released, bad config exits non-zero with one line. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest

from engine import events as ev
from engine.clock import ManualClock, SystemClock
from engine.config import load_settings
from engine.db import journal
from engine.db import leases as lease_repo
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from tests.support.net import free_port, taken_port
from tests.support.settings import TEST_DATA_KEY, write_config

CASHIER = Actor(ActorType.CASHIER, "dara")


def _config(tmp_path: Path, db_url: str, *, api_port: int | None = None) -> Path:
    api = "enabled = false" if api_port is None else f'enabled = true\nhost = "127.0.0.1"\nport = {api_port}'
    return write_config(
        tmp_path / "daemon.toml",
        db_url,
        f"""[payments]
dense_interval_seconds = 0.3
sparse_interval_seconds = 0.5
tick_seconds = 0.2
[daemon]
lease_seconds = 1.5
heartbeat_seconds = 0.5
stop_timeout_seconds = 5.0
[api]
{api}
[logging]
format = "json"
""",
    )


def _upgrade(config: Path) -> None:
    upgrade = subprocess.run(
        [sys.executable, "-m", "bakong_console", "--config", str(config), "db", "upgrade"], capture_output=True, text=True, timeout=60
    )
    assert upgrade.returncode == 0, upgrade.stderr


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "bakong_console", "--config", str(config), "serve"],
        stdout=out,
        stderr=out,
        cwd=config.parent,
    )


async def _wait_for(predicate, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_sigkill_mid_work_then_restart_completes_every_payment_exactly_once(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    settings = load_settings(config)
    log = tmp_path / "daemon.log"
    async with Engine.open(settings, clock=SystemClock(), migrate=True) as engine:
        made = [(await engine.payments.initiate(f"{n + 1}.00", "USD", actor=CASHIER)).payment for n in range(10)]
        daemon = _start(config, log)
        try:
            for p in made[:5]:
                await engine.sandbox.pay(qr=p.khqr)

            async def some_paid() -> bool:
                statuses = [(await engine.payments.get(p.id)).status for p in made[:5]]
                return PaymentStatus.PAID in statuses

            await _wait_for(some_paid)
            daemon.send_signal(signal.SIGKILL)
            assert daemon.wait(10) == -signal.SIGKILL
            for p in made[5:]:
                await engine.sandbox.pay(qr=p.khqr)
            daemon = _start(config, log)

            async def all_paid() -> bool:
                statuses = [(await engine.payments.get(p.id)).status for p in made]
                return all(s is PaymentStatus.PAID for s in statuses)

            await _wait_for(all_paid, timeout=45)
            async with engine.storage.read() as tx:
                events = await journal.events_since(tx, 0, limit=10_000)
            completed = Counter(e.subject_id for e in events if e.type == ev.PAYMENT_COMPLETED)
            assert completed == Counter({p.id: 1 for p in made})

            async with engine.storage.read() as tx:
                held = [lease.holder for lease in await lease_repo.list_leases(tx) if lease.name == "poller"]
            assert held and f":{daemon.pid}:" in held[0]
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(15) == 0, log.read_text()
            async with engine.storage.read() as tx:
                holders = [lease.holder for lease in await lease_repo.list_leases(tx)]
            assert not [h for h in holders if f":{daemon.pid}:" in h], "a stopped daemon releases its leases"
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(10)
    lines = log.read_text().splitlines()
    assert any('"message": "heartbeat"' in line for line in lines)
    assert TEST_DATA_KEY.split(":")[1] not in log.read_text()


async def test_paid_in_time_while_the_daemon_is_killed_across_the_expiry_ends_paid_not_timeout(
    db_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, db_url)
    _upgrade(config)
    log = tmp_path / "daemon.log"
    daemon = _start(config, log)
    try:
        deadline = time.monotonic() + 30
        while '"daemon started"' not in log.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert '"daemon started"' in log.read_text(), log.read_text()
        # made 57 s ago with a 1-minute KHQR, its first check far off: it expires 3 s from now
        settings = replace(load_settings(config), payments=replace(load_settings(config).payments, dense_interval_seconds=3600.0))
        made_at = datetime.now(UTC) - timedelta(seconds=57)
        async with Engine.open(settings, clock=ManualClock(made_at), run_workers=False) as engine:
            payment = (await engine.payments.initiate("3.00", "USD", actor=CASHIER, timeout_minutes=1)).payment
            daemon.send_signal(signal.SIGKILL)
            assert daemon.wait(10) == -signal.SIGKILL
            assert engine.sandbox is not None
            paid = await engine.sandbox.pay(qr=payment.khqr, paid_at_ms=int(time.time() * 1000))
            assert paid.created_ms < payment.expires_at.timestamp() * 1000
            await asyncio.sleep(max(0.0, (payment.expires_at - datetime.now(UTC)).total_seconds()) + 1.0)
            daemon = _start(config, log)

            async def settled() -> bool:
                return (await engine.payments.get(payment.id)).status not in (PaymentStatus.PENDING, PaymentStatus.TIMEOUT)

            await _wait_for(settled)
            done = await engine.payments.get(payment.id)
            assert done.status is PaymentStatus.PAID, log.read_text()[-2000:]
            async with engine.storage.read() as tx:
                types = [e.type for e in await journal.events_since(tx, 0, limit=1000) if e.subject_id == payment.id]
            assert types == [ev.PAYMENT_CREATED, ev.PAYMENT_COMPLETED]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_signals_stop_the_daemon_cleanly(sqlite_url: str, tmp_path: Path, sig: signal.Signals) -> None:
    config = _config(tmp_path, sqlite_url)
    log = tmp_path / "daemon.log"
    upgrade = subprocess.run(
        [sys.executable, "-m", "bakong_console", "--config", str(config), "db", "upgrade"], capture_output=True, text=True, timeout=60
    )
    assert upgrade.returncode == 0, upgrade.stderr
    daemon = _start(config, log)
    try:
        deadline = time.monotonic() + 20
        while '"daemon started"' not in log.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert '"daemon started"' in log.read_text(), log.read_text()
        started = time.monotonic()
        daemon.send_signal(sig)
        assert daemon.wait(15) == 0
        assert time.monotonic() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert '"daemon stopped"' in log.read_text()


async def test_serve_answers_the_api_and_stops_on_sigterm_with_leases_released(sqlite_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, sqlite_url, api_port=port)
    _upgrade(config)
    log = tmp_path / "daemon.log"
    daemon = _start(config, log)
    try:
        deadline = time.monotonic() + 30
        health = None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            while time.monotonic() < deadline and daemon.poll() is None:
                try:
                    health = await client.get("/api/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        assert health is not None and health.status_code == 200, log.read_text()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
    text = log.read_text()
    assert '"daemon stopped"' in text
    # The fast paths where installed (issue 19.3), the standard ones otherwise.
    assert f'"event_loop": "{"uvloop" if find_spec("uvloop") else "asyncio"}"' in text, text
    assert f'"http_parser": "{"httptools" if find_spec("httptools") else "h11"}"' in text, text
    settings = load_settings(config)
    async with Engine.open(settings, clock=SystemClock(), run_workers=False) as engine:
        now = engine.clock.now()
        assert [lease.name for lease in await engine.leases() if lease.expires_at > now] == []


def test_serve_with_the_api_port_taken_exits_one_after_stopping_cleanly(sqlite_url: str, tmp_path: Path) -> None:
    with taken_port() as port:
        config = _config(tmp_path, sqlite_url, api_port=port)
        _upgrade(config)
        result = subprocess.run(
            [sys.executable, "-m", "bakong_console", "--config", str(config), "serve"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"could not listen on 127.0.0.1:{port}" in result.stderr + result.stdout
    assert '"daemon stopped"' in result.stderr + result.stdout
    # With [logging] format = "json" every line is a JSON object, uvicorn's own (the bind error) too.
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert any(r["logger"].startswith("uvicorn") and r["level"] == "ERROR" for r in records), lines


def test_bad_config_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[payments]\ntick_seconds = 0\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bakong_console", "--config", str(config), "serve"],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "payments.tick_seconds" in lines[0]
