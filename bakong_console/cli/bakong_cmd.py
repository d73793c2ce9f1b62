"""`bakong-console bakong`: ask Bakong directly — a payment by MD5, an account, the token, a diagnosis."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bakong_console.cli.context import with_engine
from bakong_console.cli.render import echo_json
from bakong_console.times import local_time

if TYPE_CHECKING:
    from engine.bakong.budget import BudgetUsage
    from engine.bakong.token import TokenInfo
    from engine.runtime import Engine

app = typer.Typer(help="Talk to Bakong directly: check an MD5, an account, the token and its budget.", no_args_is_help=True)


@app.command("check")
def check(ctx: typer.Context, md5: Annotated[str, typer.Argument(help="The KHQR's MD5 (32 hex).")]) -> None:
    """What Bakong says about one MD5 right now (spends one request; changes no payment)."""
    outcome = with_engine(ctx, lambda engine: engine.client.check_payment(md5))
    tx = outcome.transaction
    if tx is None:
        typer.echo(f"{outcome.key} {outcome.status.value}{': ' + outcome.message if outcome.message else ''}")
        raise typer.Exit(0 if outcome.status.value in ("not_found", "static_qr", "failed") else 1)
    typer.echo(f"{outcome.key} paid {tx.amount} {tx.currency} to {tx.to_account_id} from {tx.from_account_id}")
    typer.echo(f"hash: {tx.hash}")
    typer.echo(f"at:   {local_time(tx.acknowledged_at or tx.created_at)}")
    raise typer.Exit(0)


@app.command("account")
def account(ctx: typer.Context, account_id: Annotated[str, typer.Argument(help="A Bakong account id, e.g. shop@aclb.")]) -> None:
    """Whether a Bakong account exists and can receive payments."""
    info = with_engine(ctx, lambda engine: engine.client.check_bakong_account(account_id))
    typer.echo(f"{info.account_id}: {'can receive payments' if info.can_take_payments else 'cannot receive payments'}")
    for label, value in (("name", info.full_name), ("status", info.account_status), ("kyc", info.kyc_status), ("frozen", info.frozen)):
        if value is not None:
            typer.echo(f"  {label}: {value}")
    raise typer.Exit(0 if info.can_take_payments else 1)


@app.command("token")
def token(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The environment, the token's expiry (read locally) and the requests used today."""

    async def token_state(engine: Engine) -> tuple[TokenInfo | None, BudgetUsage, dict[str, Any]]:
        info = engine.client.token_info()
        usage = await engine.client.budget_usage()
        return info, usage, {
            "environment": engine.client.environment,
            "base_url": engine.client.base_url if engine.sandbox is None else "built-in sandbox",
            "token": info.fingerprint if info else None,
            "expires_at": info.expires_at.isoformat() if info and info.expires_at else None,
            "days_left": info.days_left if info else None,
            "expired": info.expired if info else None,
            "requests_used_today": usage.used,
            "daily_budget": usage.budget,
            "requests_left_today": usage.remaining,
            "quota_exhausted_until": usage.exhausted_until.isoformat() if usage.exhausted_until else None,
        }

    info, usage, data = with_engine(ctx, token_state)
    if as_json:
        echo_json(data)
        return
    typer.echo(f"environment  {data['environment']} ({data['base_url']})")
    if info is None:
        typer.echo("token        none configured (set bakong.token or BAKONG_CONSOLE_BAKONG_TOKEN)")
    else:
        expiry = local_time(info.expires_at) if info.expires_at else "unknown (not a JWT)"
        state = "EXPIRED" if info.expired else f"{info.days_left} days left" if info.days_left is not None else ""
        typer.echo(f"token        {info.fingerprint}  expires {expiry} {state}".rstrip())
    typer.echo(f"requests     {usage.used} used, {usage.remaining} of {usage.budget} left today")
    if usage.exhausted_until:
        typer.echo(f"quota        spent until {local_time(usage.exhausted_until)}")


@app.command("renew-token")
def renew_token(
    ctx: typer.Context, email: Annotated[str | None, typer.Option("--email", help="Registered e-mail (default: bakong.email).")] = None
) -> None:
    """Ask Bakong for a new token by the registered e-mail; it is stored encrypted."""
    info = with_engine(ctx, lambda engine: engine.client.renew_token(email))
    expiry = local_time(info.expires_at) if info.expires_at else "unknown"
    typer.echo(f"renewed: token {info.fingerprint}, expires {expiry}")


@app.command("set-token")
def set_token(ctx: typer.Context) -> None:
    """Store a Bakong token read from standard input (encrypted at rest; never echoed)."""
    value = sys.stdin.readline().strip()
    if not value:
        typer.echo("error: no token on standard input", err=True)
        raise typer.Exit(2)

    info = with_engine(ctx, lambda engine: engine.client.set_token(value))
    typer.echo(f"stored: token {info.fingerprint}")


@app.command("diagnose")
def diagnose(ctx: typer.Context) -> None:
    """One line: geo-blocked, unauthorized, out of quota, unreachable, or fine (exit 0 only when fine)."""
    result = with_engine(ctx, lambda engine: engine.client.diagnose())
    typer.echo(f"{result.kind.value}: {result.sentence}")
    raise typer.Exit(0 if result.ok else 1)
