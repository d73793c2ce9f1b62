"""Backups and restores: a backup taken while a writer inserts is sound and holds everything
committed before it began; a restore puts it back (and the restored installation passes doctor),
but is refused while an instance holds a lease, while the file is open elsewhere, and for a
file that is not a sound backup of this engine that the data key opens."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.clock import SystemClock
from engine.config import Settings
from engine.db.backup import pg_command, sqlite_database_file
from engine.db.migrate import head_revision
from engine.errors import Conflict, DataKeyError, InvalidInput, StorageError
from engine.records import Actor, ActorType
from engine.services.backups import backup_database, restore_database
from engine.services.doctor import Doctor
from tests.support.engine import open_engine
from tests.support.settings import make_settings

runner = CliRunner()
CASHIER = Actor(ActorType.CASHIER, "sokha")
OPERATOR = Actor(ActorType.CLI, "dara")
OTHER_KEY = "other:" + "WllZWVlZWVlZWVlZWVlZWVlZWVlZWVlZWVlZWVlZWVk="


def rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- backup -------------------------------------------------------------------------------------------


async def test_a_backup_taken_while_a_writer_inserts_holds_every_row_committed_before_it_began(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_url)
    database = sqlite_database_file(sqlite_url)
    assert database is not None
    clock = SystemClock()
    async with open_engine(settings, clock, run_workers=False) as engine:  # type: ignore[arg-type]
        # Ballast, so that copying takes long enough for the writer to commit meanwhile.
        conn = sqlite3.connect(database)
        conn.execute("CREATE TABLE test_ballast (b BLOB)")
        conn.executemany("INSERT INTO test_ballast VALUES (zeroblob(1048576))", [()] * 64)
        conn.commit()
        conn.close()
        committed: list[str] = []
        stop = asyncio.Event()

        async def writer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                created = await engine.payments.initiate(1000 + n, "KHR", actor=CASHIER, reference=f"order-{n}")
                committed.append(created.payment.id)
                await asyncio.sleep(0)

        task = asyncio.create_task(writer())
        while len(committed) < 20:
            await asyncio.sleep(0.001)
        before = list(committed)
        target = tmp_path / "backups" / "shop.db"
        target.parent.mkdir()
        done = await backup_database(sqlite_url, target)
        during = len(committed) - len(before)
        print(f"backup of {done.bytes:,} bytes; {during} payments committed while it ran")
        stop.set()
        await task

    assert during > 0, "the writer committed nothing while the backup ran: the test proved nothing"
    assert done.path == target and done.bytes == target.stat().st_size
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["shop.db"]  # no temp file, no -wal
    assert rows(target, "PRAGMA integrity_check") == [("ok",)]
    assert rows(target, "PRAGMA journal_mode") == [("delete",)]
    saved = {r[0] for r in rows(target, "SELECT id FROM payments")}
    assert set(before) <= saved
    assert saved <= set(committed)
    # a snapshot, not a smear: the event log in the copy has no hole
    sequences = [r[0] for r in rows(target, "SELECT sequence FROM events ORDER BY sequence")]
    assert sequences == list(range(1, len(sequences) + 1))
    # and every payment in it came with its own event (each was one transaction)
    assert rows(target, "SELECT COUNT(*) FROM events WHERE type = 'payment.created'") == [(len(saved),)]


def test_backup_refuses_to_overwrite_without_force_and_names_a_missing_database(tmp_path: Path) -> None:
    env = {"BAKONG_CONSOLE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'nowhere.db'}"}
    missing = runner.invoke(app, ["db", "backup", str(tmp_path / "b.db")], env=env)
    assert missing.exit_code != 0 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere.db'}: no database file to back up"]
    assert not (tmp_path / "b.db").exists() and not (tmp_path / "nowhere.db").exists()

    env = {"BAKONG_CONSOLE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"}
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    first = runner.invoke(app, ["db", "backup", str(tmp_path / "b.db")], env=env)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"backed up sqlite:{tmp_path / 'shop.db'} to {tmp_path / 'b.db'} (")
    again = runner.invoke(app, ["db", "backup", str(tmp_path / "b.db")], env=env)
    assert again.exit_code == 1 and "pass --force" in again.stderr
    forced = runner.invoke(app, ["db", "backup", str(tmp_path / "b.db"), "--force"], env=env)
    assert forced.exit_code == 0, forced.output


# --- restore (SQLite) ---------------------------------------------------------------------------------


def _private(home: Path) -> None:
    """Doctor wants the data directory 0700 and its files 0600, whatever the test's umask made them."""
    data = home / "data" / "bakong-console"
    os.chmod(data, 0o700)
    for path in data.iterdir():
        os.chmod(path, 0o600)


def test_a_restored_database_passes_doctor_and_holds_what_the_backup_held(isolated_home: Path, tmp_path: Path) -> None:
    # The embedded installation: a webhook endpoint (a secret sealed with the data key), a payment.
    added = runner.invoke(app, ["webhooks", "add", "https://backend.example/hooks"])
    assert added.exit_code == 0, added.output
    paid = runner.invoke(app, ["pay", "--amount", "5000", "--currency", "KHR", "--reference", "before-backup"])
    assert paid.exit_code == 0, paid.output
    backup = tmp_path / "nightly.db"
    assert runner.invoke(app, ["db", "backup", str(backup)]).exit_code == 0
    later = runner.invoke(app, ["pay", "--amount", "7000", "--currency", "KHR", "--reference", "after-backup"])
    assert later.exit_code == 0, later.output
    database = isolated_home / "data" / "bakong-console" / "bakong-console.db"

    result = runner.invoke(app, ["db", "restore", str(backup)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    kept = [p for p in database.parent.iterdir() if ".before-restore-" in p.name]
    assert len(kept) == 1 and lines[0] == f"kept the database it replaces as {kept[0]}"
    # the replaced database, whole (its WAL folded in): both payments
    assert sorted(r[0] for r in rows(kept[0], "SELECT reference FROM payments")) == ["after-backup", "before-backup"]
    assert rows(kept[0], "PRAGMA integrity_check") == [("ok",)]
    assert f"schema at {head_revision()}" in lines[1] and "opens its stored secrets" in lines[1]
    assert [r[0] for r in rows(database, "SELECT reference FROM payments")] == ["before-backup"]
    assert rows(database, "SELECT COUNT(*) FROM webhook_endpoints") == [(1,)]
    assert rows(database, "SELECT COUNT(*) FROM leases") == [(0,)]
    assert rows(database, "SELECT actor, action, reason FROM audit_log WHERE action = 'database.restore'") == [
        (getpass.getuser(), "database.restore", f"restored from {backup}")
    ]
    assert not database.with_name(database.name + "-journal").exists()

    _private(isolated_home)
    report = asyncio.run(Doctor().run())
    assert {r.name: r.state.value for r in report.results} == {
        "config": "ok", "database": "ok", "data key": "ok", "token": "ok", "bakong": "ok", "clock": "ok",
        "disk": "ok", "sqlite files": "ok", "webhooks": "ok", "leases": "ok",
    }, report  # fmt: skip
    # one secret per encrypted column: the endpoint's, and the sandbox's in the secrets table
    assert "(2 tried)" in report.result("data key").detail
    assert runner.invoke(app, ["doctor"]).exit_code == 0


async def test_restore_is_refused_while_an_instance_holds_a_lease(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url)
    clock = SystemClock()
    backup = tmp_path / "b.db"
    async with open_engine(settings, clock, run_workers=False) as engine:  # type: ignore[arg-type]
        await engine.payments.initiate(1000, "KHR", actor=CASHIER)
    await backup_database(sqlite_url, backup)
    database = sqlite_database_file(sqlite_url)
    assert database is not None
    async with open_engine(settings, clock, holder="shop-daemon:4242:abc", run_workers=True) as engine:  # type: ignore[arg-type]
        for _ in range(500):
            if len(await engine.leases()) == len(engine.runners):
                break
            await asyncio.sleep(0.01)
        before = digest(database)
        with pytest.raises(Conflict) as refused:
            await restore_database(settings, backup, clock=clock, actor=OPERATOR)
        assert "held by shop-daemon:4242:abc" in refused.value.message
        assert "stop every daemon and console" in refused.value.message
        assert digest(database) == before
        assert not [p for p in database.parent.iterdir() if ".before-restore-" in p.name or p.name.startswith(".")]
    # stopped: its leases are released, and the restore goes through
    done = await restore_database(settings, backup, clock=clock, actor=OPERATOR)
    assert done.kept is not None and done.kept.exists()


async def test_restore_is_refused_while_another_connection_has_the_database_open(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url)
    async with open_engine(settings, SystemClock(), run_workers=False):  # type: ignore[arg-type]
        pass
    backup = tmp_path / "b.db"
    await backup_database(sqlite_url, backup)
    database = sqlite_database_file(sqlite_url)
    assert database is not None
    holder = sqlite3.connect(database)  # a command in another process, reading
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("SELECT COUNT(*) FROM payments").fetchall()
    try:
        with pytest.raises(StorageError, match="open in another process"):
            await restore_database(replace(settings, database=replace(settings.database, sqlite_busy_timeout=0.2)), backup,
                                   clock=SystemClock(), actor=OPERATOR)  # fmt: skip
    finally:
        holder.close()
    assert sorted(p.name for p in database.parent.iterdir() if p.name.startswith(".")) == []


def _settings_with_key(settings: Settings, key: str) -> Settings:
    return replace(settings, security=replace(settings.security, data_key=key))


async def test_restore_refuses_files_that_are_not_a_sound_backup_of_this_engine(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url)
    async with open_engine(settings, SystemClock(), run_workers=False) as engine:  # type: ignore[arg-type]
        await engine.webhooks.add_endpoint("https://backend.example/hooks", actor=OPERATOR)
    database = sqlite_database_file(sqlite_url)
    assert database is not None
    good = tmp_path / "good.db"
    await backup_database(sqlite_url, good)
    before = digest(database)

    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    newer = tmp_path / "newer.db"
    newer.write_bytes(good.read_bytes())
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE alembic_version SET version_num = 'ffff_from_the_future'")
    conn.commit()
    conn.close()
    damaged = tmp_path / "damaged.db"
    data = bytearray(good.read_bytes())
    page = 4096
    data[page * 3 : page * 3 + 512] = b"\xff" * 512  # a b-tree page torn in half
    damaged.write_bytes(bytes(data))

    cases = {
        text: (InvalidInput, "not a SQLite database"),
        foreign: (InvalidInput, "not bakong-console's"),
        newer: (InvalidInput, "written by a newer bakong-console (schema ffff_from_the_future)"),
        damaged: (InvalidInput, "damaged"),
        tmp_path / "absent.db": (InvalidInput, "no such file"),
    }
    for path, (error, words) in cases.items():
        with pytest.raises(error) as refused:
            await restore_database(settings, path, clock=SystemClock(), actor=OPERATOR)
        assert words in refused.value.message, (path, refused.value.message)
    # the key this installation has does not open the backup's webhook secret
    with pytest.raises(DataKeyError, match="does not open the backup's secrets"):
        await restore_database(_settings_with_key(settings, OTHER_KEY), good, clock=SystemClock(), actor=OPERATOR)
    # nothing was swapped, kept or left half-made
    assert digest(database) == before
    assert [p.name for p in database.parent.iterdir() if p.name.startswith(".") or ".before-restore-" in p.name] == []


def test_restore_on_the_command_line_is_one_line_when_refused(tmp_path: Path) -> None:
    env = {"BAKONG_CONSOLE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"}
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"PGDMP" + b"\0" * 100)
    result = runner.invoke(app, ["db", "restore", str(bogus)], env=env)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"error: {bogus}: a pg_dump archive (for PostgreSQL)"]


# --- PostgreSQL ---------------------------------------------------------------------------------------


def test_the_pg_dump_command_keeps_the_password_off_the_command_line() -> None:
    command = pg_command("postgresql+asyncpg://shop:s3cr%40t@db.internal:6432/bakong?ssl=require", "pg_dump", "--format=custom")
    assert command.argv == (
        "pg_dump", "--host", "db.internal", "--port", "6432", "--username", "shop", "--no-password", "--format=custom",
        "--dbname", "bakong",
    )  # fmt: skip
    assert command.env == {"PGPASSWORD": "s3cr@t", "PGSSLMODE": "require"}
    assert "s3cr" not in command.display and command.display.startswith("PGPASSWORD=*** PGSSLMODE=require pg_dump ")


def test_without_pg_dump_the_command_is_printed_and_what_to_install_is_said(tmp_path: Path) -> None:
    env = {"BAKONG_CONSOLE_DATABASE_URL": "postgresql+asyncpg://shop:hunter2@127.0.0.1:5432/bakong", "PATH": str(tmp_path)}
    result = runner.invoke(app, ["db", "backup", str(tmp_path / "b.dump")], env=env)
    assert result.exit_code == 1
    assert result.stdout.strip() == (
        f"running: PGPASSWORD=*** pg_dump --host 127.0.0.1 --port 5432 --username shop --no-password --format=custom "
        f"--file {tmp_path / 'b.dump'} --dbname bakong"
    )
    assert "hunter2" not in result.output
    assert result.stderr.strip().splitlines() == [
        "error: pg_dump is not installed here: install the PostgreSQL client tools (Debian: apt install postgresql-client), "
        "or run the command above where it is"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
async def test_postgres_backup_and_restore_round_trip(pg_url: str, tmp_path: Path) -> None:
    settings = make_settings(pg_url)
    clock = SystemClock()
    async with open_engine(settings, clock, run_workers=False) as engine:  # type: ignore[arg-type]
        first = await engine.payments.initiate(1000, "KHR", actor=CASHIER, reference="before-backup")
        await engine.webhooks.add_endpoint("https://backend.example/hooks", actor=OPERATOR)
    backup = tmp_path / "shop.dump"
    done = await backup_database(pg_url, backup)
    assert done.bytes > 0 and backup.read_bytes()[:5] == b"PGDMP"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    async with open_engine(settings, clock, run_workers=True, holder="pg-daemon:1:x") as engine:  # type: ignore[arg-type]
        await engine.payments.initiate(2000, "KHR", actor=CASHIER, reference="after-backup")
        for _ in range(500):
            if await engine.leases():
                break
            await asyncio.sleep(0.01)
        with pytest.raises(Conflict):
            await restore_database(settings, backup, clock=clock, actor=OPERATOR)
    shown: list[str] = []
    restored = await restore_database(settings, backup, clock=clock, actor=OPERATOR, on_command=shown.append)
    assert restored.kept is not None and restored.kept.read_bytes()[:5] == b"PGDMP"
    assert [c.split()[0] for c in shown] == ["pg_dump", "pg_restore"]
    assert restored.revision == head_revision() and restored.key_problem is None and restored.secrets_tried >= 1
    async with open_engine(settings, clock, run_workers=False) as engine:  # type: ignore[arg-type]
        async with engine.storage.read() as tx:
            refs = (await tx.session.execute(text("SELECT reference FROM payments ORDER BY created_at"))).scalars().all()
            leases = (await tx.session.execute(text("SELECT COUNT(*) FROM leases"))).scalar_one()
            audits = (await tx.session.execute(text("SELECT COUNT(*) FROM audit_log WHERE action = 'database.restore'"))).scalar_one()
    assert refs == ["before-backup"] and first.payment.reference == "before-backup"
    assert leases == 0 and audits == 1
    report = await Doctor(environ={"BAKONG_CONSOLE_DATABASE_URL": pg_url, "BAKONG_CONSOLE_DATA_KEY": settings.security.data_key}).run()
    assert not report.failed, report
