"""Alembic environment: runs migrations on the connection handed over by engine.db.migrate.

Works from an editable checkout (``migrations/``) and from an installed wheel, where this
directory ships as ``engine/_migrations``. On PostgreSQL an advisory lock makes concurrent
upgrades from several starting processes take turns.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from engine.db.models import Base

MIGRATION_LOCK = 0x62616B6D6967  # "bakmig"

target_metadata = Base.metadata
config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `bakong-console db upgrade` (engine.db.migrate)")
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
