"""`bakong-console db`: migrate and inspect the database schema."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bakong_console.cli.context import state
from engine.db.database import Database
from engine.db.migrate import current_revision, head_revision, upgrade

app = typer.Typer(help="Create, migrate and inspect the database.", no_args_is_help=True)


def _database(ctx: typer.Context) -> Database:
    settings = state(ctx).settings()
    return Database(settings.database_url, busy_timeout=settings.database.sqlite_busy_timeout)


@app.command("upgrade")
def upgrade_cmd(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations (creates the database schema on first run)."""

    async def run() -> tuple[str | None, str | None]:
        db = _database(ctx)
        try:
            before = await current_revision(db)
            after = await upgrade(db, revision)
            return before, after
        finally:
            await db.dispose()

    before, after = asyncio.run(run())
    if before == after:
        typer.echo(f"already at {after}")
    else:
        typer.echo(f"upgraded {before or 'empty database'} -> {after}")


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
