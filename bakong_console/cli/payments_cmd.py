"""`bakong-console payments`: list, show, card, check, cancel, resolve, mark paid, export."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from bakong_console.cli.context import CursorOpt, JsonLinesOpt, LimitOpt, cli_actor, day_or_time, with_engine
from bakong_console.cli.render import echo_json, echo_page, history_block, history_json, payment_json, payment_line, payment_summary
from engine.db.payments import PaymentFilter
from engine.errors import InvalidInput
from engine.money import check_currency, to_minor
from engine.records import Payment, PaymentStatus, StatusChange
from engine.services.cards import card_format_of, payment_card, write_file_whole

if TYPE_CHECKING:
    from engine.runtime import Engine

T = TypeVar("T")

app = typer.Typer(help="Find payments, check them with Bakong, and make operator decisions.", no_args_is_help=True)

PaymentRef = Annotated[str, typer.Argument(help="Payment id, MD5 or reference.")]


def _when(text: str | None, option: str) -> datetime | None:
    """A date (Asia/Phnom_Penh midnight) or an ISO time (UTC unless it says otherwise)."""
    if text is None:
        return None
    try:
        return day_or_time(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a date (YYYY-MM-DD) or an ISO time", field=option) from None


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


def _on_payment(ctx: typer.Context, ref: str, act: Callable[[Engine, str], Awaitable[T]]) -> T:
    """Find the payment ``ref`` names (id, MD5 or reference), then act on it by id, in one engine session."""

    async def run(engine: Engine) -> T:
        payment = await engine.payments.find(ref)
        return await act(engine, payment.id)

    return with_engine(ctx, run)


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
    limit: LimitOpt = 50,
    cursor: CursorOpt = None,
    as_json: JsonLinesOpt = False,
) -> None:
    """Payments, newest first (one page; the next page's cursor is printed last)."""
    flt = _filter(status, since, until, search, currency, amount, customer)
    page, nxt = with_engine(ctx, lambda engine: engine.payments.search(flt, limit=limit, cursor=cursor))
    echo_page(page, nxt, as_json=as_json, json_of=payment_json, line_of=payment_line)


@app.command("show")
def show(ctx: typer.Context, ref: PaymentRef, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every field of one payment and its status history."""

    async def find_with_history(engine: Engine) -> tuple[Payment, list[StatusChange]]:
        payment = await engine.payments.find(ref)
        return payment, await engine.payments.history(payment.id)

    payment, changes = with_engine(ctx, find_with_history)
    if as_json:
        data = payment_json(payment)
        # Unlike every other time in the CLI's JSON, these have always been written +00:00 (not Z);
        # kept so that scripts reading them see the same bytes.
        data["history"] = history_json(changes, at=datetime.isoformat)
        data["bakong_record"] = payment.bakong_record
        echo_json(data)
        return
    typer.echo(payment_summary(payment))
    typer.echo(f"checks    {payment.check_count} (last: {payment.last_check_result or '-'})")
    for line in history_block(changes):
        typer.echo(line)


@app.command("card")
def card(
    ctx: typer.Context,
    ref: PaymentRef,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The card file: FILE.png or FILE.svg (the format follows the extension).")],
    size: Annotated[int | None, typer.Option("--size", metavar="PIXELS", help="Width in pixels: PNG up to 4000 (default 600); SVG: the width it asks for.")] = None,
) -> None:
    """Save the payment's KHQR card (what the payer scans) as PNG or SVG, written whole."""
    fmt = card_format_of(output)
    payment = _on_payment(ctx, ref, lambda engine, payment_id: engine.payments.get(payment_id))
    write_file_whole(output, payment_card(payment, fmt, size=size).data)
    typer.echo(f"{fmt.upper()}:  {output}")


@app.command("check")
def check(
    ctx: typer.Context,
    ref: PaymentRef,
    request: Annotated[
        bool, typer.Option("--request", help="Only ask the poller to check it next (\"customer says paid\").")
    ] = False,
) -> None:
    """Ask Bakong about one payment now and apply the answer."""
    if request:
        payment = _on_payment(ctx, ref, lambda engine, payment_id: engine.payments.request_check(payment_id, actor=cli_actor()))
        typer.echo(f"{payment.id} {payment.status.value}: the poller checks it next")
        return
    payment, outcome = _on_payment(ctx, ref, lambda engine, payment_id: engine.payments.check_now(payment_id, actor=cli_actor()))
    typer.echo(f"{payment.id} {payment.status.value} (Bakong: {outcome.status.value}{': ' + outcome.message if outcome.message else ''})")


@app.command("cancel")
def cancel(ctx: typer.Context, ref: PaymentRef, reason: Annotated[str, typer.Option("--reason")] = "cancelled by operator") -> None:
    """Cancel a PENDING payment."""
    payment = _on_payment(ctx, ref, lambda engine, payment_id: engine.payments.cancel(payment_id, actor=cli_actor(), reason=reason))
    typer.echo(f"{payment.id} {payment.status.value}")


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    ref: PaymentRef,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    accept: Annotated[bool, typer.Option("--accept/--reject", help="Accept as PAID, or reject (FAILED; refund outside).")] = True,
) -> None:
    """Decide a NEEDS_REVIEW or PAID_LATE payment."""
    payment = _on_payment(
        ctx, ref, lambda engine, payment_id: engine.payments.resolve(payment_id, accept=accept, actor=cli_actor(), reason=reason)
    )
    typer.echo(f"{payment.id} {payment.status.value}")


@app.command("mark-paid")
def mark_paid(
    ctx: typer.Context,
    ref: PaymentRef,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    bakong_hash: Annotated[str | None, typer.Option("--hash", help="The Bakong transaction hash, if known.")] = None,
) -> None:
    """Mark a PENDING or TIMEOUT payment paid by hand (e.g. seen in the bank app)."""
    payment = _on_payment(
        ctx, ref, lambda engine, payment_id: engine.payments.mark_paid(payment_id, actor=cli_actor(), reason=reason, bakong_hash=bakong_hash)
    )
    typer.echo(f"{payment.id} {payment.status.value}")


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

    async def write(engine: Engine) -> int:
        if output is None:
            return await engine.payments.export_csv(sys.stdout, flt)
        tmp = output.with_name(output.name + ".partial")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            count = await engine.payments.export_csv(fh, flt)
        tmp.replace(output)
        return count

    count = with_engine(ctx, write)
    if output is not None:
        typer.echo(f"{count} payments written to {output}", err=True)
