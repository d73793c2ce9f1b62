"""`bakong-console pay`: create a payment, show its KHQR, and optionally wait until it is paid."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from bakong_console.cli.context import cli_actor, open_engine, state
from bakong_console.cli.render import payment_json, payment_summary
from engine.records import PaymentStatus


def pay(
    ctx: typer.Context,
    amount: Annotated[str, typer.Option("--amount", "-a", help="Amount in major units: 12.50 USD, 5000 KHR.")],
    currency: Annotated[str | None, typer.Option("--currency", help="KHR or USD (default: the payments.currency setting).")] = None,
    reference: Annotated[
        str | None, typer.Option("--reference", "-r", help="Your reference; repeating it returns the same payment.")
    ] = None,
    bill_number: Annotated[str | None, typer.Option("--bill-number", help="Bill number written into the KHQR.")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="Customer id, for search.")] = None,
    description: Annotated[str | None, typer.Option("--description", "--note", help="A note kept with the payment.")] = None,
    timeout: Annotated[int | None, typer.Option("--timeout", help="Minutes until the KHQR expires.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Watch until paid or expired; exit 0 only when paid.")] = False,
    wait_seconds: Annotated[float | None, typer.Option("--wait-seconds", help="Give up waiting after this long.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the payment as JSON instead of the QR.")] = False,
) -> None:
    """Create a KHQR payment and print its QR and MD5."""
    settings = state(ctx).settings()
    code = currency or settings.payments.currency

    async def run() -> int:
        async with open_engine(ctx, run_workers=wait) as engine:
            created = await engine.payments.initiate(
                amount, code, actor=cli_actor(), reference=reference, idempotency_key=reference, bill_number=bill_number,
                customer_id=customer, description=description, timeout_minutes=timeout,
            )  # fmt: skip
            payment = created.payment
            if as_json:
                typer.echo(json.dumps(payment_json(payment), indent=2))
            else:
                from engine.khqr import caption_for, render_terminal

                typer.echo(render_terminal(payment.khqr, caption=caption_for(payment.khqr)))
                typer.echo(payment_summary(payment))
                if not created.created:
                    typer.echo(f"(reference {reference!r} was already used: this is that payment)")
                if engine.sandbox is not None:
                    typer.echo(f"SANDBOX: pay it with `bakong-console sandbox pay {payment.khqr}`")
            if not wait:
                return 0
            if payment.status is PaymentStatus.PENDING:
                limit = wait_seconds
                if limit is None:
                    limit = max(0.0, (payment.expires_at - engine.clock.now()).total_seconds()) + 5.0
                typer.echo("waiting for the payment...", err=True)
                payment = await engine.payments.monitor(payment.id, timeout=limit)
                if payment.status is PaymentStatus.PENDING:
                    # monitor returns a PENDING payment only when the wait ran out.
                    typer.echo(f"{payment.id} PENDING (timed out after {limit:g} s of waiting)")
                    typer.echo(
                        f"error: timed out after {limit:g} s waiting: payment {payment.id} is still PENDING, not PAID "
                        "(still checked with Bakong: `bakong-console payments show` it later)",
                        err=True,
                    )
                    return 1
            typer.echo(f"{payment.id} {payment.status.value}")
            if payment.status is PaymentStatus.PAID:
                return 0
            typer.echo(f"error: payment {payment.id} is {payment.status.value}, not PAID", err=True)
            return 1

    raise typer.Exit(asyncio.run(run()))
