"""The embedded SQLite database is private to its owner: the data directory is made 0700 and the
database, its -wal and its -shm 0600, whatever the umask; an existing file keeps its mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.clock import ManualClock
from engine.config import data_dir
from engine.db.database import Database
from engine.records import Actor, ActorType
from engine.runtime import Engine
from tests.support.settings import make_settings

CASHIER = Actor(ActorType.CASHIER, "dara")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems give a user (0022): files 0644 and directories 0755 by default."""
    saved = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(saved)


async def test_the_embedded_database_and_its_directory_are_private(usual_umask: None, clock: ManualClock) -> None:
    assert not data_dir().exists()
    async with Engine.open(make_settings(""), clock=clock) as engine:
        await engine.payments.initiate("5000", "KHR", actor=CASHIER)
        database = data_dir() / "bakong-console.db"
        files = [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm")]
        assert all(f.exists() for f in files), files
        assert {str(f): oct(mode(f)) for f in files} == {str(f): oct(0o600) for f in files}
    assert oct(mode(data_dir())) == oct(0o700)


async def test_an_existing_database_file_keeps_the_mode_its_owner_gave_it(usual_umask: None, tmp_path: Path) -> None:
    path = tmp_path / "shared" / "shop.db"
    path.parent.mkdir(mode=0o750)
    path.touch(mode=0o640)
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.dispose()
    assert oct(mode(path)) == oct(0o640) and oct(mode(path.parent)) == oct(0o750)
