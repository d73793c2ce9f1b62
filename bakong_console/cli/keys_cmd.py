"""`bakong-console keys`: the data encryption key (generate, rotate) and API keys (create, list, revoke)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from bakong_console.cli.context import cli_actor, state
from bakong_console.times import local_time
from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.crypto import generate_key_spec, key_file_in_use, load_data_cipher, write_key_file
from engine.db.bootstrap import open_storage
from engine.db.rekey import reencrypt_all
from engine.db.storage import Storage
from engine.records import ApiKey
from engine.services.api_keys import SCOPES, ApiKeyService

T = TypeVar("T")

app = typer.Typer(help="Keys: the data encryption key and API keys.", no_args_is_help=True)


def _with_storage(settings: Settings, action: Callable[[Storage, Clock], Awaitable[T]]) -> T:
    """Run one action on the database alone (no engine, no Bakong client) and close it after."""

    async def run() -> T:
        clock = SystemClock()
        storage = await open_storage(settings, clock=clock)
        try:
            return await action(storage, clock)
        finally:
            await storage.db.dispose()

    return asyncio.run(run())


@app.command("new-data-key")
def new_data_key() -> None:
    """Print a fresh data key (KEY_ID:BASE64) for security.data_key or BAKONG_CONSOLE_DATA_KEY."""
    typer.echo(generate_key_spec())


@app.command("rotate-data-key")
def rotate_data_key(ctx: typer.Context) -> None:
    """Re-encrypt every secret at rest with the active data key.

    With a key file (the embedded default), a new key is generated first and the old one kept in
    the file until every secret is re-encrypted. With a configured key, set the new key as
    security.data_key, move the old one to security.previous_data_keys, then run this.
    """
    settings = state(ctx).settings()
    key_file = key_file_in_use(settings)
    if key_file is not None:
        load_data_cipher(settings)  # fail before touching anything if the current key is unreadable
        old_specs = [line.strip() for line in key_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        new_spec = generate_key_spec()
        # Both keys are on disk before any value is rewritten: a crash here loses nothing.
        write_key_file(key_file, [new_spec, *old_specs])

    count = _with_storage(settings, lambda storage, clock: reencrypt_all(storage))
    if key_file is not None:
        write_key_file(key_file, [new_spec])
        typer.echo(f"re-encrypted {count} secrets with new key {new_spec.split(':')[0]} ({key_file})")
    else:
        typer.echo(f"re-encrypted {count} secrets with key {load_data_cipher(settings).active_id}")


def _with_api_keys(ctx: typer.Context, action: Callable[[ApiKeyService], Awaitable[T]]) -> T:
    return _with_storage(state(ctx).settings(), lambda storage, clock: action(ApiKeyService(storage, clock=clock)))


@app.command("create")
def create_api_key(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who uses the key, e.g. the backend's name (unique among active keys).")],
    scopes: Annotated[
        str | None,
        typer.Option("--scopes", help=f"Comma-separated scopes (default: all): {', '.join(SCOPES)}."),
    ] = None,
) -> None:
    """Create an API key for the HTTP API and print it once (only its hash is kept)."""
    wanted = [s for s in scopes.split(",")] if scopes is not None else None
    key, plaintext = _with_api_keys(ctx, lambda svc: svc.create(name, wanted, actor=cli_actor()))
    typer.echo(plaintext)
    typer.echo(f"created API key {key.id} ({key.name}) with scopes {','.join(key.scopes)}", err=True)
    typer.echo("store it now: it is not shown again", err=True)


@app.command("list")
def list_api_keys(
    ctx: typer.Context,
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List API keys (never the keys themselves: their prefixes)."""
    keys: list[ApiKey] = _with_api_keys(ctx, lambda svc: svc.list(include_revoked=all_keys))
    if not keys:
        typer.echo("no API keys" + ("" if all_keys else " (--all shows revoked ones)"))
        return
    rows = [("ID", "NAME", "PREFIX", "SCOPES", "CREATED", "LAST USED", "STATUS")]
    for k in keys:
        status = "active" if k.active else f"revoked {local_time(k.revoked_at)}"
        rows.append((k.id, k.name, f"bk_{k.prefix}_", ",".join(k.scopes), local_time(k.created_at), local_time(k.last_used_at), status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


@app.command("revoke")
def revoke_api_key(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (key_..., see `keys list`).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why; kept in the audit log.")] = None,
) -> None:
    """Revoke an API key: requests with it are refused (within seconds in every running API)."""
    key = _with_api_keys(ctx, lambda svc: svc.revoke(key_id.strip(), actor=cli_actor(), reason=reason))
    typer.echo(f"revoked API key {key.id} ({key.name})")
