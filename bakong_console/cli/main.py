"""The root command: global options, error mapping, and the sub-apps composed with ``add_typer``.

Every engine error surfaces here as one line on stderr and its ``exit_code``; no traceback ever
reaches an operator (``-v`` adds detail to logs, never secrets).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from bakong_console import __version__
from bakong_console.cli import bakong_cmd, config_cmd, db_cmd, keys_cmd, khqr_cmd, pay_cmd, payments_cmd, sandbox_cmd, serve_cmd
from bakong_console.cli import webhooks_cmd
from bakong_console.cli import plans_cmd, subs_cmd
from bakong_console.cli import doctor_cmd, setup_cmd
from bakong_console.cli import service_cmd
from bakong_console.cli import displays_cmd
from bakong_console.cli import reconcile_cmd
from bakong_console.cli import report_cmd
from bakong_console.cli.context import CliState
from engine.errors import BakongConsoleError


class ErrorMappingGroup(TyperGroup):
    """Turns engine errors raised by any sub-command into one stderr line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BakongConsoleError as exc:
            click.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=ErrorMappingGroup,
    name="bakong-console",
    help="Bakong KHQR payments: the operator console, the daemon and admin commands.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bakong-console {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="Config file (default: $BAKONG_CONSOLE_CONFIG, then the XDG config dir)."),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Bakong KHQR payments. With no command, opens the operator console."""
    ctx.obj = CliState(config_path=config, verbosity=verbose)
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ctx.invoked_subcommand is None:
        _open_console(ctx)


def _open_console(ctx: typer.Context) -> None:
    # Textual is imported only here: every other command (and `serve`) runs without it.
    import asyncio

    from bakong_console.cli.context import state
    from bakong_console.tui.run import run_console

    setup_cmd.first_run(ctx)
    raise typer.Exit(asyncio.run(run_console(state(ctx).settings())))


@app.command("console")
def console(ctx: typer.Context) -> None:
    """Open the operator console (the same as running bakong-console with no command)."""
    _open_console(ctx)


app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(khqr_cmd.app, name="khqr")
app.add_typer(sandbox_cmd.app, name="sandbox")
app.add_typer(bakong_cmd.app, name="bakong")
app.add_typer(payments_cmd.app, name="payments")
app.add_typer(plans_cmd.app, name="plans")
app.add_typer(subs_cmd.app, name="subs")
app.add_typer(webhooks_cmd.app, name="webhooks")
app.add_typer(service_cmd.app, name="service")
app.add_typer(displays_cmd.app, name="displays")
app.add_typer(report_cmd.app, name="report")
app.command("pay")(pay_cmd.pay)
app.command("serve")(serve_cmd.serve)
app.command("setup")(setup_cmd.setup)
app.command("doctor")(doctor_cmd.doctor)
app.command("reconcile")(reconcile_cmd.reconcile)
app.command("close-day")(report_cmd.close_day)


def run() -> None:
    """Console-script entry point."""
    app()
