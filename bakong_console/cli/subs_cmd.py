"""`bakong-console subs`: a user's subscription — create, show, upgrade (with a proration preview),
downgrade, withdraw a pending change, cancel, resume — and the list for operators."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bakong_console.cli.context import CursorOpt, JsonLinesOpt, JsonOpt, LimitOpt, cli_actor, day_or_time, with_engine
from bakong_console.cli.render import echo_json, echo_page, history_block, history_json, iso_utc
from bakong_console.times import local_time
from engine.errors import InvalidInput
from engine.money import format_amount, to_major
from engine.records import InvoicePayment, PlanChange, ProrationQuote, StatusChange, SubscriptionView

if TYPE_CHECKING:
    from engine.runtime import Engine

app = typer.Typer(help="Subscriptions: create, show, upgrade, downgrade, cancel, resume, list.", no_args_is_help=True)

UserArg = Annotated[str, typer.Argument(help="The user id the main backend knows the customer by.")]
PlanArg = Annotated[str, typer.Argument(help="Plan code.")]


def invoice_json(item: InvoicePayment) -> dict[str, Any]:
    inv, p = item.invoice, item.payment
    return {
        "id": inv.id,
        "kind": inv.kind,
        "status": inv.status,
        "amount": str(to_major(inv.amount_minor, inv.currency)),
        "currency": inv.currency,
        "period_start": iso_utc(inv.period_start),
        "period_end": iso_utc(inv.period_end),
        "paid_at": iso_utc(inv.paid_at),
        "payment": None
        if p is None
        else {
            "id": p.id,
            "status": p.status.value,
            "md5": p.md5,
            "khqr": p.khqr,
            "deep_link": p.deep_link,
            "expires_at": iso_utc(p.expires_at),
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
        "current_period_start": iso_utc(s.current_period_start),
        "current_period_end": iso_utc(s.current_period_end),
        "trial_end": iso_utc(s.trial_end),
        "pending_change": s.pending_change,
        "pending_plan": view.pending_plan.code if view.pending_plan else None,
        "pending_change_at": iso_utc(s.pending_change_at),
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancelled_at": iso_utc(s.cancelled_at),
        "cancel_reason": s.cancel_reason,
        "grace_until": iso_utc(s.grace_until),
        "incomplete_until": iso_utc(s.incomplete_until),
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
        lines.append(f"period       {local_time(s.current_period_start)} -> {local_time(s.current_period_end)}")
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
        "period_end": iso_utc(quote.period_end),
    }


def _show(view: SubscriptionView, as_json: bool, history: list[StatusChange] | None = None) -> None:
    if as_json:
        data = view_json(view)
        if history is not None:
            data["history"] = history_json(history)
        echo_json(data)
        return
    for line in view_text(view):
        typer.echo(line)
    if history:
        for line in history_block(history):
            typer.echo(line)


@app.command("create")
def create(ctx: typer.Context, user: UserArg, plan: PlanArg, as_json: JsonOpt = False) -> None:
    """Subscribe a user to a plan: TRIALING on a plan with a trial, else INCOMPLETE with its first KHQR."""

    async def subscribe(engine: Engine) -> SubscriptionView:
        view = await engine.subscriptions.create(user, plan, cli_actor())
        if engine.sandbox is not None and not as_json:
            for item in view.open_invoices:
                if item.payment is not None:
                    typer.echo(f"SANDBOX: pay it with `bakong-console sandbox pay {item.payment.khqr}`", err=True)
        return view

    _show(with_engine(ctx, subscribe), as_json)


@app.command("show")
def show(ctx: typer.Context, user: UserArg, as_json: JsonOpt = False) -> None:
    """A user's current subscription: plan, period, pending change, state, what is owed, history."""

    async def status_with_history(engine: Engine) -> tuple[SubscriptionView, list[StatusChange]]:
        view = await engine.subscriptions.status(user)
        return view, await engine.subscriptions.history(view.id)

    view, history = with_engine(ctx, status_with_history)
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

    async def upgrade_or_quote(engine: Engine) -> ProrationQuote | PlanChange:
        if preview:
            return await engine.subscriptions.preview_upgrade(user, plan)
        return await engine.subscriptions.upgrade(user, plan, cli_actor())

    result = with_engine(ctx, upgrade_or_quote)
    if isinstance(result, ProrationQuote):
        if as_json:
            echo_json(quote_json(result))
        else:
            typer.echo(quote_text(result))
        return
    if as_json:
        data = view_json(result.view)
        data["upgrade"] = {**quote_json(result.quote), "applied": result.applied, "invoice_id": result.invoice.id if result.invoice else None}
        echo_json(data)
        return
    typer.echo(quote_text(result.quote))
    typer.echo("applied now: nothing to pay" if result.applied else "applies when the KHQR below is paid")
    for line in view_text(result.view):
        typer.echo(line)


@app.command("downgrade")
def downgrade(ctx: typer.Context, user: UserArg, plan: PlanArg, as_json: JsonOpt = False) -> None:
    """Move to a cheaper plan at the next period start (replaces any pending change)."""
    _show(with_engine(ctx, lambda engine: engine.subscriptions.downgrade(user, plan, cli_actor())), as_json)


@app.command("withdraw")
def withdraw(ctx: typer.Context, user: UserArg, as_json: JsonOpt = False) -> None:
    """Withdraw the pending upgrade or downgrade."""
    _show(with_engine(ctx, lambda engine: engine.subscriptions.withdraw_change(user, cli_actor())), as_json)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    user: UserArg,
    now: Annotated[bool, typer.Option("--now", help="End it now instead of at the end of the paid period.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with the subscription and in the audit log).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel at period end (undo with `resume`), or now with --now."""
    _show(with_engine(ctx, lambda engine: engine.subscriptions.cancel(user, cli_actor(), at_period_end=not now, reason=reason)), as_json)


@app.command("resume")
def resume(ctx: typer.Context, user: UserArg, as_json: JsonOpt = False) -> None:
    """Undo a cancellation at period end, before the period ends."""
    _show(with_engine(ctx, lambda engine: engine.subscriptions.resume(user, cli_actor())), as_json)


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
        return day_or_time(text)
    except ValueError:
        raise InvalidInput(f"--ends-before {text!r} is not 7d, 12h, a date (YYYY-MM-DD) or an ISO time", field="ends_before") from None


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
    limit: LimitOpt = 50,
    cursor: CursorOpt = None,
    as_json: JsonLinesOpt = False,
) -> None:
    """Subscriptions, newest first (one page; the next page's cursor is printed last)."""
    _ends_before(ends_before, datetime.now(UTC))  # refuse a bad value before opening anything

    async def page_of(engine: Engine) -> tuple[list[SubscriptionView], str | None]:
        before = _ends_before(ends_before, engine.clock.now())
        return await engine.subscriptions.list(status=status, plan=plan, period_end_before=before, limit=limit, cursor=cursor)

    page, nxt = with_engine(ctx, page_of)
    echo_page(page, nxt, as_json=as_json, json_of=view_json, line_of=_line)
