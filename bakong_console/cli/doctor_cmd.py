"""`bakong-console doctor`: one line per check of this installation (``--json``: the same as data);
exit 1 when any check fails, 0 when there are only warnings. The checks are
``engine.services.doctor``'s; this prints them."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer

from bakong_console.cli.context import state

if TYPE_CHECKING:
    from engine.services.checks import CheckResult

__all__ = ["doctor", "doctor_line"]


def doctor_line(result: CheckResult, width: int = 12) -> str:
    """``ok    database    postgresql://db/bakong answers, schema at 0003 — what to do``."""
    line = f"{result.state.value:<5} {result.name:<{width}} {result.detail}"
    return f"{line} — {result.fix}" if result.fix else line


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The same checks as JSON.")] = False,
) -> None:
    """Check the config, database, data key, token, Bakong, clock, disk, webhooks and leases."""
    from engine.services.doctor import Doctor

    report = asyncio.run(Doctor(state(ctx).config_path).run())
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        width = max(len(r.name) for r in report.results)
        for result in report.results:
            typer.echo(doctor_line(result, width))
    raise typer.Exit(1 if report.failed else 0)
