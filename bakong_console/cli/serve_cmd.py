"""`bakong-console serve`: run the engine headless (workers, heartbeat, HTTP API) until signalled."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bakong_console.cli.context import state


def serve(
    ctx: typer.Context,
    no_api: Annotated[bool, typer.Option("--no-api", help="Run the workers only, without the HTTP API.")] = False,
    host: Annotated[str | None, typer.Option("--host", help="API address (default: api.host).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="API port (default: api.port).")] = None,
) -> None:
    """Poll Bakong, time payments out, deliver webhooks and serve the API until SIGINT/SIGTERM."""
    from dataclasses import replace

    from bakong_console.daemon import event_loop_factory, run_daemon
    from bakong_console.logs import configure_logging

    settings = state(ctx).settings()
    if host is not None or port is not None:
        settings = replace(settings, api=replace(settings.api, host=host or settings.api.host, port=port or settings.api.port))
    level = "DEBUG" if state(ctx).verbosity > 1 else settings.logging.level
    configure_logging(level, settings.logging.format)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:  # uvloop where installed
        code = runner.run(run_daemon(settings, with_api=False if no_api else None))
    raise typer.Exit(code)
