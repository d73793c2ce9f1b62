"""`bakong-console plans`: the plans subscriptions are sold on (add, list, update, archive)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bakong_console.cli.context import JsonOpt, cli_actor, with_engine
from bakong_console.cli.render import echo_json
from engine.money import to_major
from engine.records import Plan

app = typer.Typer(help="Subscription plans: price per cycle, cycle length, trial.", no_args_is_help=True)

CodeArg = Annotated[str, typer.Argument(help="Plan code, e.g. basic (lowercase letters, digits, . _ -).")]


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "code": plan.code,
        "name": plan.name,
        "price": str(to_major(plan.price_minor, plan.currency)),
        "price_minor": plan.price_minor,
        "currency": plan.currency,
        "cycle_days": plan.cycle_days,
        "trial_days": plan.trial_days,
        "archived": plan.archived_at is not None,
    }


def plan_line(plan: Plan) -> str:
    trial = f"{plan.trial_days}-day trial" if plan.trial_days else "no trial"
    archived = "  (archived)" if plan.archived_at else ""
    return f"{plan.code}\t{plan.name}\t{plan.display_price} / {plan.cycle_days} days\t{trial}{archived}"


def _print(plan: Plan, as_json: bool) -> None:
    if as_json:
        echo_json(plan_json(plan))
    else:
        typer.echo(plan_line(plan))


@app.command("add")
def add(
    ctx: typer.Context,
    code: CodeArg,
    price: Annotated[str, typer.Option("--price", "-p", help="Price per cycle in major units: 5.00 USD, 20000 KHR.")],
    currency: Annotated[str, typer.Option("--currency", help="KHR or USD.")] = "KHR",
    name: Annotated[str | None, typer.Option("--name", "-n", help="Name shown to people (default: the code).")] = None,
    cycle_days: Annotated[int | None, typer.Option("--cycle-days", help="Cycle length (default: subscriptions.cycle_days).")] = None,
    trial_days: Annotated[int, typer.Option("--trial-days", help="Free days before the first paid period.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Add a plan."""
    plan = with_engine(
        ctx, lambda engine: engine.subscriptions.add_plan(code, name or code, price, currency, cycle_days, trial_days, actor=cli_actor())
    )
    _print(plan, as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    include_archived: Annotated[bool, typer.Option("--all", help="Include archived plans.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Plans, cheapest first (per currency)."""
    plans = with_engine(ctx, lambda engine: engine.subscriptions.list_plans(include_archived=include_archived))
    if as_json:
        echo_json([plan_json(p) for p in plans])
        return
    if not plans:
        typer.echo("no plans yet: add one with `bakong-console plans add CODE --price ...`", err=True)
    for plan in plans:
        typer.echo(plan_line(plan))


@app.command("update")
def update(
    ctx: typer.Context,
    code: CodeArg,
    name: Annotated[str | None, typer.Option("--name", "-n", help="New name.")] = None,
    price: Annotated[str | None, typer.Option("--price", "-p", help="New price per cycle (major units).")] = None,
    cycle_days: Annotated[int | None, typer.Option("--cycle-days", help="New cycle length.")] = None,
    trial_days: Annotated[int | None, typer.Option("--trial-days", help="New trial length.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a plan. Running periods keep their price; renewals billed from now on take the new one."""
    plan = with_engine(
        ctx,
        lambda engine: engine.subscriptions.update_plan(
            code, actor=cli_actor(), name=name, price=price, cycle_days=cycle_days, trial_days=trial_days
        ),
    )
    _print(plan, as_json)


@app.command("archive")
def archive(ctx: typer.Context, code: CodeArg, as_json: JsonOpt = False) -> None:
    """No new subscriptions on this plan; existing ones keep renewing on it."""
    _print(with_engine(ctx, lambda engine: engine.subscriptions.archive_plan(code, actor=cli_actor())), as_json)
