"""Backing the database up and putting a backup back: ``bakong-console db backup|restore`` and
the nightly backup worker share these.

A backup is taken while the engine runs (SQLite's online backup API; ``pg_dump``'s own
snapshot) and written 0600, atomically. A restore is refused while any instance holds a live
lease on the database (a daemon or a console running its workers); it checks the file is this
engine's database, sound and at a schema this version knows, migrates a copy that is behind,
clears the leases the backup carried (their holders are gone), records the restore in the audit
log, and only then swaps it in, keeping the current database beside it
(``<file>.before-restore-<time>``; on PostgreSQL a ``pg_dump`` of it). On SQLite the data key
must open the backup's secrets before anything is swapped, so a restore never leaves the
installation unable to read its own webhook secrets and token.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.engine import make_url

from engine.clock import PHNOM_PENH, Clock, utc
from engine.config import Settings
from engine.crypto import DataCipher, key_file_in_use, load_data_cipher
from engine.db import backup as files
from engine.db import journal
from engine.db.database import Database
from engine.db.migrate import current_revision, head_revision, is_known_revision, upgrade
from engine.db.models import LeaseRow
from engine.db.storage import Storage
from engine.errors import Conflict, DataKeyError, InvalidInput
from engine.records import Actor
from engine.services.checks import check_stored_secrets

__all__ = [
    "BACKUP_NAME",
    "BackupDone",
    "RestoreDone",
    "backup_database",
    "backup_file_name",
    "live_leases",
    "pg_dump_display",
    "prune_backups",
    "restore_database",
]

#: Names of the backups the nightly worker writes (and the only files it ever prunes).
BACKUP_NAME = re.compile(r"^bakong-console-\d{8}-\d{6}\.(db|dump)$")


def backup_file_name(when: datetime, *, postgres: bool) -> str:
    """``bakong-console-20260115-030000.db`` (``.dump`` for PostgreSQL), Phnom Penh time."""
    local = utc(when).astimezone(PHNOM_PENH)
    return f"bakong-console-{local:%Y%m%d-%H%M%S}.{'dump' if postgres else 'db'}"


def _stamp(when: datetime) -> str:
    return f"{utc(when).astimezone(PHNOM_PENH):%Y%m%d-%H%M%S}"


@dataclass(frozen=True)
class BackupDone:
    path: Path
    bytes: int
    database: str


@dataclass(frozen=True)
class RestoreDone:
    path: Path
    database: str
    #: where the database that was replaced is kept (None: there was none)
    kept: Path | None
    #: the backup's schema revision, and the one it is at now (migrated when it was behind)
    revision_before: str | None
    revision: str | None
    leases_cleared: int
    #: stored secrets the data key was tried on
    secrets_tried: int
    #: PostgreSQL only (SQLite refuses instead): why the data key does not open what was restored
    key_problem: str | None = None


def _describe(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:{parsed.database}"
    return f"postgresql://{parsed.host or ''}{':' + str(parsed.port) if parsed.port else ''}/{parsed.database}"


def pg_dump_display(url: str, target: Path) -> str:
    """The pg_dump command a PostgreSQL backup to ``target`` runs, the password redacted."""
    return files.pg_command(url, "pg_dump", "--format=custom", "--file", str(target)).display


async def backup_database(
    url: str, target: Path, *, busy_timeout: float = 10.0, replace: bool = False, timeout: float | None = None
) -> BackupDone:
    """Write a consistent copy of the database at ``url`` to ``target`` (0600, atomically)."""
    target = target.expanduser().absolute()
    if target.is_dir():
        raise InvalidInput(f"{target}: a directory; name the backup file")
    if target.exists() and not replace:
        raise InvalidInput(f"{target} exists: choose another name, or pass --force to replace it")
    sqlite = files.sqlite_database_file(url)
    if sqlite is not None:
        size = await asyncio.to_thread(files.sqlite_backup, sqlite, target, busy_timeout=busy_timeout)
        return BackupDone(target, size, _describe(url))
    # pg_dump writes a temp file beside the target, renamed over it once complete.
    temp = files.temp_beside(target, "partial")
    try:
        await files.run_pg(files.pg_command(url, "pg_dump", "--format=custom", "--file", str(temp)), timeout=timeout)
        files.write_private(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return BackupDone(target, target.stat().st_size, _describe(url))


def prune_backups(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` nightly backups in ``directory``; the deleted ones.

    Only files named as the worker names them are considered: nothing else there is touched."""
    ours = sorted(p for p in directory.iterdir() if BACKUP_NAME.match(p.name) and p.is_file())
    doomed = ours[: max(0, len(ours) - keep)]
    for path in doomed:
        path.unlink()
    return doomed


# --- restore ----------------------------------------------------------------------------------------


async def live_leases(db: Database, now: datetime) -> list[LeaseRow]:
    """The leases some running instance holds on ``db`` (an unmigrated database has none)."""
    if await current_revision(db) is None:
        return []
    async with db.read() as session:
        rows = (await session.scalars(select(LeaseRow).where(LeaseRow.expires_at > now).order_by(LeaseRow.name))).all()
    return list(rows)


async def _refuse_while_running(url: str, settings: Settings, now: datetime) -> None:
    sqlite = files.sqlite_database_file(url)
    if sqlite is not None and not sqlite.exists():
        return
    db = Database(url, busy_timeout=settings.database.sqlite_busy_timeout)
    try:
        held = await live_leases(db, now)
    finally:
        await db.dispose()
    if held:
        holders = sorted({lease.holder for lease in held})
        until = max(utc(lease.expires_at) for lease in held)
        raise Conflict(
            f"refused: {', '.join(lease.name for lease in held)} held by {', '.join(holders)} (renewed until "
            f"{until:%H:%M:%S} UTC): stop every daemon and console on this database (systemctl stop bakong-console), then restore"
        )


def _cipher(settings: Settings) -> DataCipher:
    """The configured data key; never a new one (a fresh key cannot open a backup's secrets)."""
    path = key_file_in_use(settings)
    if path is not None and not path.exists():
        raise DataKeyError(f"{path}: no data key file: put back the key file kept with this backup first")
    return load_data_cipher(settings)


async def _prepare(storage: Storage, *, actor: Actor, source: Path) -> tuple[str | None, str | None, int]:
    """Bring a restored database to head, drop its stale leases, audit the restore:
    (revision before, revision after, leases cleared)."""
    db = storage.db
    before = await current_revision(db)
    after = before
    if before != head_revision():
        after = await upgrade(db)
    async with storage.transaction(events=False) as tx:
        cleared = (await tx.session.execute(delete(LeaseRow).execution_options(synchronize_session=False))).rowcount
        await journal.audit(
            tx, actor, "database.restore", "database", db.describe(),
            after={"file": str(source), "revision": after, "migrated_from": before if before != after else None},
            reason=f"restored from {source}",
        )  # fmt: skip
    return before, after, int(cleared or 0)


def _key_problem(checked_problems: tuple[str, ...]) -> str:
    return (
        f"the data key does not open the backup's secrets ({checked_problems[0]}): configure the key the backup "
        "was written with (security.data_key_file, or the old one in security.previous_data_keys)"
    )


async def restore_database(
    settings: Settings, source: Path, *, clock: Clock, actor: Actor, on_command: Callable[[str], None] | None = None
) -> RestoreDone:
    """Put the backup ``source`` in place of the configured database (see the module docstring)."""
    source = source.expanduser().absolute()
    url = settings.database_url
    now = clock.now()
    if files.sqlite_database_file(url) is not None:
        info = await asyncio.to_thread(files.inspect_sqlite_backup, source)
    else:
        info = None
        files.require_pg_archive(source)
    await _refuse_while_running(url, settings, now)
    if info is not None:
        return await _restore_sqlite(settings, info, clock=clock, actor=actor)
    return await _restore_postgres(settings, source, clock=clock, actor=actor, on_command=on_command)


def _unused(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... if a restore in the same second kept one there already."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}" if path.suffix == ".dump" else f"{path.name}-{n}")
    return candidate


def _check_revision(revision: str | None, source: Path) -> None:
    if revision is None:
        raise InvalidInput(f"{source}: its schema is empty (never migrated): not a backup of a working database")
    if not is_known_revision(revision):
        raise InvalidInput(f"{source}: written by a newer bakong-console (schema {revision}): restore it with that version")


async def _restore_sqlite(settings: Settings, info: files.SqliteBackupInfo, *, clock: Clock, actor: Actor) -> RestoreDone:
    url = settings.database_url
    target = files.sqlite_database_file(url)
    assert target is not None
    _check_revision(info.revision, info.path)
    cipher = _cipher(settings)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staged = await asyncio.to_thread(files.stage_sqlite_restore, info.path, target)
    try:
        db = Database(f"sqlite+aiosqlite:///{staged}", busy_timeout=settings.database.sqlite_busy_timeout)
        storage = Storage(db, clock=clock, cipher=cipher)
        try:
            before, after, cleared = await _prepare(storage, actor=actor, source=info.path)
            checked = await check_stored_secrets(storage)
            if checked.problems:
                raise DataKeyError(_key_problem(checked.problems))
        finally:
            await db.dispose()
        # the engine left the staged copy in WAL mode: one file again before it is renamed
        await asyncio.to_thread(files.quiesce_sqlite, staged)
        kept = None
        if target.exists():
            await asyncio.to_thread(files.quiesce_sqlite, target, timeout=settings.database.sqlite_busy_timeout)
            kept = _unused(target.with_name(f"{target.name}.before-restore-{_stamp(clock.now())}"))
        files.swap_in(staged, target, kept)
    except BaseException:
        files.remove_sqlite_files(staged)
        raise
    return RestoreDone(info.path, _describe(url), kept, before, after, cleared, checked.tried)


async def _restore_postgres(
    settings: Settings, source: Path, *, clock: Clock, actor: Actor, on_command: Callable[[str], None] | None
) -> RestoreDone:
    url = settings.database_url
    listing = await files.run_pg(files.PgCommand("pg_restore", ("pg_restore", "--list", str(source)), {}, ""))
    tables = files.pg_archive_tables(listing)
    if not files.OUR_TABLES <= tables:
        raise InvalidInput(f"{source}: a pg_dump archive, but not of bakong-console's database (no {sorted(files.OUR_TABLES - tables)[0]} table)")
    # The archive's schema revision, read from it without connecting anywhere.
    script = await files.run_pg(
        files.PgCommand("pg_restore", ("pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(source)), {}, "")
    )
    _check_revision(files.pg_archive_revision(script), source)
    cipher = _cipher(settings)
    name = make_url(url).database or "database"
    kept = _unused(source.parent / f"{name}.before-restore-{_stamp(clock.now())}.dump")
    if on_command is not None:
        on_command(pg_dump_display(url, kept))
    await backup_database(url, kept, busy_timeout=settings.database.sqlite_busy_timeout)
    restore = files.pg_command(
        url, "pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
        positional=(str(source),),
    )  # fmt: skip
    if on_command is not None:
        on_command(restore.display)
    await files.run_pg(restore)
    db = Database(url, busy_timeout=settings.database.sqlite_busy_timeout)
    storage = Storage(db, clock=clock, cipher=cipher)
    try:
        before, after, cleared = await _prepare(storage, actor=actor, source=source)
        checked = await check_stored_secrets(storage)
    finally:
        await db.dispose()
    problem = _key_problem(checked.problems) if checked.problems else None
    return RestoreDone(source, _describe(url), kept, before, after, cleared, checked.tried, problem)
