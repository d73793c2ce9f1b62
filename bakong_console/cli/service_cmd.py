"""`bakong-console service`: run the daemon as a system service (``service unit`` prints the
hardened systemd unit; ``bakong_console.service_unit`` builds it)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer

from bakong_console.cli.context import state

app = typer.Typer(help="Run `bakong-console serve` as a system service.", no_args_is_help=True)


def _default_user() -> str:
    # `sudo bakong-console service unit`: the unit is for the person who set the shop up
    user = getpass.getuser()
    return (os.environ.get("SUDO_USER") or user) if user == "root" else user


@app.command("unit")
def unit(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="The user the service runs as (default: you).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="The config file the service reads (default: the one this command finds).", dir_okay=False)
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Where the embedded database and its key live (default: the data directory in use).", file_okay=False),
    ] = None,
) -> None:
    """Print a hardened systemd unit for `bakong-console serve` (redirect it into /etc/systemd/system/)."""
    from engine.config import discover_config_path, load_settings
    from bakong_console.cli.service_unit import ServiceUnit, find_executable

    explicit = config or state(ctx).config_path
    path = discover_config_path(explicit)
    settings = load_settings(path) if config is not None else state(ctx).settings()
    service = ServiceUnit.build(
        settings,
        user=user or _default_user(),
        executable=find_executable(),
        config=path.absolute() if path is not None else None,
        state_dir=state_dir,
    )
    typer.echo(service.render(), nl=False)
