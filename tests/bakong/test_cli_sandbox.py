"""`bakong-console sandbox …`: serve standalone, pay, faults, stats."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine import khqr
from engine.bakong.sandbox import InMemoryTransferStore, ThreadedServer, create_sandbox_app
from engine.clock import ManualClock
from tests.bakong.conftest import MERCHANT
from tests.support.net import free_port

runner = CliRunner()


@pytest.fixture
def served() -> Iterator[tuple[str, object, ManualClock]]:
    clock = ManualClock()
    app_ = create_sandbox_app(InMemoryTransferStore(), clock=clock, email="shop@example.com", rng=random.Random(9))
    with ThreadedServer(app_) as server:
        yield server.url, app_.state.sandbox, clock


def _qr(clock: ManualClock, amount: object, currency: str = "USD") -> khqr.KHQRResult:
    now_ms = int(clock.now().timestamp() * 1000)
    return khqr.generate(
        khqr.IndividualInfo(bakong_account_id=MERCHANT, merchant_name="Shop", currency=currency, amount=amount,
                            expiration_timestamp=now_ms + 600_000 if amount else None),
        now_ms=now_ms,
    )


def test_pay_a_qr(served: tuple[str, object, ManualClock]) -> None:
    url, sandbox, clock = served
    qr = _qr(clock, Decimal("12.50"))
    result = runner.invoke(app, ["sandbox", "pay", qr.qr, "--url", url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"paid 12.50 USD to {MERCHANT} from ")
    (transfer,) = asyncio.run(sandbox.store.recent())
    assert lines[1] == f"hash: {transfer.hash}" and lines[2] == f"md5: {qr.md5}"


def test_pay_options_wrong_amount_wrong_account_late(served: tuple[str, object, ManualClock]) -> None:
    url, sandbox, clock = served
    qr = _qr(clock, 40000, "KHR")
    result = runner.invoke(app, ["sandbox", "pay", qr.qr, "--wrong-amount", "--to", "other@abaa", "--late", "60", "--url", url])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("paid 39900 KHR to other@abaa")
    assert "paid late" in result.stdout
    (transfer,) = asyncio.run(sandbox.store.recent())
    assert transfer.created_ms == int(clock.now().timestamp() * 1000) + 600_000 + 60_000


def test_pay_by_md5_and_static_qr(served: tuple[str, object, ManualClock]) -> None:
    url, sandbox, clock = served
    result = runner.invoke(app, ["sandbox", "pay", "--md5", "d" * 32, "--amount", "2.5", "--currency", "USD", "--to", MERCHANT, "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    assert '"md5": "' + "d" * 32 in result.stdout and '"amount": "2.5"' in result.stdout
    static = _qr(clock, None, "KHR")
    refused = runner.invoke(app, ["sandbox", "pay", static.qr, "--url", url])
    assert refused.exit_code == 1 and "static" in refused.stderr and refused.stdout == ""
    ok = runner.invoke(app, ["sandbox", "pay", static.qr, "--amount", "5000", "--url", url])
    assert ok.exit_code == 0 and "static QR" in ok.stdout


def test_pay_needs_a_qr_or_an_md5_and_a_running_sandbox(served: tuple[str, object, ManualClock]) -> None:
    url, _, _ = served
    neither = runner.invoke(app, ["sandbox", "pay", "--url", url])
    assert neither.exit_code == 1 and "give either a KHQR or --md5" in neither.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = runner.invoke(app, ["sandbox", "pay", "--md5", "d" * 32, "--amount", "1", "--currency", "USD", "--to", MERCHANT, "--url", f"http://127.0.0.1:{port}"])
    assert down.exit_code == 1 and "no sandbox answers" in down.stderr


def test_faults_and_stats(served: tuple[str, object, ManualClock]) -> None:
    url, sandbox, _ = served
    result = runner.invoke(app, ["sandbox", "faults", "bulk_blocked=true", "error_rate=0.5", "--url", url])
    assert result.exit_code == 0, result.output
    assert sandbox.faults.bulk_blocked and sandbox.faults.error_rate == 0.5
    bad = runner.invoke(app, ["sandbox", "faults", "nonsense=1", "--url", url])
    assert bad.exit_code == 1 and "unknown sandbox fault" in bad.stderr
    reset = runner.invoke(app, ["sandbox", "faults", "--reset", "--url", url])
    assert reset.exit_code == 0 and not sandbox.faults.bulk_blocked
    stats = runner.invoke(app, ["sandbox", "stats", "--url", url])
    assert stats.exit_code == 0 and '"total": 0' in stats.stdout


def _start_serve(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bakong_console", "sandbox", "serve", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    printed: dict[str, str] = {}
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while "transfers" not in printed and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        key, _, value = line.partition(": ")
        printed[key.strip()] = value.strip()
    return proc, printed


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/sandbox/info", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never came up")


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_serve_standalone_with_a_file_store_keeps_token_and_transfers(tmp_path: Path) -> None:
    port = free_port()
    store = tmp_path / "transfers.jsonl"
    env = {**os.environ, "BAKONG_CONSOLE_BAKONG_EMAIL": "owner@example.com"}
    proc, printed = _start_serve(["--port", str(port), "--store", str(store)], env)
    try:
        url = f"http://127.0.0.1:{port}"
        assert printed["Bakong sandbox"] == url
        assert printed["email"] == "owner@example.com" and printed["transfers"] == str(store)
        token = printed["token"]
        _wait_until_up(url)
        headers = {"Authorization": f"Bearer {token}"}
        r = httpx.post(f"{url}/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=headers)
        assert r.status_code == 200 and r.json()["errorCode"] == 1
        paid = runner.invoke(app, ["sandbox", "pay", "--md5", "a" * 32, "--amount", "1", "--currency", "USD", "--to", MERCHANT, "--url", url])
        assert paid.exit_code == 0, paid.output
    finally:
        assert _stop(proc) == 0
    assert (tmp_path / "transfers.jsonl.token").read_text().strip() == token

    proc, printed = _start_serve(["--port", str(port), "--store", str(store)], env)
    try:
        assert printed["token"] == token
        _wait_until_up(url)
        r = httpx.post(f"{url}/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers={"Authorization": f"Bearer {token}"})
        assert r.json()["responseCode"] == 0 and r.json()["data"]["amount"] == 1
    finally:
        _stop(proc)
