"""The nightly backup worker on the manual clock: one backup a night at ``backup_at`` Phnom Penh
time (at once when the night's is missing), the newest ``backup_keep`` kept and nothing else in
the directory touched, a failure alerted once a night and retried until it works; and the
settings that drive it."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import events as ev
from engine.clock import ManualClock
from engine.config import load_settings
from engine.crypto import DataCipher, parse_key_spec
from engine.db import journal
from engine.db import state as engine_state
from engine.db.database import Database
from engine.db.migrate import upgrade
from engine.db.storage import Storage
from engine.errors import ConfigError
from engine.ids import IdFactory
from engine.workers.backup import NIGHTLY_STATE, NightlyBackup, last_due
from tests.support.engine import open_engine, settle
from tests.support.settings import TEST_DATA_KEY, make_settings

#: 10:00 in Phnom Penh: the daemon starts after that night's 03:00.
START = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


def nightly_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("bakong-console-"))


async def alerts(storage: Storage) -> list[dict]:
    async with storage.read() as tx:
        return [e.payload for e in await journal.events_since(tx, 0, limit=1000) if e.type == ev.ALERT_BACKUP_FAILED]


async def audited_backups(storage: Storage) -> int:
    async with storage.read() as tx:
        return sum(1 for a in await journal.list_audit(tx, limit=1000) if a.action == "database.backup")


@pytest.fixture
async def sqlite_storage(sqlite_url: str, clock: ManualClock):
    kid, key = parse_key_spec(TEST_DATA_KEY)
    db = Database(sqlite_url)
    await upgrade(db)
    storage = Storage(db, clock=clock, cipher=DataCipher(kid, {kid: key}), ids=IdFactory(clock, random.Random(7)))
    try:
        yield storage
    finally:
        await db.dispose()


def test_the_night_s_instant_is_phnom_penh_time() -> None:
    assert last_due(START, (3, 0)) == datetime(2026, 1, 14, 20, 0, tzinfo=UTC)  # 03:00 +07 today
    assert last_due(datetime(2026, 1, 14, 19, 59, tzinfo=UTC), (3, 0)) == datetime(2026, 1, 13, 20, 0, tzinfo=UTC)
    assert last_due(datetime(2026, 1, 14, 20, 0, tzinfo=UTC), (3, 0)) == datetime(2026, 1, 14, 20, 0, tzinfo=UTC)


async def test_one_backup_a_night_and_the_newest_kept(sqlite_url: str, sqlite_storage: Storage, clock: ManualClock, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "notes.txt").write_text("the operator's own file\n")
    settings = make_settings(sqlite_url, database={"url": sqlite_url, "backup_dir": str(backups), "backup_keep": 2, "backup_at": "03:00"})
    worker = NightlyBackup(sqlite_storage, settings, clock=clock)

    # started at 10:00 with no backup of last night: taken at once
    wait = await worker.run_once()
    assert nightly_files(backups) == ["bakong-console-20260115-100000.db"]
    assert wait == pytest.approx(17 * 3600)  # until 03:00 tomorrow
    # woken early (a poke, a lease renewal): nothing more that night, not even after a restart
    clock.advance(3600)
    assert await worker.run_once() == pytest.approx(16 * 3600)
    assert await NightlyBackup(sqlite_storage, settings, clock=clock).run_once() == pytest.approx(16 * 3600)
    assert len(nightly_files(backups)) == 1

    for night in (16, 17, 18):
        clock.set(datetime(2026, 1, night - 1, 20, 0, 5, tzinfo=UTC))  # 03:00:05 in Phnom Penh
        assert await worker.run_once() == pytest.approx(24 * 3600 - 5)
    assert nightly_files(backups) == ["bakong-console-20260117-030005.db", "bakong-console-20260118-030005.db"]
    assert (backups / "notes.txt").exists()
    newest = backups / "bakong-console-20260118-030005.db"
    conn = sqlite3.connect(newest)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    assert await audited_backups(sqlite_storage) == 4
    assert await alerts(sqlite_storage) == []
    async with sqlite_storage.read() as tx:
        state = await engine_state.get_state(tx, NIGHTLY_STATE)
    assert state is not None and state["file"] == str(newest) and state["done_for"] == "2026-01-17T20:00:00+00:00"


async def test_a_failed_backup_alerts_once_and_is_retried_until_it_works(
    sqlite_url: str, sqlite_storage: Storage, clock: ManualClock, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    backups.write_text("a file where the directory should be\n")
    settings = make_settings(sqlite_url, database={"url": sqlite_url, "backup_dir": str(backups)})
    worker = NightlyBackup(sqlite_storage, settings, clock=clock)

    assert await worker.run_once() == NightlyBackup.RETRY_SECONDS
    (alert,) = await alerts(sqlite_storage)
    assert alert["message"].startswith("nightly backup failed: ") and str(backups) in alert["message"]
    assert alert["due"] == "2026-01-14T20:00:00+00:00"
    # woken meanwhile: it waits out the retry interval
    clock.advance(600)
    assert await worker.run_once() == pytest.approx(3000)
    clock.advance(3000)
    assert await worker.run_once() == NightlyBackup.RETRY_SECONDS  # tried again, failed again: no second alert
    assert len(await alerts(sqlite_storage)) == 1

    backups.unlink()  # the operator fixes it
    clock.advance(NightlyBackup.RETRY_SECONDS)
    assert await worker.run_once() > 3600
    assert len(nightly_files(backups)) == 1
    assert backups.stat().st_mode & 0o777 == 0o700
    async with sqlite_storage.read() as tx:
        state = await engine_state.get_state(tx, NIGHTLY_STATE)
    assert state is not None and state["done_for"] == "2026-01-14T20:00:00+00:00"

    # the next night fails anew: a new alert for that night
    backups.rename(tmp_path / "moved")
    backups.write_text("in the way again\n")
    clock.set(datetime(2026, 1, 15, 20, 0, tzinfo=UTC))
    assert await worker.run_once() == NightlyBackup.RETRY_SECONDS
    assert [a["due"] for a in await alerts(sqlite_storage)] == ["2026-01-14T20:00:00+00:00", "2026-01-15T20:00:00+00:00"]


async def test_the_engine_runs_it_under_its_lease_only_when_a_directory_is_set(
    sqlite_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    async with open_engine(make_settings(sqlite_url), clock) as engine:
        assert "backup" not in engine.runners
    backups = tmp_path / "nightly"
    settings = make_settings(sqlite_url, database={"url": sqlite_url, "backup_dir": str(backups), "backup_keep": 3})
    async with open_engine(settings, clock) as engine:
        await settle(engine)
        assert engine.runners["backup"].status.holding
        assert [lease.name for lease in await engine.leases()].count("backup") == 1
        assert len(nightly_files(backups)) == 1
        clock.advance(24 * 3600)
        for _ in range(200):
            if len(nightly_files(backups)) == 2:
                break
            await asyncio.sleep(0.01)
        await settle(engine)
    assert len(nightly_files(backups)) == 2


@pytest.mark.postgres
async def test_the_nightly_backup_of_postgres_is_a_pg_dump_archive(pg_url: str, clock: ManualClock, tmp_path: Path) -> None:
    kid, key = parse_key_spec(TEST_DATA_KEY)
    db = Database(pg_url)
    await upgrade(db)
    storage = Storage(db, clock=clock, cipher=DataCipher(kid, {kid: key}))
    try:
        settings = make_settings(pg_url, database={"url": pg_url, "backup_dir": str(tmp_path)})
        await NightlyBackup(storage, settings, clock=clock).run_once()
    finally:
        await db.dispose()
    (dump,) = tmp_path.iterdir()
    assert dump.name == "bakong-console-20260115-100000.dump" and dump.read_bytes()[:5] == b"PGDMP"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("backup_keep = 0", "database.backup_keep: must be at least 1"),
        ('backup_at = "25:00"', "database.backup_at: must be a time of day as HH:MM"),
        ('backup_at = "3am"', "database.backup_at: must be a time of day as HH:MM"),
    ],
)
def test_backup_settings_are_checked(tmp_path: Path, line: str, words: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[database]\nbackup_dir = \"{tmp_path}\"\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=words):
        load_settings(path)


def test_backup_settings_default_to_off() -> None:
    settings = load_settings(None)
    assert (settings.database.backup_dir, settings.database.backup_keep, settings.database.backup_at) == ("", 7, "03:00")


async def test_a_backup_under_way_in_another_process_is_waited_for_not_doubled(
    sqlite_url: str, sqlite_storage: Storage, clock: ManualClock, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_url, database={"url": sqlite_url, "backup_dir": str(tmp_path)})
    due = "2026-01-14T20:00:00+00:00"
    async with sqlite_storage.transaction(events=False) as tx:  # a long pg_dump elsewhere outlived its lease
        await engine_state.set_state(tx, NIGHTLY_STATE, {"running_for": due, "started_at": tx.now.isoformat(), "token": "elsewhere"})
    worker = NightlyBackup(sqlite_storage, settings, clock=clock)
    assert await worker.run_once() == pytest.approx(NightlyBackup.RETRY_SECONDS)
    assert nightly_files(tmp_path) == []
    clock.advance(NightlyBackup.RETRY_SECONDS)  # it never finished: this one takes the night's backup
    assert await worker.run_once() > 3600
    assert len(nightly_files(tmp_path)) == 1
    async with sqlite_storage.read() as tx:
        state = await engine_state.get_state(tx, NIGHTLY_STATE)
    assert state is not None and state["done_for"] == due and "running_for" not in state
