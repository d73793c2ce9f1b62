"""`bakong-console keys`: the data encryption key (generate, rotate)."""

from __future__ import annotations

import asyncio

import typer

from bakong_console.cli.context import state
from engine.clock import SystemClock
from engine.crypto import generate_key_spec, key_file_in_use, load_data_cipher, write_key_file
from engine.db.bootstrap import open_storage
from engine.db.rekey import reencrypt_all

app = typer.Typer(help="Keys: the data encryption key and API keys.", no_args_is_help=True)


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

    async def run() -> int:
        storage = await open_storage(settings, clock=SystemClock())
        try:
            return await reencrypt_all(storage)
        finally:
            await storage.db.dispose()

    count = asyncio.run(run())
    if key_file is not None:
        write_key_file(key_file, [new_spec])
        typer.echo(f"re-encrypted {count} secrets with new key {new_spec.split(':')[0]} ({key_file})")
    else:
        typer.echo(f"re-encrypted {count} secrets with key {load_data_cipher(settings).active_id}")
