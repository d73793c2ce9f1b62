"""`bakong-console doctor`: a healthy installation passes, and each check fails when its thing is
broken on purpose — the config, the schema, the data key, the token, Bakong (geo-blocked), the
clock, the disk, the SQLite files' modes, a webhook endpoint, a lease left by a dead process."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
from collections import namedtuple
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.bakong.sandbox import issue_token
from engine.clock import ManualClock, SystemClock
from engine.config import load_settings, read_config_file
from engine.config_file import write_config_file
from engine.crypto import generate_key_spec, load_data_cipher
from engine.db import leases
from engine.db.database import Database
from engine.db.models import WebhookEndpointRow
from engine.db.storage import Storage
from engine.records import Actor, ActorType
from engine.runtime import Engine
from engine.services.doctor import CheckState, Doctor
from tests.golive.conftest import LiveBakong, setup_flags

runner = CliRunner()
OPERATOR = Actor(ActorType.CLI, "sokha")
Usage = namedtuple("Usage", "total used free")


class OffsetClock(SystemClock):
    """The real clock, set wrong by ``offset`` seconds."""

    def __init__(self, offset: float) -> None:
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return super().now() + self.offset


@pytest.fixture
def installed(bakong: LiveBakong, isolated_home: Path, tmp_path: Path) -> Path:
    """A shop set up by `setup` on a SQLite file that setup migrated; returns the config file."""
    db = tmp_path / "shop" / "shop.db"
    result = runner.invoke(app, setup_flags(bakong, database=f"sqlite:///{db}"))
    assert result.exit_code == 0, result.output
    # Private whatever the umask made them (SQLite gives its -wal and -shm the file's own mode).
    os.chmod(db.parent, 0o700)
    os.chmod(db, 0o600)
    return isolated_home / "config" / "bakong-console" / "config.toml"


@asynccontextmanager
async def storage_of(config: Path, clock: object | None = None) -> AsyncIterator[Storage]:
    settings = load_settings(config)
    db = Database(settings.database_url)
    try:
        yield Storage(db, clock=clock or SystemClock(), cipher=load_data_cipher(settings))  # type: ignore[arg-type]
    finally:
        await db.dispose()


async def add_endpoint(config: Path) -> str:
    """An endpoint through the engine: its secret is the stored secret the data key must open."""
    async with Engine.open(load_settings(config), clock=SystemClock(), rng=random.Random(3)) as engine:
        endpoint, _ = await engine.webhooks.add_endpoint("https://backend.example/hooks", actor=OPERATOR)
    return endpoint.id


def states(report: object) -> dict[str, str]:
    return {r.name: r.state.value for r in report.results}  # type: ignore[attr-defined]


async def test_a_healthy_installation_passes_every_check(installed: Path) -> None:
    await add_endpoint(installed)
    report = await Doctor(installed).run()
    assert states(report) == {
        "config": "ok", "database": "ok", "data key": "ok", "token": "ok", "bakong": "ok", "clock": "ok",
        "disk": "ok", "sqlite files": "ok", "webhooks": "ok", "leases": "ok",
    }, report  # fmt: skip
    assert "opens the stored secrets (1 tried)" in report.result("data key").detail
    assert "renewed with owner@example.com" in report.result("token").detail
    assert not report.failed


def test_the_command_prints_one_line_per_check_and_json_says_the_same(installed: Path) -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * 10, lines
    assert lines[0].startswith("ok    config ")
    data = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    assert data["ok"] is True and [c["name"] for c in data["checks"]][:3] == ["config", "database", "data key"]
    assert {c["state"] for c in data["checks"]} == {"ok"}


def test_a_config_that_does_not_load_fails_and_the_rest_is_skipped(isolated_home: Path) -> None:
    path = isolated_home / "bad.toml"
    path.write_text("[bakong]\nenvironment = \"production\"\n", encoding="utf-8")
    result = runner.invoke(app, ["--config", str(path), "doctor", "--json"])
    assert result.exit_code == 1
    checks = json.loads(result.stdout)["checks"]
    assert checks[0]["state"] == "FAIL" and "bakong.token: required" in checks[0]["detail"]
    assert "bakong-console setup" in checks[0]["fix"]
    assert {c["state"] for c in checks[1:]} == {"skip"}


def _point_at_an_empty_database(config: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    settings = read_config_file(config)
    database = dataclasses.replace(settings.database, url=f"sqlite+aiosqlite:///{empty}")
    write_config_file(config, dataclasses.replace(settings, database=database), force=True)


async def test_an_unmigrated_database_fails(installed: Path, tmp_path: Path) -> None:
    _point_at_an_empty_database(installed, tmp_path)
    report = await Doctor(installed).run()
    check = report.result("database")
    assert check.state is CheckState.FAIL and "is empty, not at" in check.detail and "db upgrade" in check.fix
    assert report.result("webhooks").state is CheckState.SKIP and report.failed


def test_the_command_exits_1_on_a_failure_and_says_what_to_do(installed: Path, tmp_path: Path) -> None:
    _point_at_an_empty_database(installed, tmp_path)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("FAIL  database"))
    assert line.endswith("— stop every instance, then run `bakong-console db upgrade`")


async def test_a_data_key_that_does_not_open_the_stored_secrets_fails(installed: Path) -> None:
    await add_endpoint(installed)
    key_file = Path(read_config_file(installed).security.data_key_file)
    kid = key_file.read_text().split(":")[0]
    # Another key under the same id: only opening a stored secret can tell.
    key_file.write_text(f"{kid}:{generate_key_spec().split(':')[1]}\n")
    report = await Doctor(installed).run()
    check = report.result("data key")
    assert check.state is CheckState.FAIL and "does not open every stored secret" in check.detail
    assert "webhook_endpoints.secret_enc" in check.detail
    key_file.unlink()
    missing = (await Doctor(installed).run()).result("data key")
    assert missing.state is CheckState.FAIL and "the data key file is missing" in missing.detail


async def test_an_expired_token_fails(installed: Path, bakong: LiveBakong) -> None:
    settings = read_config_file(installed)
    expired = issue_token(b"s" * 32, now=datetime.now(UTC) - timedelta(days=100), rng=random.Random(2))
    bakong_settings = dataclasses.replace(settings.bakong, token=expired, email="")
    write_config_file(installed, dataclasses.replace(settings, bakong=bakong_settings), force=True)
    report = await Doctor(installed).run()
    token = report.result("token")
    assert token.state is CheckState.FAIL and "expired on" in token.detail and "api-bakong.nbc.gov.kh" in token.fix
    assert report.result("bakong").state is CheckState.FAIL and report.result("bakong").detail.startswith("unauthorized")


async def test_a_token_close_to_expiry_without_renewal_warns(installed: Path) -> None:
    settings = read_config_file(installed)
    soon = issue_token(b"s" * 32, now=datetime.now(UTC) - timedelta(days=85), rng=random.Random(2))
    write_config_file(installed, dataclasses.replace(settings, bakong=dataclasses.replace(settings.bakong, token=soon, email="")), force=True)
    token = (await Doctor(installed).run()).result("token")
    assert token.state is CheckState.WARN and "4 days left" in token.detail and "bakong.email" in token.fix


async def test_geo_blocked_bakong_fails_with_the_relay_advice(installed: Path, bakong: LiveBakong) -> None:
    bakong.set_faults(geo_blocked=True)
    report = await Doctor(installed).run()
    check = report.result("bakong")
    assert check.state is CheckState.FAIL and check.detail.startswith("geo-blocked: ")
    assert "bakong.base_url" in check.fix and "Cambodia" in check.fix
    # The geo-block's nginx 403 still carries a Date header: the clock is judged all the same.
    assert report.result("clock").state is CheckState.OK


@pytest.mark.parametrize(("offset", "state"), [(0, CheckState.OK), (20, CheckState.WARN), (600, CheckState.FAIL), (-600, CheckState.FAIL)])
async def test_the_clock_is_judged_against_bakongs_date_header(installed: Path, offset: float, state: CheckState) -> None:
    check = (await Doctor(installed, clock=OffsetClock(offset)).run()).result("clock")
    assert check.state is state, check
    if state is CheckState.FAIL:
        way = "ahead of" if offset > 0 else "behind"
        found = re.fullmatch(rf"this machine is (\d+) s {way} Bakong's clock", check.detail)
        # Bakong's Date has whole seconds (and uvicorn refreshes its own once a second).
        assert found and abs(int(found[1]) - 600) <= 3, check.detail
        assert "timedatectl" in check.fix


@pytest.mark.parametrize(("free", "state"), [(10 * 1024**3, CheckState.OK), (600 * 1024**2, CheckState.WARN), (50 * 1024**2, CheckState.FAIL)])
async def test_free_disk_beside_sqlite(installed: Path, free: int, state: CheckState) -> None:
    seen: list[str] = []

    def usage(path: str) -> Usage:
        seen.append(path)
        return Usage(100 * 1024**3, 0, free)

    check = (await Doctor(installed, disk_usage=usage).run()).result("disk")
    assert check.state is state and seen and seen[0].endswith("shop")


async def test_sqlite_files_readable_by_others_warn(installed: Path, tmp_path: Path) -> None:
    await add_endpoint(installed)
    db = tmp_path / "shop" / "shop.db"
    assert (await Doctor(installed).run()).result("sqlite files").state is CheckState.OK
    os.chmod(db.parent, 0o755)
    os.chmod(db, 0o644)
    report = await Doctor(installed).run()
    check = report.result("sqlite files")
    assert check.state is CheckState.WARN and f"{db} is 0644" in check.detail and f"{db.parent} is 0755" in check.detail
    assert check.fix.startswith(f"chmod 700 {db.parent} && chmod 600 {db}")
    assert not report.failed


async def test_webhook_endpoints_failing_or_disabled(installed: Path) -> None:
    endpoint_id = await add_endpoint(installed)

    async def set_endpoint(**values: object) -> None:
        async with storage_of(installed) as storage, storage.transaction(events=False) as tx:
            await tx.session.execute(update(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id).values(**values))

    await set_endpoint(failing_since=datetime.now(UTC) - timedelta(hours=2))
    check = (await Doctor(installed).run()).result("webhooks")
    assert check.state is CheckState.FAIL and endpoint_id in check.detail and "failing since" in check.detail
    await set_endpoint(failing_since=datetime.now(UTC) - timedelta(minutes=5))
    assert (await Doctor(installed).run()).result("webhooks").state is CheckState.WARN
    await set_endpoint(failing_since=None, enabled=False, disabled_reason="the endpoint answered 410 Gone")
    check = (await Doctor(installed).run()).result("webhooks")
    assert check.state is CheckState.WARN and "410 Gone" in check.detail and "webhooks enable" in check.fix


async def test_leases_left_by_dead_instances_fail(installed: Path) -> None:
    await add_endpoint(installed)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = os.getpid()
    an_hour_ago = ManualClock(datetime.now(UTC) - timedelta(hours=1))
    async with storage_of(installed, an_hour_ago) as storage, storage.transaction(events=False) as tx:
        await leases.acquire(tx, "poller", "elsewhere:4242:abc123", ttl=30)
    report = await Doctor(installed, hostname="shop-pc").run()
    check = report.result("leases")
    assert check.state is CheckState.FAIL and "poller held by elsewhere:4242:abc123 (lapsed" in check.detail
    assert "bakong-console serve" in check.fix
    async with storage_of(installed) as storage, storage.transaction(events=False) as tx:
        await leases.release(tx, "poller", "elsewhere:4242:abc123")
        await leases.acquire(tx, "poller", f"shop-pc:{gone.pid}:dead01", ttl=300)
        await leases.acquire(tx, "deliverer", f"shop-pc:{alive}:live01", ttl=300)
    check = (await Doctor(installed, hostname="shop-pc").run()).result("leases")
    assert check.state is CheckState.FAIL and f"process {gone.pid} is gone" in check.detail and "deliverer" not in check.detail
    async with storage_of(installed) as storage, storage.transaction(events=False) as tx:
        await leases.release(tx, "poller", f"shop-pc:{gone.pid}:dead01")
    check = (await Doctor(installed, hostname="shop-pc").run()).result("leases")
    assert check.state is CheckState.OK and f"shop-pc:{alive}:live01" in check.detail
