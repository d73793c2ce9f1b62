"""`bakong-console sandbox`: run the Bakong sandbox standalone, pay a KHQR in it, set its faults."""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bakong_console.cli.context import state
from engine.errors import InvalidInput

if TYPE_CHECKING:
    from engine.bakong.sandbox import SandboxControl

app = typer.Typer(help="The Bakong sandbox: serve it, pay a KHQR in it, inject faults, read its counters.", no_args_is_help=True)

UrlOption = Annotated[str, typer.Option("--url", help="The running sandbox to talk to.")]
DEFAULT_EMAIL = "merchant@example.com"
#: Where ``sandbox serve`` listens by default (kept here so the CLI starts without the sandbox's imports).
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8787"


def _control(url: str) -> SandboxControl:
    from engine.bakong.sandbox import SandboxControl

    return SandboxControl(url)


def _token_file(store: Path) -> Path:
    return store.with_name(store.name + ".token")


def _load_token(store: Path | None) -> str | None:
    if store is None:
        return None
    path = _token_file(store)
    if not path.exists():
        return None
    return path.read_text(encoding="utf-8").strip() or None


def _save_token(store: Path, token: str) -> None:
    path = _token_file(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)


@app.command("serve")
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8787,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Keep transfers in this JSON-lines file (and the token beside it); default: memory."),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", help="The token to accept (default: sandbox.token, else one it issues).")] = None,
    email: Annotated[str | None, typer.Option("--email", help="The e-mail renew_token accepts (default: bakong.email).")] = None,
    quota: Annotated[int | None, typer.Option("--quota", help="Daily requests per token before errorCode 17 (0: unlimited).")] = None,
    bulk_blocked: Annotated[bool, typer.Option("--bulk-blocked", help="Answer the MD5-list endpoint with an nginx 403.")] = False,
    geo_blocked: Annotated[bool, typer.Option("--geo-blocked", help="Answer every /v1 path with an nginx 403.")] = False,
) -> None:
    """Serve the sandbox over HTTP until interrupted; prints its URL and token."""
    from engine.bakong.sandbox import (
        FileTransferStore,
        InMemoryTransferStore,
        SandboxFaults,
        create_sandbox_app,
        serve_forever,
    )
    from engine.clock import SystemClock

    settings = state(ctx).settings()
    faults = SandboxFaults.from_settings(settings.sandbox)
    changes: dict[str, Any] = {}
    if quota is not None:
        changes["daily_quota"] = quota
    if bulk_blocked:
        changes["bulk_blocked"] = True
    if geo_blocked:
        changes["geo_blocked"] = True
    faults = faults.updated(changes)
    transfers = FileTransferStore(store) if store is not None else InMemoryTransferStore()
    accepted = token or settings.sandbox.token or _load_token(store)
    address = email or settings.bakong.email or DEFAULT_EMAIL

    async def keep_token(new_token: str) -> None:
        if store is not None:
            _save_token(store, new_token)

    sandbox_app = create_sandbox_app(
        transfers, clock=SystemClock(), token=accepted, email=address, faults=faults, on_token_renewed=keep_token
    )
    sandbox = sandbox_app.state.sandbox
    if store is not None and token is None and not settings.sandbox.token:
        _save_token(store, sandbox.token)
    shown_host = f"[{host}]" if ":" in host else host
    typer.echo(f"Bakong sandbox: http://{shown_host}:{port}")
    typer.echo(f"token: {sandbox.token}")
    typer.echo(f"email: {address}")
    typer.echo(f"transfers: {store if store is not None else 'memory (lost on exit)'}")
    hint = "" if (host, port) == ("127.0.0.1", 8787) else f" --url http://{shown_host}:{port}"
    typer.echo(f"pay a KHQR with: bakong-console sandbox pay QR{hint}")
    serve_forever(sandbox_app, host=host, port=port, log_level="warning" if state(ctx).verbosity == 0 else "info")


@app.command("pay")
def pay(
    ctx: typer.Context,
    qr: Annotated[str | None, typer.Argument(help="The KHQR string to pay, as a bank app would.")] = None,
    md5: Annotated[str | None, typer.Option("--md5", help="Pay this MD5 instead of a QR (needs --amount, --currency, --to).")] = None,
    amount: Annotated[str | None, typer.Option("--amount", help="Amount to pay (a static QR needs one).")] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="KHR or USD (with --md5).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Receiving Bakong account (overrides the QR's: a wrong account).")] = None,
    wrong_amount: Annotated[bool, typer.Option("--wrong-amount", help="Pay one unit less than asked.")] = False,
    late: Annotated[float | None, typer.Option("--late", help="Pay this many seconds after the QR expired.")] = None,
    payer: Annotated[str | None, typer.Option("--from", help="The payer's Bakong account (default: a bank's pooled account).")] = None,
    fail: Annotated[bool, typer.Option("--fail", help="Record a transfer that failed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the transfer as JSON.")] = False,
    url: Annotated[
        str | None,
        typer.Option("--url", help="A running sandbox to pay in (default: the built-in sandbox of the configured engine)."),
    ] = None,
) -> None:
    """Pay a KHQR (or an MD5) in the sandbox and print the transfer Bakong will report.

    Without ``--url`` it pays in the engine's built-in sandbox (the one the console and the daemon
    poll when ``bakong.environment`` is "sandbox" without a base_url)."""
    if (qr is None) == (md5 is None):
        raise InvalidInput("give either a KHQR or --md5")
    if amount is not None:
        try:
            Decimal(amount)
        except ArithmeticError:
            raise InvalidInput(f"--amount {amount!r} is not a number", field="amount") from None

    async def run() -> dict[str, Any]:
        if url is None:
            return await _pay_embedded(
                ctx, qr=qr, md5=md5, amount=amount, currency=currency, to_account=to, wrong_amount=wrong_amount,
                late_seconds=late, from_account=payer, fail=fail,
            )
        async with _control(url) as control:
            return await control.pay(
                qr=qr, md5=md5, amount=amount, currency=currency, to_account=to, wrong_amount=wrong_amount,
                late_seconds=late, from_account=payer, fail=fail,
            )

    transfer = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(transfer, indent=2))
        return
    status = "failed" if str(transfer.get("tracking_status", "")).startswith("FAILED") else "paid"
    typer.echo(f"{status} {transfer['amount']} {transfer['currency']} to {transfer['to_account']} from {transfer['from_account']}")
    typer.echo(f"hash: {transfer['hash']}")
    typer.echo(f"md5: {transfer['md5']}")
    typer.echo(f"external ref: {transfer['external_ref']}")
    if not transfer.get("visible", True):
        typer.echo(f"visible to lookups from {transfer['created_ms']} ms (paid late)")
    if transfer.get("static_qr"):
        typer.echo("static QR: Bakong cannot find this payment by MD5")


async def _pay_embedded(ctx: typer.Context, **pay: Any) -> dict[str, Any]:
    from engine.runtime import Engine

    settings = state(ctx).settings()
    if not (settings.is_sandbox and not settings.bakong.base_url):
        raise InvalidInput(
            f"bakong.environment is {settings.bakong.environment!r}{' with a base_url' if settings.bakong.base_url else ''}: "
            "there is no built-in sandbox to pay in; give --url of a running sandbox"
        )
    async with Engine.open(settings) as engine:
        assert engine.sandbox is not None
        transfer = await engine.sandbox.pay(**pay)
        now_ms = int(engine.clock.now().timestamp() * 1000)
    record = transfer.to_record()
    record["visible"] = transfer.created_ms <= now_ms
    return record


@app.command("faults")
def faults(
    settings_: Annotated[list[str] | None, typer.Argument(metavar="[KEY=VALUE]...", help="Faults to set, e.g. bulk_blocked=true error_rate=0.2.")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Clear every fault first.")] = False,
    url: UrlOption = DEFAULT_SANDBOX_URL,
) -> None:
    """Show the running sandbox's faults, or change them."""
    changes: dict[str, Any] = {}
    for item in settings_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"expected KEY=VALUE, got {item!r}")
        changes[key.strip()] = value.strip()

    async def run() -> dict[str, Any]:
        async with _control(url) as control:
            return await control.faults(changes if changes or reset else None, reset=reset)

    typer.echo(json.dumps(asyncio.run(run()), indent=2))


@app.command("stats")
def stats(url: UrlOption = DEFAULT_SANDBOX_URL) -> None:
    """Print the running sandbox's request counters per endpoint."""

    async def run() -> dict[str, Any]:
        async with _control(url) as control:
            return await control.stats()

    typer.echo(json.dumps(asyncio.run(run()), indent=2))
