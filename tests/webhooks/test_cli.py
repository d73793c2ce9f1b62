"""`bakong-console webhooks ...`: outcomes, output and exit codes, on both databases; and `listen`
as a real process verifying real signed requests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bakong_console.cli.main import app
from bakong_console.cli.webhooks_cmd import parse_since
from engine.errors import InvalidInput
from engine.webhooks import generate_secret, sign
from engine.webhooks.message import encode_body
from tests.support.net import free_port, taken_port
from tests.support.receiver import Answer, ThreadedReceiver

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    return cli_env


def cli(env: dict[str, str], *args: str):  # noqa: ANN201
    return runner.invoke(app, ["webhooks", *args], env=env)


def field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.startswith(name + " "):
            return line.split()[-1]
    raise AssertionError(f"no {name} in {output!r}")


def test_endpoint_lifecycle(env: dict[str, str]) -> None:
    added = cli(env, "add", "https://backend.example/hooks", "--events", "payment.completed,payment.timeout", "--description", "main")
    assert added.exit_code == 0, added.output
    endpoint_id, secret = field(added.stdout, "endpoint"), field(added.stdout, "secret")
    assert endpoint_id.startswith("ep_") and secret.startswith("whsec_")
    assert "shown only now" in added.stderr

    listed = cli(env, "list")
    assert listed.exit_code == 0
    line = listed.stdout.strip()
    assert line.startswith(endpoint_id) and "\tenabled\t" in line and "payment.completed,payment.timeout" in line
    assert secret[6:] not in listed.stdout

    off = cli(env, "disable", endpoint_id, "--reason", "backend moving")
    assert off.exit_code == 0 and off.stdout.strip() == f"{endpoint_id} disabled: backend moving"
    again = cli(env, "disable", endpoint_id)
    assert again.exit_code == 1 and again.stderr.strip() == f"error: webhook endpoint {endpoint_id} is already disabled"
    as_json = json.loads(cli(env, "list", "--json").stdout)
    assert as_json["enabled"] is False and as_json["disabled_reason"] == "backend moving"

    on = cli(env, "enable", endpoint_id)
    assert on.exit_code == 0 and on.stdout.strip() == f"{endpoint_id} enabled" and "recover" in on.stderr

    rotated = cli(env, "rotate-secret", endpoint_id)
    assert rotated.exit_code == 0
    new_secret = field(rotated.stdout, "secret")
    assert new_secret.startswith("whsec_") and new_secret != secret and "stays valid until" in rotated.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "ftp://backend.example/hooks"], "error: the URL must start with http:// or https://"),
        (["add", "https://backend.example/hooks", "--events", "payment.paid"], "error: unknown event type 'payment.paid'"),
        (["disable", "ep_missing"], "error: no webhook endpoint ep_missing"),
        (["rotate-secret", "ep_missing"], "error: no webhook endpoint ep_missing"),
        (["attempts", "dlv_missing"], "error: no webhook delivery dlv_missing"),
        (["replay", "dlv_missing"], "error: no webhook delivery dlv_missing"),
        (["recover", "ep_missing", "--since", "1h"], "error: no webhook endpoint ep_missing"),
        (["recover", "ep_missing", "--since", "yesterday"], "error: --since 'yesterday' is not an ISO time"),
        (["deliveries", "--cursor", "garbage"], "error: invalid cursor"),
        (["test", "ep_missing"], "error: no webhook endpoint ep_missing"),
    ],
)
def test_bad_requests_fail_with_one_line(env: dict[str, str], args: list[str], message: str) -> None:
    result = cli(env, *args)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(message), result.stderr
    assert result.stdout == ""


def test_test_deliveries_attempts_replay_and_recover(env: dict[str, str]) -> None:
    with ThreadedReceiver() as receiver:
        endpoint_id = field(cli(env, "add", receiver.url).stdout, "endpoint")
        ok = cli(env, "test", endpoint_id)
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.startswith("dlv_") and "delivered: HTTP 200" in ok.stdout
        delivery_id = ok.stdout.split()[0]
        (request,) = receiver.requests
        assert request.type == "webhook.test"

        receiver.default = Answer(500, body=b"receiver bug")
        failed = cli(env, "test", endpoint_id)
        assert failed.exit_code == 1
        assert failed.stderr.startswith("error: test delivery dlv_") and "failed: HTTP 500" in failed.stderr

        listing = cli(env, "deliveries")
        assert listing.exit_code == 0 and len(listing.stdout.strip().splitlines()) == 2
        only_failed = cli(env, "deliveries", "--failed", "--json")
        (row,) = [json.loads(line) for line in only_failed.stdout.splitlines()]
        assert row["status"] == "PENDING" and row["last_status_code"] == 500 and row["attempts"] == 1
        assert row["event_type"] == "webhook.test" and row["endpoint_id"] == endpoint_id
        paged = cli(env, "deliveries", "--limit", "1", "--endpoint", endpoint_id)
        assert len(paged.stdout.strip().splitlines()) == 1 and paged.stderr.startswith("next: --cursor ")

        attempts = cli(env, "attempts", row["id"])
        assert attempts.exit_code == 0
        assert f"webhook-id {row['event_id']}" in attempts.stdout
        assert "#1\t" in attempts.stdout and "HTTP 500" in attempts.stdout and "receiver bug" in attempts.stdout

        replayed = cli(env, "replay", delivery_id)
        assert replayed.exit_code == 0 and replayed.stdout.strip() == f"{delivery_id} queued (webhook.test -> {endpoint_id})"
        states = {json.loads(line)["id"]: json.loads(line)["status"] for line in cli(env, "deliveries", "--json").stdout.splitlines()}
        assert states[delivery_id] == "PENDING"

        assert cli(env, "disable", endpoint_id).exit_code == 0
        refused = cli(env, "recover", endpoint_id, "--since", "1h")
        assert refused.exit_code == 1 and "enable it before recovering" in refused.stderr
        assert cli(env, "enable", endpoint_id).exit_code == 0
        recovered = cli(env, "recover", endpoint_id, "--since", "1h")
        assert recovered.exit_code == 0, recovered.output
        # both deliveries were disabled with the endpoint; recover queues them again
        assert recovered.stdout.startswith(f"2 deliveries queued for {endpoint_id}")


def test_since_forms() -> None:
    now = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("3d", now) == now - timedelta(days=3)
    assert parse_since("2026-01-15", now) == datetime(2026, 1, 14, 17, 0, tzinfo=UTC)  # Phnom Penh midnight
    assert parse_since("2026-01-15T01:02:03Z", now) == datetime(2026, 1, 15, 1, 2, 3, tzinfo=UTC)
    assert parse_since("2026-01-15T08:00:00+07:00", now) == datetime(2026, 1, 15, 1, 0, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        parse_since("last week", now)


def _wait_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"listen exited early: {proc.communicate()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("listen did not start")


def test_listen_verifies_and_prints_events(isolated_home: Path) -> None:
    secret, other = generate_secret(), generate_secret()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bakong_console", "webhooks", "listen", "--port", str(port), "--secret", secret, "--max-events", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        _wait_listening(port, proc)
        body = encode_body("payment.completed", datetime.now(UTC), {"id": "pay_9", "amount": "5.00"})
        stamp = int(time.time())
        url = f"http://127.0.0.1:{port}/hooks"
        forged = httpx.post(url, content=body, headers={"webhook-id": "msg_1", "webhook-timestamp": str(stamp), "webhook-signature": sign("msg_1", stamp, body, [other])})
        assert forged.status_code == 400 and "no matching signature" in forged.text
        assert httpx.get(url).status_code == 405
        good = httpx.post(url, content=body, headers={"webhook-id": "msg_2", "webhook-timestamp": str(stamp), "webhook-signature": sign("msg_2", stamp, body, [other, secret])})
        assert good.status_code == 204
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "msg_1  rejected: no matching signature" in out
    assert "msg_2  payment.completed  signature verified" in out
    assert '"id": "pay_9"' in out
    assert "listening on" in err


def test_listen_refuses_a_bad_secret_and_a_busy_port() -> None:
    bad = runner.invoke(app, ["webhooks", "listen", "--secret", "whsec_tooshort"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: a webhook secret decodes to 24-64 bytes, this one to 6")
    with taken_port() as port:
        taken = runner.invoke(app, ["webhooks", "listen", "--port", str(port), "--secret", generate_secret()])
    assert taken.exit_code == 1 and taken.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert len(taken.stderr.strip().splitlines()) == 1
