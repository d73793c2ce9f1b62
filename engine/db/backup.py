"""Database copies as files: how a backup is written and how a backup file is put in place.

SQLite: a backup is read through SQLite's online backup API on a connection of its own (one
step, so one read transaction: in WAL mode a consistent snapshot of every transaction committed
before it began, while the engine keeps writing), written to a 0600 temp file in the target's
directory, made a single self-contained file (rollback journal, no ``-wal``), checked, fsynced and
renamed over the target. A restore stages the backup beside the live file the same way and swaps
it in with one atomic rename, after a hard link has kept the current file.

PostgreSQL: ``pg_dump``/``pg_restore`` from the database URL, the password passed in
``PGPASSWORD`` (never on a command line ``ps`` shows) and redacted from the command that is
printed. The custom format (``--format=custom``) is what ``pg_restore`` reads.

The use cases around these (the lease check, the data key check, the nightly schedule) are
``engine.services.backups``'.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import shutil
import sqlite3
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from engine.errors import InvalidInput, StorageError

__all__ = [
    "PgCommand",
    "SqliteBackupInfo",
    "inspect_sqlite_backup",
    "pg_command",
    "pg_archive_revision",
    "pg_archive_tables",
    "quiesce_sqlite",
    "remove_sqlite_files",
    "require_pg_archive",
    "run_pg",
    "sqlite_backup",
    "sqlite_database_file",
    "stage_sqlite_restore",
    "swap_in",
    "temp_beside",
    "write_private",
]

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: The first bytes of a pg_dump custom-format archive.
PG_ARCHIVE_MAGIC = b"PGDMP"
#: Tables whose presence says a file is this engine's database (not any SQLite file).
OUR_TABLES = frozenset({"alembic_version", "payments", "events", "leases", "audit_log"})

PG_CLIENT_HINT = "install the PostgreSQL client tools (Debian: apt install postgresql-client)"


def sqlite_database_file(url: str) -> Path | None:
    """The SQLite file a database URL names (None: PostgreSQL); an in-memory database is refused."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or "mode=memory" in database:
        raise StorageError("an in-memory SQLite database has no file to back up or restore")
    if database.startswith("file:"):  # a SQLite URI (uri=true): the path is before the query
        database = urllib.parse.unquote(database[5:].split("?", 1)[0])
    return Path(database).expanduser().absolute()


def _uri(path: Path, mode: str) -> str:
    return f"file:{urllib.parse.quote(str(path))}?mode={mode}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_beside(target: Path, label: str) -> Path:
    """A new empty 0600 file in ``target``'s directory (same file system: the rename is atomic)."""
    for _ in range(10):
        temp = target.with_name(f".{target.name}.{label}-{secrets.token_hex(4)}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StorageError(f"cannot write in {target.parent}: {exc.strerror}") from None
        os.close(fd)
        return temp
    raise StorageError(f"cannot create a temporary file in {target.parent}")  # pragma: no cover


def remove_sqlite_files(path: Path) -> None:
    """Delete a database file and whatever SQLite left beside it (a failed or abandoned copy)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()


def _commit_file(temp: Path, target: Path) -> None:
    """fsync ``temp``, rename it over ``target`` and fsync the directory: all or nothing."""
    os.chmod(temp, 0o600)
    _fsync_file(temp)
    os.replace(temp, target)
    _fsync_dir(target.parent)


def _copy_sqlite(source: sqlite3.Connection, temp: Path) -> None:
    """The whole of ``source`` into ``temp`` as one self-contained, checked file."""
    dest = sqlite3.connect(temp, isolation_level=None)
    try:
        # pages=-1: everything in one step, under one read transaction on the source, so a
        # writer committing meanwhile neither restarts the copy nor shows up half in it.
        source.backup(dest, pages=-1)
        # The copy carries the source's WAL flag; a backup is one file with nothing beside it.
        dest.execute("PRAGMA journal_mode=DELETE").fetchone()
        (verdict,) = dest.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise StorageError(f"the copy does not check out ({verdict})")
    finally:
        dest.close()


def sqlite_backup(source: Path, target: Path, *, busy_timeout: float = 10.0) -> int:
    """Copy the live database ``source`` to ``target`` (0600, atomic); returns its size in bytes.

    Blocking: run it in a thread (``asyncio.to_thread``); it holds no lock the engine waits for."""
    if not source.is_file():
        raise StorageError(f"{source}: no database file to back up")
    target = target.expanduser().absolute()
    if not target.parent.is_dir():
        raise InvalidInput(f"{target.parent}: no such directory")
    if target.exists() and not target.is_file():
        raise InvalidInput(f"{target}: not a file")
    if target.resolve() == source.resolve():
        raise InvalidInput(f"{target}: that is the database itself")
    temp = _temp_beside(target, "partial")
    try:
        try:
            # mode=rw: never create a database that is not there; the connection only reads.
            src = sqlite3.connect(_uri(source, "rw"), uri=True, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"{source}: cannot open the database: {exc}") from None
        try:
            src.execute("PRAGMA query_only=1")
            _copy_sqlite(src, temp)
        except sqlite3.Error as exc:
            raise StorageError(f"backup of {source} failed: {exc}") from None
        finally:
            src.close()
        _commit_file(temp, target)
    except BaseException:
        remove_sqlite_files(temp)
        raise
    return target.stat().st_size


@dataclass(frozen=True)
class SqliteBackupInfo:
    """What a backup file turned out to be."""

    path: Path
    revision: str | None
    tables: frozenset[str] = field(default_factory=frozenset)


def _first_bytes(path: Path, n: int) -> bytes:
    """The start of a backup file, which says what kind of file it is."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read it: {exc.strerror}") from None


def inspect_sqlite_backup(path: Path) -> SqliteBackupInfo:
    """Check ``path`` is a sound SQLite database written by this engine; refuse it otherwise."""
    header = _first_bytes(path, len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        kind = "a pg_dump archive (for PostgreSQL)" if header.startswith(PG_ARCHIVE_MAGIC) else "not a SQLite database"
        raise InvalidInput(f"{path}: {kind}")
    try:
        conn = sqlite3.connect(_uri(path, "ro"), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise InvalidInput(f"{path}: cannot open it: {exc}") from None
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        if [r[0] for r in rows] != ["ok"]:
            raise InvalidInput(f"{path}: damaged (integrity_check: {rows[0][0]})")
        tables = frozenset(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        if not OUR_TABLES <= tables:
            raise InvalidInput(f"{path}: a SQLite database, but not bakong-console's (no {sorted(OUR_TABLES - tables)[0]} table)")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error as exc:
        raise InvalidInput(f"{path}: cannot read it: {exc}") from None
    finally:
        conn.close()
    return SqliteBackupInfo(path, row[0] if row else None, tables)


def stage_sqlite_restore(backup: Path, target: Path) -> Path:
    """A copy of ``backup`` in ``target``'s directory (0600, rollback journal), ready to swap in."""
    temp = _temp_beside(target, "restore")
    try:
        src = sqlite3.connect(_uri(backup, "ro"), uri=True, isolation_level=None)
        try:
            _copy_sqlite(src, temp)
        finally:
            src.close()
    except sqlite3.Error as exc:
        remove_sqlite_files(temp)
        raise StorageError(f"cannot copy {backup}: {exc}") from None
    except BaseException:
        remove_sqlite_files(temp)
        raise
    return temp


def quiesce_sqlite(path: Path, *, timeout: float = 2.0) -> None:
    """Fold the live database's WAL into its file and leave it in rollback-journal mode.

    Leaving WAL mode needs the only connection to the file: when another process has it open
    (a console, a command), this fails and nothing is swapped. Afterwards no ``-wal`` is left
    that SQLite could replay into the file swapped in."""
    try:
        conn = sqlite3.connect(_uri(path, "rw"), uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open the database: {exc}") from None
    in_use = StorageError(f"{path} is open in another process (a console, a daemon or a command): close it and try again")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        (mode,) = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
        if str(mode).lower() != "delete":
            raise in_use
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise in_use from None
        raise StorageError(f"{path}: {exc}") from None
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        if path.with_name(path.name + suffix).exists():
            raise in_use


def swap_in(staged: Path, target: Path, keep_as: Path | None) -> None:
    """Put ``staged`` at ``target`` with one rename; the current file is kept at ``keep_as`` first.

    The current file is kept by a hard link (a copy where links are not allowed), so ``target``
    names a complete database at every instant: an opener never finds it missing."""
    if keep_as is not None and target.exists():
        try:
            os.link(target, keep_as)
        except OSError:
            shutil.copy2(target, keep_as)
        os.chmod(keep_as, 0o600)
    _commit_file(staged, target)


def write_private(temp: Path, target: Path) -> None:
    """Finish a file another program wrote to ``temp`` (pg_dump): 0600, fsync, atomic rename."""
    _commit_file(temp, target)


def temp_beside(target: Path, label: str) -> Path:
    """A new empty 0600 file beside ``target`` (for pg_dump to write into)."""
    if not target.parent.is_dir():
        raise InvalidInput(f"{target.parent}: no such directory")
    return _temp_beside(target, label)


# --- PostgreSQL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgCommand:
    """A PostgreSQL client command for a database URL: ``argv`` and ``env`` to run, ``display``
    to print (the password redacted)."""

    program: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    display: str


def pg_command(url: str, program: str, *args: str, positional: tuple[str, ...] = ()) -> PgCommand:
    """``program`` (pg_dump, pg_restore) pointed at the database ``url`` names, with ``args``
    and then ``positional`` (a file to restore)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise StorageError(f"{program} is for PostgreSQL; this database is {parsed.get_backend_name()}")
    argv: list[str] = [program]
    if parsed.host:
        argv += ["--host", parsed.host]
    if parsed.port:
        argv += ["--port", str(parsed.port)]
    if parsed.username:
        argv += ["--username", parsed.username]
    argv += ["--no-password", *args, "--dbname", parsed.database or "", *positional]
    env: dict[str, str] = {}
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    query = dict(parsed.query)
    sslmode = query.get("sslmode") or query.get("ssl")
    if isinstance(sslmode, str) and sslmode:
        env["PGSSLMODE"] = {"true": "require", "false": "disable"}.get(sslmode.lower(), sslmode)
    shown = [f"{k}=***" if k == "PGPASSWORD" else f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    return PgCommand(program, tuple(argv), env, " ".join([*shown, shlex.join(argv)]))


async def run_pg(command: PgCommand, *, timeout: float | None = None) -> str:
    """Run a PostgreSQL client command; its standard output, or one ``StorageError`` line."""
    path = shutil.which(command.program)
    if path is None:
        raise StorageError(f"{command.program} is not installed here: {PG_CLIENT_HINT}, or run the command above where it is")
    env = {**os.environ, **command.env}
    process = await asyncio.create_subprocess_exec(
        path, *command.argv[1:], stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
        detail = lines[0] if lines else f"exit status {process.returncode}"
        raise StorageError(f"{command.program} failed: {detail.removeprefix(command.program + ': ')}")
    return out.decode(errors="replace")


def pg_archive_tables(listing: str) -> frozenset[str]:
    """The tables whose data a ``pg_restore --list`` listing holds."""
    tables = set()
    for line in listing.splitlines():
        if line.startswith(";"):
            continue
        parts = line.split()
        # "215; 0 16390 TABLE DATA public payments postgres"
        for at in range(len(parts) - 3):
            if parts[at] == "TABLE" and parts[at + 1] == "DATA":
                tables.add(parts[at + 3])
                break
    return frozenset(tables)


def pg_archive_revision(script: str) -> str | None:
    """The schema revision in ``pg_restore --data-only --table=alembic_version`` output."""
    lines = script.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("COPY ") and "alembic_version" in line:
            first = lines[i + 1] if i + 1 < len(lines) else "\\."
            return None if first == "\\." else first.split("\t")[0].strip()
    return None


def require_pg_archive(path: Path) -> None:
    """Refuse a file that is not a pg_dump custom-format archive."""
    magic = _first_bytes(path, len(PG_ARCHIVE_MAGIC))
    if magic != PG_ARCHIVE_MAGIC:
        what = "a SQLite database (for a SQLite installation)" if magic == SQLITE_HEADER[:5] else "not a pg_dump custom-format archive"
        raise InvalidInput(f"{path}: {what}; `bakong-console db backup` writes one for PostgreSQL")
