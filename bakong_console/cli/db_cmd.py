"""`bakong-console db`: migrate and inspect the database schema, back it up and restore it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bakong_console.cli.context import cli_actor, state
from engine.clock import SystemClock
from engine.db.bootstrap import open_storage
from engine.db.database import Database
from engine.db.migrate import current_revision, head_revision, upgrade
from engine.db.sealing import seal_existing_rows
from engine.errors import DataKeyError

app = typer.Typer(help="Create, migrate, inspect, back up and restore the database.", no_args_is_help=True)


def _database(ctx: typer.Context) -> Database:
    settings = state(ctx).settings()
    return Database(settings.database_url, busy_timeout=settings.database.sqlite_busy_timeout, pool_size=settings.database.pool_size)


@app.command("upgrade")
def upgrade_cmd(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations (creates the database schema on first run), then seal the payer accounts
    that earlier versions wrote in clear into events and audit rows."""

    async def run() -> tuple[str | None, str | None, int]:
        db = _database(ctx)
        try:
            before = await current_revision(db)
            after = await upgrade(db, revision)
        finally:
            await db.dispose()
        sealed: int | None = 0
        if revision == "head":
            # payer accounts written in clear by earlier versions are sealed with the data key,
            # which a migration does not have
            try:
                storage = await open_storage(state(ctx).settings(), clock=SystemClock(), migrate=False)
            except DataKeyError:
                return before, after, None
            try:
                sealed = await seal_existing_rows(storage)
            finally:
                await storage.db.dispose()
        return before, after, sealed

    before, after, sealed = asyncio.run(run())
    if before == after:
        typer.echo(f"already at {after}")
    else:
        typer.echo(f"upgraded {before or 'empty database'} -> {after}")
    if sealed is None:
        typer.echo("note: no data key, so payer accounts written in clear by earlier versions were not sealed", err=True)
    elif sealed:
        typer.echo(f"sealed the payer accounts of {sealed} event and audit rows written in clear")


@app.command("current")
def current_cmd(ctx: typer.Context) -> None:
    """Print the schema revision of the database and whether it is the newest."""

    async def run() -> tuple[str, str | None]:
        db = _database(ctx)
        try:
            return db.describe(), await current_revision(db)
        finally:
            await db.dispose()

    where, rev = asyncio.run(run())
    head = head_revision()
    status = "up to date" if rev == head else f"behind: run `bakong-console db upgrade` (head is {head})"
    typer.echo(f"{where}: {rev or 'empty'} ({status})")


@app.command("backup")
def backup_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The backup file to write (0600).", dir_okay=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Write a consistent copy of the database to FILE, safe while a daemon runs.

    SQLite: SQLite's online backup API. PostgreSQL: pg_dump (custom format), whose command is
    printed first, its password redacted."""
    from engine.services.backups import backup_database, pg_dump_display

    settings = state(ctx).settings()
    url = settings.database_url
    if url.startswith("postgresql"):
        typer.echo(f"running: {pg_dump_display(url, file.expanduser().absolute())}")
    done = asyncio.run(backup_database(url, file, busy_timeout=settings.database.sqlite_busy_timeout, replace=force))
    typer.echo(f"backed up {done.database} to {done.path} ({done.bytes:,} bytes)")


@app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file written by `bakong-console db backup` (or the nightly backup).", dir_okay=False)],
) -> None:
    """Put the backup FILE in place of the database; refused while a daemon or console runs on it.

    The current database is kept beside it (FILE's directory on PostgreSQL), a backup behind
    this version's schema is migrated, and the data key must open the backup's secrets."""
    from engine.clock import SystemClock
    from engine.services.backups import restore_database

    settings = state(ctx).settings()
    done = asyncio.run(
        restore_database(settings, file, clock=SystemClock(), actor=cli_actor(), on_command=lambda c: typer.echo(f"running: {c}"))
    )
    if done.kept is not None:
        typer.echo(f"kept the database it replaces as {done.kept}")
    migrated = f" (migrated from {done.revision_before})" if done.revision_before != done.revision else ""
    typer.echo(f"restored {done.path} into {done.database}: schema at {done.revision}{migrated}, the data key opens its stored secrets ({done.secrets_tried} tried)")
    if done.key_problem:
        typer.echo(f"warning: {done.key_problem}", err=True)
    typer.echo("next: `bakong-console doctor`, then start the daemon again")
