"""`bakong-console reconcile`: re-check a day's paid payments with Bakong by their hash, within
reconciliation's share of today's budget, and show the day's reconciled / flagged / not yet checked."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bakong_console.cli.context import cli_actor, with_engine
from bakong_console.cli.render import echo_json, iso_utc
from bakong_console.times import local_time
from engine.clock import PHNOM_PENH
from engine.errors import InvalidInput
from engine.records import DayReconciliation, Payment

if TYPE_CHECKING:
    from engine.runtime import Engine
    from engine.services.reconciliation import BudgetShare, ReconcileRun


def _day(text: str | None, today: date) -> date:
    if text is None:
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--date {text!r} is not a date (YYYY-MM-DD)", field="date") from None


def _flag_line(p: Payment) -> str:
    return f"  {p.id}  {p.reconcile_status or '-':<17}  {p.display_amount:>14}  paid {local_time(p.paid_at)}  {p.reference or ''}".rstrip()


def reconcile(
    ctx: typer.Context,
    when: Annotated[str | None, typer.Option("--date", metavar="YYYY-MM-DD", help="The day (Phnom Penh) whose paid payments to re-check; default: yesterday.")] = None,
    again: Annotated[bool, typer.Option("--again", help="Re-check the day's payments already reconciled or flagged too.")] = False,
    max_requests: Annotated[int | None, typer.Option("--max-requests", min=1, help="Spend at most this many Bakong requests (never more than the share).")] = None,
    summary_only: Annotated[bool, typer.Option("--summary", help="Send nothing: only show the day's counts.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-check a day's PAID and PAID_LATE payments by their Bakong hash: each one reconciled, or
    flagged (not found, amount, currency or account mismatch, failed) with an event and an alert.
    Spends only reconciliation's share of today's budget (what live polling left unused
    yesterday); what it cannot afford stays "not yet checked" for the nightly pass."""

    async def act(engine: Engine) -> tuple[date, ReconcileRun | None, DayReconciliation, list[Payment], BudgetShare]:
        service = engine.reconciliation
        today = engine.clock.now().astimezone(PHNOM_PENH).date()
        day = service.check_day(_day(when, today))
        run = None
        if not summary_only:
            run = await service.reconcile(actor=cli_actor(), day=day, include_checked=again, max_requests=max_requests)
        return day, run, await service.summary(day), await service.flagged(day), await service.share()

    day, run, counts, flagged, share = with_engine(ctx, act)
    if as_json:
        echo_json(_as_json(day, run, counts, flagged, share))
        return
    typer.echo(f"reconciliation of {day.isoformat()} (Asia/Phnom_Penh)")
    if run is not None:
        typer.echo(
            f"  this run     {len(run.reconciled)} reconciled, {len(run.flagged)} flagged, "
            f"{run.requests} Bakong request(s)" + (f"; stopped: {run.stopped}" if run.stopped else "")
        )
    typer.echo(f"  paid         {counts.paid}")
    typer.echo(f"  reconciled   {counts.reconciled}")
    kinds = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.flagged.items())
    typer.echo(f"  flagged      {counts.flagged_total}" + (f" ({kinds})" if kinds else ""))
    typer.echo(f"  not checked  {counts.unchecked}")
    typer.echo(f"  share        {share.left} request(s) left today of {share.allowed} (spent {share.spent})")
    if flagged:
        typer.echo("flagged payments:")
        for p in flagged:
            typer.echo(_flag_line(p))


def _as_json(day: date, run: ReconcileRun | None, counts: DayReconciliation, flagged: list[Payment], share: BudgetShare) -> dict[str, Any]:
    return {
        "date": day.isoformat(),
        "run": None if run is None else {
            "reconciled": len(run.reconciled), "flagged": len(run.flagged), "requests": run.requests,
            "unanswered": run.unanswered, "stopped": run.stopped,
        },
        "paid": counts.paid,
        "reconciled": counts.reconciled,
        "flagged": counts.flagged,
        "not_checked": counts.unchecked,
        "share": {"day": share.day.isoformat(), "allowed": share.allowed, "spent": share.spent, "left": share.left},
        "flagged_payments": [
            {"id": p.id, "reconcile_status": p.reconcile_status, "reconciled_at": iso_utc(p.reconciled_at),
             "amount": str(p.amount), "currency": p.currency, "paid_at": iso_utc(p.paid_at), "reference": p.reference}
            for p in flagged
        ],
    }  # fmt: skip
