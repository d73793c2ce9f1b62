"""`bakong-console payments`: list, show, check, cancel, resolve, mark paid, export."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated

import typer

from bakong_console.cli.context import cli_actor, open_engine
from bakong_console.cli.render import history_lines, payment_json, payment_line, payment_summary
from engine.clock import PHNOM_PENH
from engine.db.payments import PaymentFilter
from engine.errors import InvalidInput
from engine.money import check_currency, to_minor
from engine.records import PaymentStatus

app = typer.Typer(help="Find payments, check them with Bakong, and make operator decisions.", no_args_is_help=True)

PaymentRef = Annotated[str, typer.Argument(help="Payment id, MD5 or reference.")]


def _when(text: str | None, option: str) -> datetime | None:
    """A date (Asia/Phnom_Penh midnight) or an ISO time (UTC unless it says otherwise)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            return datetime.combine(day, time(0), PHNOM_PENH).astimezone(UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a date (YYYY-MM-DD) or an ISO time", field=option) from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _filter(
    status: list[str] | None, since: str | None, until: str | None, search: str | None, currency: str | None,
    amount: str | None, customer: str | None,
) -> PaymentFilter:  # fmt: skip
    statuses = []
    for item in status or []:
        for name in item.split(","):
            try:
                statuses.append(PaymentStatus(name.strip().upper()))
            except ValueError:
                known = ", ".join(s.value for s in PaymentStatus)
                raise InvalidInput(f"--status {name!r} is not one of {known}", field="status") from None
    code = check_currency(currency) if currency else None
    if amount is not None and code is None:
        raise InvalidInput("--amount needs --currency", field="amount")
    return PaymentFilter(
        statuses=tuple(statuses),
        created_from=_when(since, "--from"),
        created_to=_when(until, "--to"),
        text=search,
        currency=code,
        amount_minor=to_minor(amount, code) if amount is not None and code else None,
        customer_id=customer,
    )


StatusOpt = Annotated[list[str] | None, typer.Option("--status", "-s", help="Only these statuses (repeat or comma-separate).")]
FromOpt = Annotated[str | None, typer.Option("--from", help="Created at or after (YYYY-MM-DD local, or ISO time).")]
ToOpt = Annotated[str | None, typer.Option("--to", help="Created before (YYYY-MM-DD local, or ISO time).")]
SearchOpt = Annotated[str | None, typer.Option("--search", "-q", help="Reference, MD5, Bakong hash or id.")]
CurrencyOpt = Annotated[str | None, typer.Option("--currency", help="KHR or USD.")]
AmountOpt = Annotated[str | None, typer.Option("--amount", help="Exact amount (with --currency).")]
CustomerOpt = Annotated[str | None, typer.Option("--customer", help="Customer id.")]


@app.command("list")
def list_(
    ctx: typer.Context,
    status: StatusOpt = None,
    since: FromOpt = None,
    until: ToOpt = None,
    search: SearchOpt = None,
    currency: CurrencyOpt = None,
    amount: AmountOpt = None,
    customer: CustomerOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="Page size.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue after a previous page.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, then the next cursor.")] = False,
) -> None:
    """Payments, newest first (one page; the next page's cursor is printed last)."""
    flt = _filter(status, since, until, search, currency, amount, customer)

    async def run() -> None:
        async with open_engine(ctx) as engine:
            page, nxt = await engine.payments.search(flt, limit=limit, cursor=cursor)
        for p in page:
            typer.echo(json.dumps(payment_json(p)) if as_json else payment_line(p))
        if nxt:
            typer.echo(f"next: --cursor {nxt}", err=not as_json)

    asyncio.run(run())


@app.command("show")
def show(ctx: typer.Context, ref: PaymentRef, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every field of one payment and its status history."""

    async def run() -> None:
        async with open_engine(ctx) as engine:
            payment = await engine.payments.find(ref)
            changes = await engine.payments.history(payment.id)
        if as_json:
            data = payment_json(payment)
            data["history"] = [
                {"from": c.from_status, "to": c.to_status, "at": c.at.isoformat(), "actor": c.actor, "reason": c.reason} for c in changes
            ]
            data["bakong_record"] = payment.bakong_record
            typer.echo(json.dumps(data, indent=2))
            return
        typer.echo(payment_summary(payment))
        typer.echo(f"checks    {payment.check_count} (last: {payment.last_check_result or '-'})")
        typer.echo("history:")
        for line in history_lines(changes):
            typer.echo(f"  {line}")

    asyncio.run(run())


@app.command("check")
def check(
    ctx: typer.Context,
    ref: PaymentRef,
    request: Annotated[
        bool, typer.Option("--request", help="Only ask the poller to check it next (\"customer says paid\").")
    ] = False,
) -> None:
    """Ask Bakong about one payment now and apply the answer."""

    async def run() -> None:
        async with open_engine(ctx) as engine:
            payment = await engine.payments.find(ref)
            if request:
                payment = await engine.payments.request_check(payment.id, actor=cli_actor())
                typer.echo(f"{payment.id} {payment.status.value}: the poller checks it next")
                return
            payment, outcome = await engine.payments.check_now(payment.id, actor=cli_actor())
        typer.echo(f"{payment.id} {payment.status.value} (Bakong: {outcome.status.value}{': ' + outcome.message if outcome.message else ''})")

    asyncio.run(run())


@app.command("cancel")
def cancel(ctx: typer.Context, ref: PaymentRef, reason: Annotated[str, typer.Option("--reason")] = "cancelled by operator") -> None:
    """Cancel a PENDING payment."""

    async def run() -> None:
        async with open_engine(ctx) as engine:
            payment = await engine.payments.find(ref)
            payment = await engine.payments.cancel(payment.id, actor=cli_actor(), reason=reason)
        typer.echo(f"{payment.id} {payment.status.value}")

    asyncio.run(run())


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    ref: PaymentRef,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    accept: Annotated[bool, typer.Option("--accept/--reject", help="Accept as PAID, or reject (FAILED; refund outside).")] = True,
) -> None:
    """Decide a NEEDS_REVIEW or PAID_LATE payment."""

    async def run() -> None:
        async with open_engine(ctx) as engine:
            payment = await engine.payments.find(ref)
            payment = await engine.payments.resolve(payment.id, accept=accept, actor=cli_actor(), reason=reason)
        typer.echo(f"{payment.id} {payment.status.value}")

    asyncio.run(run())


@app.command("mark-paid")
def mark_paid(
    ctx: typer.Context,
    ref: PaymentRef,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    bakong_hash: Annotated[str | None, typer.Option("--hash", help="The Bakong transaction hash, if known.")] = None,
) -> None:
    """Mark a PENDING or TIMEOUT payment paid by hand (e.g. seen in the bank app)."""

    async def run() -> None:
        async with open_engine(ctx) as engine:
            payment = await engine.payments.find(ref)
            payment = await engine.payments.mark_paid(payment.id, actor=cli_actor(), reason=reason, bakong_hash=bakong_hash)
        typer.echo(f"{payment.id} {payment.status.value}")

    asyncio.run(run())


@app.command("export")
def export(
    ctx: typer.Context,
    status: StatusOpt = None,
    since: FromOpt = None,
    until: ToOpt = None,
    search: SearchOpt = None,
    currency: CurrencyOpt = None,
    amount: AmountOpt = None,
    customer: CustomerOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")] = None,
) -> None:
    """Matching payments as CSV."""
    flt = _filter(status, since, until, search, currency, amount, customer)

    async def run() -> int:
        async with open_engine(ctx) as engine:
            if output is None:
                return await engine.payments.export_csv(sys.stdout, flt)
            tmp = output.with_name(output.name + ".partial")
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                count = await engine.payments.export_csv(fh, flt)
            tmp.replace(output)
            return count

    count = asyncio.run(run())
    if output is not None:
        typer.echo(f"{count} payments written to {output}", err=True)
