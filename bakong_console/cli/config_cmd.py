"""`bakong-console config`: validate and show the configuration in use."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bakong_console.cli.context import state
from engine.config import discover_config_path, load_settings
from engine.extras import require_extras

app = typer.Typer(help="Validate and show the configuration.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context,
    path: Annotated[str | None, typer.Argument(help="File to check (default: the one in use).")] = None,
) -> None:
    """Validate a config file, and that this installation has the packages it needs; exit non-zero
    with a one-line reason if not."""
    target = path or state(ctx).config_path
    settings = load_settings(target)
    require_extras(settings)
    where = settings.source or "no config file (defaults)"
    typer.echo(f"ok: {where} ({settings.bakong.environment}, database {_db_label(settings.database_url)})")


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON, secrets redacted."""
    settings = state(ctx).settings()
    typer.echo(json.dumps({"source": str(settings.source) if settings.source else None, **settings.redacted()}, indent=2))


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print the config file that would be used (or that none is)."""
    found = discover_config_path(state(ctx).config_path)
    typer.echo(str(found) if found else "none (defaults)")


def _db_label(url: str) -> str:
    if url.startswith("sqlite"):
        return url.split("///", 1)[-1]
    # Hide credentials: keep scheme, host and database name.
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{parts.path}"
