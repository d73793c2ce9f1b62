"""`bakong-console report`: a day's report and totals over a range, as columns, JSON or CSV; and
`bakong-console close-day`: the end-of-day close (Z report)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bakong_console.cli.context import cli_actor, with_engine
from bakong_console.cli.render import local_time
from bakong_console.cli.report_render import close_json, day_csv, day_json, day_text, range_csv, range_json, range_text
from bakong_console.zreport import close_csv, receipt
from engine.errors import InvalidInput
from engine.money import format_amount
from engine.services.cards import write_file_whole

if TYPE_CHECKING:
    from engine.runtime import Engine

app = typer.Typer(help="The owner's reports: a day, or totals over a range (Asia/Phnom_Penh days).", no_args_is_help=True)

TerminalOpt = Annotated[str | None, typer.Option("--terminal", help="Only the payments made at this terminal.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (amounts in minor units).")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV (amounts in minor units).")]

Report = TypeVar("Report")


def parse_day(text: str | None, option: str) -> date | None:
    """A calendar date written YYYY-MM-DD, or one clear error naming the option."""
    if text is None:
        return None
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a date (YYYY-MM-DD)", field=option) from None


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise InvalidInput("--json and --csv cannot be used together", field="--csv")


def _echo_report(
    report: Report,
    as_json: bool,
    as_csv: bool,
    *,
    data: Callable[[Report], Any],
    table: Callable[[Report], str],
    text: Callable[[Report], str],
) -> None:
    """Print a report the way --json or --csv asked, else as columns."""
    if as_json:
        typer.echo(json.dumps(data(report), indent=2))
    elif as_csv:
        typer.echo(table(report), nl=False)
    else:
        typer.echo(text(report))


@app.command("day")
def day(
    ctx: typer.Context,
    on: Annotated[str | None, typer.Option("--date", help="The day, YYYY-MM-DD (default: today).")] = None,
    terminal: TerminalOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """One day: totals per currency, status mix, hours, terminals, cashiers, Bakong requests."""
    _one_format(as_json, as_csv)
    wanted = parse_day(on, "--date")

    async def run(engine: Engine) -> None:
        report = await engine.reports.day(wanted, terminal=terminal)
        _echo_report(report, as_json, as_csv, data=day_json, table=day_csv, text=day_text)

    with_engine(ctx, run)


@app.command("range")
def range_(
    ctx: typer.Context,
    first: Annotated[str, typer.Option("--from", help="The first day, YYYY-MM-DD.")],
    last: Annotated[str, typer.Option("--to", help="The last day, YYYY-MM-DD (included).")],
    by: Annotated[str, typer.Option("--by", help="Group by day, hour (of day), terminal or cashier.")] = "day",
    terminal: TerminalOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Totals per currency from --from to --to (at most 366 days), grouped by --by."""
    _one_format(as_json, as_csv)
    start, end = parse_day(first, "--from"), parse_day(last, "--to")
    assert start is not None and end is not None

    async def run(engine: Engine) -> None:
        report = await engine.reports.range(start, end, by=by, terminal=terminal)
        _echo_report(report, as_json, as_csv, data=range_json, table=range_csv, text=range_text)

    with_engine(ctx, run)


def close_day(
    ctx: typer.Context,
    on: Annotated[str | None, typer.Option("--date", help="The day to close, YYYY-MM-DD (default: today).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Close although payments still need a decision (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the day is closed by force.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the close as JSON to this file.")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the close as CSV to this file.")] = None,
) -> None:
    """Close a day (the Z report): freeze its totals and print them 42 columns wide."""
    wanted = parse_day(on, "--date")

    async def run(engine: Engine) -> None:
        if not force:
            report = await engine.reports.day(wanted)
            if report.open_count and report.close is None:
                typer.echo(f"Waiting for a decision ({report.open_count}):")
                for o in report.open_items:
                    typer.echo(f"  {o.payment_id}  {o.status:<12} {format_amount(o.amount_minor, o.currency):>16}  {local_time(o.created_at)}")
        close = await engine.day_close.close(wanted, actor=cli_actor(), force=force, reason=reason)
        if json_path is not None:
            write_file_whole(json_path, (json.dumps(close_json(close), indent=2) + "\n").encode())
        if csv_path is not None:
            write_file_whole(csv_path, close_csv(close).encode())
        typer.echo(receipt(close))

    with_engine(ctx, run)
