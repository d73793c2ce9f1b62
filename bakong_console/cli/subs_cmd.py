"""`bakong-console subs`: a user's subscription — create, show, upgrade (with a proration preview),
downgrade, withdraw a pending change, cancel, resume — and the list for operators."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

import typer

from bakong_console.cli.context import cli_actor, open_engine
from bakong_console.cli.render import history_lines, local_time
from engine.clock import PHNOM_PENH
from engine.errors import InvalidInput
from engine.money import format_amount, to_major
from engine.records import InvoicePayment, PlanChange, ProrationQuote, StatusChange, SubscriptionView

app = typer.Typer(help="Subscriptions: create, show, upgrade, downgrade, cancel, resume, list.", no_args_is_help=True)

UserArg = Annotated[str, typer.Argument(help="The user id the main backend knows the customer by.")]
PlanArg = Annotated[str, typer.Argument(help="Plan code.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def invoice_json(item: InvoicePayment) -> dict[str, Any]:
    inv, p = item.invoice, item.payment
    return {
        "id": inv.id,
        "kind": inv.kind,
        "status": inv.status,
        "amount": str(to_major(inv.amount_minor, inv.currency)),
        "currency": inv.currency,
        "period_start": _iso(inv.period_start),
        "period_end": _iso(inv.period_end),
        "paid_at": _iso(inv.paid_at),
        "payment": None
        if p is None
        else {
            "id": p.id,
            "status": p.status.value,
            "md5": p.md5,
            "khqr": p.khqr,
            "deep_link": p.deep_link,
            "expires_at": _iso(p.expires_at),
        },
    }


def view_json(view: SubscriptionView) -> dict[str, Any]:
    s = view.subscription
    return {
        "id": s.id,
        "user_id": s.user_id,
        "status": s.status.value,
        "access": view.has_access,
        "plan": view.plan.code,
        "price": str(to_major(s.price_minor, s.currency)),
        "currency": s.currency,
        "cycle_days": s.cycle_days,
        "current_period_start": _iso(s.current_period_start),
        "current_period_end": _iso(s.current_period_end),
        "trial_end": _iso(s.trial_end),
        "pending_change": s.pending_change,
        "pending_plan": view.pending_plan.code if view.pending_plan else None,
        "pending_change_at": _iso(s.pending_change_at),
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancelled_at": _iso(s.cancelled_at),
        "cancel_reason": s.cancel_reason,
        "grace_until": _iso(s.grace_until),
        "incomplete_until": _iso(s.incomplete_until),
        "open_invoices": [invoice_json(item) for item in view.open_invoices],
    }


def view_text(view: SubscriptionView) -> list[str]:
    s = view.subscription
    lines = [
        f"subscription {s.id}",
        f"user         {s.user_id}",
        f"status       {s.status.value}{'' if view.has_access else ' (no access)'}",
        f"plan         {view.plan.code} ({view.plan.name}), {format_amount(s.price_minor, s.currency)} / {s.cycle_days} days",
    ]
    if s.current_period_start and s.current_period_end:
        lines.append(f"period       {local_time(s.current_period_start)} -> {local_time(s.current_period_end)} (Asia/Phnom_Penh)")
    if s.trial_end and s.status.value == "TRIALING":
        lines.append(f"trial ends   {local_time(s.trial_end)}")
    if s.incomplete_until and s.status.value == "INCOMPLETE":
        lines.append(f"pay before   {local_time(s.incomplete_until)}")
    if s.pending_change:
        target = view.pending_plan.code if view.pending_plan else "?"
        when = f" at {local_time(s.pending_change_at)}" if s.pending_change_at else " when its payment is made"
        lines.append(f"pending      {s.pending_change} to {target}{when}")
    if s.cancel_at_period_end and s.status.is_live:
        lines.append(f"cancels      at period end ({s.cancel_reason or 'no reason given'})")
    if s.cancelled_at:
        lines.append(f"cancelled    {local_time(s.cancelled_at)} ({s.cancel_reason or 'no reason given'})")
    if s.grace_until and s.status.value == "PAST_DUE":
        lines.append(f"grace until  {local_time(s.grace_until)}")
    for item in view.open_invoices:
        inv, p = item.invoice, item.payment
        lines.append(f"owes         {inv.kind} {format_amount(inv.amount_minor, inv.currency)} ({inv.id})")
        if p is not None:
            lines.append(f"  KHQR       {p.id} {p.status.value}, expires {local_time(p.expires_at)}")
            lines.append(f"  md5        {p.md5}")
            if p.deep_link:
                lines.append(f"  deep link  {p.deep_link}")
    return lines


def quote_text(quote: ProrationQuote) -> str:
    left = timedelta(seconds=quote.remaining_seconds)
    return (
        f"upgrade {quote.from_plan} -> {quote.to_plan}: {quote.display_amount} now "
        f"({format_amount(quote.new_price_minor - quote.old_price_minor, quote.currency)} x "
        f"{quote.remaining_seconds}/{quote.cycle_seconds} s left of the period: {left.days} days "
        f"{left.seconds // 3600} h, rounded half up); the period ends {local_time(quote.period_end)}"
    )


def quote_json(quote: ProrationQuote) -> dict[str, Any]:
    return {
        "from_plan": quote.from_plan,
        "to_plan": quote.to_plan,
        "amount": str(quote.amount),
        "amount_minor": quote.amount_minor,
        "currency": quote.currency,
        "remaining_seconds": quote.remaining_seconds,
        "cycle_seconds": quote.cycle_seconds,
        "period_end": _iso(quote.period_end),
    }


def _show(view: SubscriptionView, as_json: bool, history: list[StatusChange] | None = None) -> None:
    if as_json:
        data = view_json(view)
        if history is not None:
            data["history"] = [
                {"from": c.from_status, "to": c.to_status, "at": _iso(c.at), "actor": c.actor, "reason": c.reason} for c in history
            ]
        typer.echo(json.dumps(data, indent=2))
        return
    for line in view_text(view):
        typer.echo(line)
    if history:
        typer.echo("history:")
        for line in history_lines(history):
            typer.echo(f"  {line}")


@app.command("create")
def create(ctx: typer.Context, user: UserArg, plan: PlanArg, as_json: JsonOpt = False) -> None:
    """Subscribe a user to a plan: TRIALING on a plan with a trial, else INCOMPLETE with its first KHQR."""

    async def run() -> SubscriptionView:
        async with open_engine(ctx) as engine:
            view = await engine.subscriptions.create(user, plan, cli_actor())
            if engine.sandbox is not None and not as_json:
                for item in view.open_invoices:
                    if item.payment is not None:
                        typer.echo(f"SANDBOX: pay it with `bakong-console sandbox pay {item.payment.khqr}`", err=True)
            return view

    _show(asyncio.run(run()), as_json)


@app.command("show")
def show(ctx: typer.Context, user: UserArg, as_json: JsonOpt = False) -> None:
    """A user's current subscription: plan, period, pending change, state, what is owed, history."""

    async def run() -> tuple[SubscriptionView, list[StatusChange]]:
        async with open_engine(ctx) as engine:
            view = await engine.subscriptions.status(user)
            return view, await engine.subscriptions.history(view.id)

    view, history = asyncio.run(run())
    _show(view, as_json, history)


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    user: UserArg,
    plan: PlanArg,
    preview: Annotated[bool, typer.Option("--preview", help="Only print what it would cost now; create nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Upgrade now, paying the prorated difference; the plan changes once that KHQR is paid."""

    async def run() -> ProrationQuote | PlanChange:
        async with open_engine(ctx) as engine:
            if preview:
                return await engine.subscriptions.preview_upgrade(user, plan)
            return await engine.subscriptions.upgrade(user, plan, cli_actor())

    result = asyncio.run(run())
    if isinstance(result, ProrationQuote):
        typer.echo(json.dumps(quote_json(result), indent=2) if as_json else quote_text(result))
        return
    if as_json:
        data = view_json(result.view)
        data["upgrade"] = {**quote_json(result.quote), "applied": result.applied, "invoice_id": result.invoice.id if result.invoice else None}
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(quote_text(result.quote))
    typer.echo("applied now: nothing to pay" if result.applied else "applies when the KHQR below is paid")
    for line in view_text(result.view):
        typer.echo(line)


@app.command("downgrade")
def downgrade(ctx: typer.Context, user: UserArg, plan: PlanArg, as_json: JsonOpt = False) -> None:
    """Move to a cheaper plan at the next period start (replaces any pending change)."""

    async def run() -> SubscriptionView:
        async with open_engine(ctx) as engine:
            return await engine.subscriptions.downgrade(user, plan, cli_actor())

    _show(asyncio.run(run()), as_json)


@app.command("withdraw")
def withdraw(ctx: typer.Context, user: UserArg, as_json: JsonOpt = False) -> None:
    """Withdraw the pending upgrade or downgrade."""

    async def run() -> SubscriptionView:
        async with open_engine(ctx) as engine:
            return await engine.subscriptions.withdraw_change(user, cli_actor())

    _show(asyncio.run(run()), as_json)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    user: UserArg,
    now: Annotated[bool, typer.Option("--now", help="End it now instead of at the end of the paid period.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with the subscription and in the audit log).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel at period end (undo with `resume`), or now with --now."""

    async def run() -> SubscriptionView:
        async with open_engine(ctx) as engine:
            return await engine.subscriptions.cancel(user, cli_actor(), at_period_end=not now, reason=reason)

    _show(asyncio.run(run()), as_json)


@app.command("resume")
def resume(ctx: typer.Context, user: UserArg, as_json: JsonOpt = False) -> None:
    """Undo a cancellation at period end, before the period ends."""

    async def run() -> SubscriptionView:
        async with open_engine(ctx) as engine:
            return await engine.subscriptions.resume(user, cli_actor())

    _show(asyncio.run(run()), as_json)


_DURATION = re.compile(r"^(\d+)([hd])$")


def _ends_before(text: str | None, now: datetime) -> datetime | None:
    """``7d`` / ``12h`` from now, a date (midnight Asia/Phnom_Penh) or an ISO time."""
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now + (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            return datetime.combine(day, time(0), PHNOM_PENH).astimezone(UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--ends-before {text!r} is not 7d, 12h, a date (YYYY-MM-DD) or an ISO time", field="ends_before") from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _line(view: SubscriptionView) -> str:
    s = view.subscription
    change = f"{s.pending_change}->{view.pending_plan.code}" if s.pending_change and view.pending_plan else "-"
    if s.cancel_at_period_end and s.status.is_live:
        change = "cancels at period end"
    owes = ",".join(f"{i.invoice.kind}:{format_amount(i.invoice.amount_minor, i.invoice.currency)}" for i in view.open_invoices) or "-"
    return "\t".join(
        [s.id, s.user_id, s.status.value, view.plan.code, format_amount(s.price_minor, s.currency), local_time(s.current_period_end), change, owes]
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", "-s", help="Only this status (ACTIVE, PAST_DUE, ...).")] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="Only this plan code.")] = None,
    ends_before: Annotated[
        str | None, typer.Option("--ends-before", help="Period ends before: 7d, 12h, YYYY-MM-DD or an ISO time.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Page size.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue after a previous page.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, then the next cursor.")] = False,
) -> None:
    """Subscriptions, newest first (one page; the next page's cursor is printed last)."""
    _ends_before(ends_before, datetime.now(UTC))  # refuse a bad value before opening anything

    async def run() -> tuple[list[SubscriptionView], str | None]:
        async with open_engine(ctx) as engine:
            before = _ends_before(ends_before, engine.clock.now())
            return await engine.subscriptions.list(status=status, plan=plan, period_end_before=before, limit=limit, cursor=cursor)

    page, nxt = asyncio.run(run())
    for view in page:
        typer.echo(json.dumps(view_json(view)) if as_json else _line(view))
    if nxt:
        typer.echo(f"next: --cursor {nxt}", err=not as_json)
