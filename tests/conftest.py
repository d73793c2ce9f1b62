"""Shared fixtures: an isolated home for every test, the injected clock, real databases, a whole
engine on them, the CLI's environment, a loopback webhook receiver and a loopback server for
Bakong sandboxes.

PostgreSQL tests each get a fresh database on 127.0.0.1:5432 that is dropped afterwards. When the
server (or Redis, for the tests that need it) is down they skip locally, but fail when
BAKONG_CONSOLE_REQUIRE_POSTGRES=1 (set by .ci/run), so CI can never pass without running them.

Plain helpers that tests import by name live in tests/support, not here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from engine.clock import ManualClock
from engine.config import Settings
from tests.support.engine import open_engine, settle
from tests.support.services import unavailable
from tests.support.settings import TEST_DATA_KEY, cli_environ, make_settings

if TYPE_CHECKING:
    from engine.bakong.sandbox import ThreadedServer
    from engine.runtime import Engine
    from tests.support.receiver import Receiver
    from tests.support.sandbox_server import SwitchableApp

PG_ADMIN_DSN = os.environ.get("BAKONG_CONSOLE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the real user's config or data directories or env secrets."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    for var in list(os.environ):
        if var.startswith("BAKONG_CONSOLE_") and var not in ("BAKONG_CONSOLE_REQUIRE_POSTGRES", "BAKONG_CONSOLE_TEST_PG"):
            monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 15, 3, 0, tzinfo=UTC))


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    import asyncio

    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure to connect is a reason to skip or fail
        return f"{type(exc).__name__}: {exc}"
    return None


_pg_state: dict[str, str | None] = {}


def require_postgres() -> None:
    if "reason" not in _pg_state:
        _pg_state["reason"] = _pg_available()
    reason = _pg_state["reason"]
    if reason is not None:
        unavailable(f"PostgreSQL on 127.0.0.1:5432 is not available ({reason})", "PostgreSQL")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (asyncpg URL), dropped after the test."""
    import asyncio

    import asyncpg

    require_postgres()
    name = f"bc_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test once on a SQLite file and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
async def storage(db_url: str, clock: ManualClock):
    """A migrated Storage on SQLite and on PostgreSQL, with the manual clock and seeded ids."""
    import random

    from engine.crypto import DataCipher, parse_key_spec
    from engine.db.database import Database
    from engine.db.migrate import upgrade
    from engine.db.storage import Storage
    from engine.ids import IdFactory

    kid, key = parse_key_spec(TEST_DATA_KEY)
    db = Database(db_url)
    await upgrade(db)
    st = Storage(db, clock=clock, cipher=DataCipher(kid, {kid: key}), ids=IdFactory(clock, random.Random(7)))
    try:
        yield st
    finally:
        await db.dispose()


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    """The ``engine`` fixture's settings; a package overrides this to change a section."""
    return make_settings(db_url)


@pytest.fixture
async def engine(engine_settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    """A whole engine (every worker, the built-in sandbox, seeded ids) on the manual clock, parked."""
    async with open_engine(engine_settings, clock) as eng:
        await settle(eng)
        yield eng


@pytest.fixture
def cli_env(db_url: str) -> dict[str, str]:
    """The environment for CLI runs on ``db_url`` (test data key), its database upgraded."""
    from typer.testing import CliRunner

    from bakong_console.cli.main import app

    env = cli_environ(db_url)
    result = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    return env


@pytest.fixture(scope="session")
def loopback_server() -> Iterator[tuple[ThreadedServer, SwitchableApp]]:
    """One real HTTP server on loopback for the session; a test points ``switch.target`` at its
    own Bakong sandbox app."""
    from engine.bakong.sandbox import ThreadedServer
    from tests.support.sandbox_server import SwitchableApp

    switch = SwitchableApp()
    with ThreadedServer(switch) as server:
        yield server, switch


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver on loopback that records every webhook request."""
    from tests.support.receiver import Receiver

    async with Receiver() as r:
        yield r
