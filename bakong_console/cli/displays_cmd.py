"""`bakong-console displays`: the customer displays at the counters (pair, list, revoke)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer

from bakong_console.cli.context import JsonOpt, cli_actor, state
from bakong_console.cli.render import echo_json, iso_utc
from bakong_console.times import local_time
from engine.clock import SystemClock
from engine.db.bootstrap import open_storage
from engine.db.displays import Display
from engine.services.displays import DisplayService
from engine.terminals import terminal_name

T = TypeVar("T")

app = typer.Typer(help="Customer displays: pair one with a terminal, list them, revoke one.", no_args_is_help=True)


def _with_displays(ctx: typer.Context, action: Callable[[DisplayService], Awaitable[T]]) -> T:
    """Run one action on the database alone (no engine, no Bakong client) and close it after."""
    settings = state(ctx).settings()

    async def run() -> T:
        clock = SystemClock()
        storage = await open_storage(settings, clock=clock)
        try:
            return await action(DisplayService(storage, settings, clock=clock))
        finally:
            await storage.db.dispose()

    return asyncio.run(run())


def _json(display: Display, now: datetime) -> dict[str, Any]:
    return {
        "id": display.id,
        "terminal": display.terminal,
        "status": display.status(now),
        "created_at": iso_utc(display.created_at),
        "paired_at": iso_utc(display.paired_at),
        "last_seen_at": iso_utc(display.last_seen_at),
        "revoked_at": iso_utc(display.revoked_at),
    }


@app.command("pair")
def pair_display(
    ctx: typer.Context,
    terminal: Annotated[
        str | None, typer.Argument(help="The terminal the display follows (default: this machine's [console] terminal).")
    ] = None,
) -> None:
    """Print a pairing code and the display's address: open the address on the display, type the code."""
    settings = state(ctx).settings()
    name = terminal.strip() if terminal is not None else terminal_name(settings.console.terminal)

    async def pair(svc: DisplayService) -> tuple[str, str, datetime]:
        code = await svc.start_pairing(name, actor=cli_actor())
        return code.code, svc.url(name), code.expires_at

    code, url, expires_at = _with_displays(ctx, pair)
    typer.echo(f"pairing code {code}")
    typer.echo(f"open {url} on the display and type the code (it works once, until {local_time(expires_at)})")


@app.command("list")
def list_displays(
    ctx: typer.Context,
    terminal: Annotated[str | None, typer.Option("--terminal", help="Only this terminal's displays.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List paired and revoked displays, and pairing codes still waiting (never a code or a token)."""

    async def read(svc: DisplayService) -> tuple[list[Display], datetime]:
        return await svc.list(terminal=terminal), svc.clock.now()

    displays, now = _with_displays(ctx, read)
    if as_json:
        echo_json([_json(d, now) for d in displays])
        return
    if not displays:
        typer.echo("no displays (pair one: bakong-console displays pair)")
        return
    rows = [("ID", "TERMINAL", "STATUS", "PAIRED", "LAST SEEN", "REVOKED")]
    for d in displays:
        rows.append((d.id, d.terminal, d.status(now), local_time(d.paired_at), local_time(d.last_seen_at), local_time(d.revoked_at)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


@app.command("revoke")
def revoke_display(
    ctx: typer.Context,
    display_id: Annotated[str, typer.Argument(metavar="ID", help="The display's id (dsp_..., see `displays list`).")],
) -> None:
    """Revoke a display: its page goes back to asking for a pairing code (an open one within a second)."""
    display = _with_displays(ctx, lambda svc: svc.revoke(display_id.strip(), actor=cli_actor()))
    typer.echo(f"revoked display {display.id} of terminal {display.terminal}")
