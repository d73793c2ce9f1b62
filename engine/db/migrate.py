"""Schema migrations: find the Alembic scripts (checkout or wheel) and apply them.

The embedded SQLite default is created and migrated on first start; any other database must be
upgraded explicitly (``bakong-console db upgrade``) and the engine refuses to run on a schema
that is behind, so two versions never write one database differently.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from engine.db.database import Database, storage_errors
from engine.errors import StorageError

__all__ = ["current_revision", "ensure_schema", "head_revision", "is_known_revision", "script_location", "upgrade"]


def script_location() -> Path:
    """The migrations directory: ``engine/_migrations`` in a wheel, ``migrations/`` in a checkout."""
    engine_dir = Path(__file__).resolve().parent.parent
    for candidate in (engine_dir / "_migrations", engine_dir.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StorageError("the migration scripts are missing from this installation")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the project always ships migrations
        raise StorageError("no migrations found")
    return head


def is_known_revision(revision: str) -> bool:
    """Whether this installation's migrations include ``revision`` (a database written by a newer
    version is at a revision this one has never heard of)."""
    return any(script.revision == revision for script in ScriptDirectory.from_config(_config()).walk_revisions())


def _upgrade_sync(connection: Connection, revision: str) -> None:
    cfg = _config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _current_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(db: Database, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; returns the revision the database is at afterwards."""
    async with storage_errors(db), db.engine.begin() as conn:
        await conn.run_sync(_upgrade_sync, revision)
    return await current_revision(db)


async def current_revision(db: Database) -> str | None:
    async with storage_errors(db), db.engine.connect() as conn:
        return await conn.run_sync(_current_sync)


async def ensure_schema(db: Database, *, auto_upgrade: bool) -> str:
    """Make sure the schema is at head: migrate if allowed, else fail with what to run."""
    current = await current_revision(db)
    head = head_revision()
    if current == head:
        return head
    if auto_upgrade:
        await upgrade(db)
        return head
    state = "empty" if current is None else f"at {current}"
    raise StorageError(
        f"the database ({db.describe()}) is {state}, not at {head}: run `bakong-console db upgrade`"
    )
