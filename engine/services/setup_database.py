"""Setup's database answer: the URL it means, a PostgreSQL database tested on the spot, and the data key.

A PostgreSQL URL is connected to while setup runs (``probe_database``); a database that already
holds secrets must be given the key they were sealed with (``data_key_problem``); an empty one is
migrated when setup saves (``prepare_database``). The embedded SQLite file is created at the first
start instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from engine.clock import Clock
from engine.config import Settings, data_dir
from engine.crypto import generate_key_spec, load_data_cipher, parse_key_spec
from engine.db.database import Database
from engine.db.migrate import current_revision, head_revision, upgrade
from engine.db.storage import Storage
from engine.errors import DataKeyError, StorageError
from engine.services.checks import check_stored_secrets
from engine.services.setup_fields import FieldCheck

__all__ = [
    "DATABASE_TIMEOUT_SECONDS",
    "DatabaseProbe",
    "check_data_key_file",
    "check_database_answer",
    "data_key_problem",
    "database_url",
    "embedded_database_file",
    "prepare_database",
    "probe_database",
]

#: How long a PostgreSQL URL may take to answer before setup calls it unreachable.
DATABASE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class DatabaseProbe:
    """What a database answer turned out to be."""

    url: str  # what goes in database.url ("" for the embedded file)
    describe: str
    revision: str | None = None
    reachable: bool = True

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")


def embedded_database_file() -> Path:
    """Where the embedded SQLite database lives."""
    return data_dir() / "bakong-console.db"


def database_url(value: str) -> str:
    """``sqlite`` (the embedded file) -> ""; other forms -> the driver URL the engine uses."""
    text = value.strip()
    if text.lower() in ("", "sqlite", "embedded"):
        return ""
    for prefix, driver in (("postgres://", "postgresql+asyncpg://"), ("postgresql://", "postgresql+asyncpg://"),
                           ("sqlite:///", "sqlite+aiosqlite:///")):  # fmt: skip
        if text.startswith(prefix):
            return driver + text[len(prefix) :]
    return text


def check_database_answer(value: str) -> FieldCheck:
    """The rules of a database answer (no connection yet): the URL the engine will use, or why not."""
    url = database_url(value)
    if not url:
        path = embedded_database_file()
        return FieldCheck("sqlite", note=f"the embedded SQLite file {path}")
    if not (url.startswith("postgresql+asyncpg://") or url.startswith("sqlite+aiosqlite:///")):
        return FieldCheck(value, "write sqlite, or a postgresql://user:password@host:5432/database URL")
    try:
        parsed = make_url(url)
    except Exception:  # SQLAlchemy's ArgumentError and friends: the text is no URL
        return FieldCheck(value, "not a database URL")
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return FieldCheck(value, "name the SQLite file: sqlite:////var/lib/bakong/bakong.db")
        return FieldCheck(url, note=f"SQLite file {parsed.database}")
    if not parsed.database:
        return FieldCheck(value, "name the database: postgresql://user@host:5432/DATABASE")
    return FieldCheck(url)


def check_data_key_file(value: str) -> FieldCheck:
    """A data key file answer: an existing file must hold a key; a missing one is made on save."""
    if not value:
        return FieldCheck(value, "name the file that keeps the data key")
    path = Path(value).expanduser()
    if path.is_dir():
        return FieldCheck(value, f"{path} is a directory")
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            first = next(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
            kid, _ = parse_key_spec(first, origin=str(path))
        except StopIteration:
            return FieldCheck(value, f"{path} holds no key")
        except (OSError, UnicodeDecodeError) as exc:
            return FieldCheck(value, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        except DataKeyError as exc:
            return FieldCheck(value, exc.message)
        return FieldCheck(str(path), note=f"keep current: key {kid} in {path}")
    return FieldCheck(str(path), note=f"a new key is made in {path} (0600) when setup saves")


async def probe_database(value: str) -> DatabaseProbe:
    """Connect to the database now (PostgreSQL) and read its schema revision."""
    url = database_url(value)
    if not url:
        path = embedded_database_file()
        return DatabaseProbe("", f"sqlite:{path}")
    db = Database(url)
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
            await db.ping()
            revision = await current_revision(db)
    except TimeoutError:
        raise StorageError(f"database {db.describe()}: no answer within {DATABASE_TIMEOUT_SECONDS:g} s") from None
    finally:
        await db.dispose()
    probe = DatabaseProbe(url, db.describe(), revision)
    return probe


async def data_key_problem(probe: DatabaseProbe, settings: Settings, clock: Clock) -> str | None:
    """Why ``settings``' data key cannot be used on the probed database, or None.

    A database that already holds secrets must get the key they were sealed with.
    """
    if probe.revision != head_revision():
        return None
    url = probe.url
    key_file = Path(settings.security.data_key_file).expanduser() if settings.security.data_key_file else None
    if key_file is not None and not key_file.exists():
        cipher_settings = dataclasses.replace(settings, security=dataclasses.replace(settings.security, data_key=generate_key_spec("new")))
    else:
        cipher_settings = settings
    try:
        cipher = load_data_cipher(cipher_settings)
    except DataKeyError as exc:
        return exc.message
    db = Database(url)
    try:
        checked = await check_stored_secrets(Storage(db, clock=clock, cipher=cipher))
    except StorageError as exc:
        return exc.message
    finally:
        await db.dispose()
    if checked.problems:
        if key_file is not None and not key_file.exists():
            return f"{probe.describe} already holds secrets sealed with another key: name its data key file"
        return f"this key does not open the secrets in {probe.describe}: {checked.problems[0]}"
    return None


async def prepare_database(settings: Settings) -> str:
    """An empty PostgreSQL database migrated; what setup says about the database."""
    if settings.uses_embedded_database:
        return "the embedded SQLite file: created and migrated at the first start"
    db = Database(settings.database.url)
    try:
        revision = await current_revision(db)
        head = head_revision()
        if revision is None:
            await upgrade(db)
            return f"{db.describe()}: migrated to {head}"
        if revision != head:
            return f"{db.describe()} is at {revision}: run `bakong-console db upgrade` before starting"
        return f"{db.describe()}: schema up to date"
    finally:
        await db.dispose()
