"""`bakong-console setup`: going live, guided — the console's setup screen in a terminal, plain
prompts with ``--plain`` or when standard input is not a terminal, no questions with ``--yes``.

Every answer is also a flag, so a script can run it; the questions, their rules and the writing
are ``engine.services.setup``'s (one ``SetupSession``), the faces only ask and print. The token
never travels in argv (it would show in ``ps``): ``--token-file FILE`` or
``$BAKONG_CONSOLE_BAKONG_TOKEN``, or typed without echo. ``first_run`` is the console's trigger.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

from bakong_console.cli.context import state
from engine.errors import InvalidInput
from engine.hours import WEEKDAYS

if TYPE_CHECKING:  # the setup service (httpx, the database) loads only when setup runs
    from engine.bakong.models import Diagnosis
    from engine.services.setup import FieldCheck, SetupField, SetupResult, SetupSession

__all__ = ["first_run", "setup"]

Option = typer.Option

#: Flag -> setup question (the token's flag is a file, read below).
_FLAG_FIELDS = {
    "environment": "environment",
    "base_url": "base_url",
    "email": "email",
    "merchant_type": "merchant.type",
    "merchant_name": "merchant.name",
    "city": "merchant.city",
    "account": "merchant.bakong_account_id",
    "merchant_id": "merchant.merchant_id",
    "acquiring_bank": "merchant.acquiring_bank",
    "account_information": "merchant.account_information",
    "mobile_number": "merchant.mobile_number",
    "store_label": "merchant.store_label",
    "terminal_label": "merchant.terminal_label",
    "category_code": "merchant.merchant_category_code",
    "currency": "currency",
    "database": "database",
    "data_key_file": "data_key_file",
    "expected_payments_per_day": "hours.expected_payments_per_day",
}


def _hours_flags(values: list[str]) -> dict[str, str]:
    """``--hours mon=08:00-20:00``, ``--hours sat,sun=closed``, ``--hours mon-fri=09:00-17:00``."""
    out: dict[str, str] = {}
    for item in values:
        days, sep, hours = item.partition("=")
        if not sep:
            raise InvalidInput(f"--hours {item!r}: write DAY=HOURS, e.g. mon=08:00-20:00 or sun=closed", field="hours")
        for part in days.lower().split(","):
            part = part.strip()
            first, dash, last = part.partition("-")
            if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
                raise InvalidInput(f"--hours {item!r}: {part!r} is not a weekday ({', '.join(WEEKDAYS)})", field="hours")
            span = WEEKDAYS[WEEKDAYS.index(first) : WEEKDAYS.index(last) + 1] if dash else (first,)
            if not span:
                raise InvalidInput(f"--hours {item!r}: {part!r} runs backwards", field="hours")
            for day in span:
                out[f"hours.{day}"] = hours.strip()
    return out


def setup(
    ctx: typer.Context,
    environment: Annotated[str | None, Option("--environment", help="production, nbc-test or custom.")] = None,
    base_url: Annotated[str | None, Option("--base-url", help="Your relay inside Cambodia (or the custom environment's URL).")] = None,
    token_file: Annotated[Path | None, Option("--token-file", help="File holding the Bakong token (or $BAKONG_CONSOLE_BAKONG_TOKEN); - reads standard input.")] = None,
    email: Annotated[str | None, Option("--email", help="Registered e-mail: the token renews itself with it.")] = None,
    merchant_type: Annotated[str | None, Option("--merchant-type", help="individual (tag 29) or merchant (tag 30).")] = None,
    merchant_name: Annotated[str | None, Option("--merchant-name", help="Shown to the payer (at most 25 characters).")] = None,
    city: Annotated[str | None, Option("--city", help="At most 15 characters.")] = None,
    account: Annotated[str | None, Option("--account", help="Your Bakong account id, name@bank (checked with Bakong).")] = None,
    merchant_id: Annotated[str | None, Option("--merchant-id", help="Merchant id (type merchant).")] = None,
    acquiring_bank: Annotated[str | None, Option("--acquiring-bank", help="Acquiring bank (type merchant).")] = None,
    account_information: Annotated[str | None, Option("--account-information", help="Individual: optional account information.")] = None,
    mobile_number: Annotated[str | None, Option("--mobile-number")] = None,
    store_label: Annotated[str | None, Option("--store-label")] = None,
    terminal_label: Annotated[str | None, Option("--terminal-label")] = None,
    category_code: Annotated[str | None, Option("--category-code", help="Merchant category code, 4 digits.")] = None,
    currency: Annotated[str | None, Option("--currency", help="KHR or USD for new payments.")] = None,
    database: Annotated[str | None, Option("--database", help="sqlite (embedded) or a postgresql:// URL (tested now).")] = None,
    data_key_file: Annotated[str | None, Option("--data-key-file", help="Where the data key is kept (made when missing, 0600).")] = None,
    hours: Annotated[list[str] | None, Option("--hours", help="Opening hours: mon=08:00-20:00, sat,sun=closed, mon-fri=... (repeat).")] = None,
    expected_payments_per_day: Annotated[str | None, Option("--expected-payments-per-day", metavar="N", help="About how many KHQR payments on a normal open day (plans the first day's checks).")] = None,
    yes: Annotated[bool, Option("--yes", "-y", help="Ask nothing: flags, then current values, then defaults.")] = False,
    plain: Annotated[bool, Option("--plain", help="Plain prompts instead of the setup screen.")] = False,
    force: Annotated[bool, Option("--force", help="Replace an existing config file (its values are the defaults).")] = False,
    show_data_key: Annotated[bool, Option("--show-data-key", help="Print the data key (to keep a copy somewhere safe).")] = False,
) -> None:
    """Write the configuration for real Bakong: merchant, token, database, data key, opening hours."""
    from engine.services.setup import SetupSession, read_token_file

    session = SetupSession.for_config(state(ctx).config_path, force=force)
    session.refuse_overwrite()
    answers = session.defaults()
    flags = locals()
    given = {field: flags[flag].strip() for flag, field in _FLAG_FIELDS.items() if flags[flag] is not None}
    given.update(_hours_flags(hours or []))
    if token_file is not None:
        given["token"] = sys.stdin.readline().strip() if str(token_file) == "-" else read_token_file(token_file)
    answers.update(given)
    verdict = None
    if yes:
        result = asyncio.run(session.save(answers))
    elif plain or not sys.stdin.isatty():
        result = _plain(session, answers)
    else:
        from bakong_console.tui.setup_app import run_setup_app

        outcome = run_setup_app(session, answers)
        if outcome is None:
            typer.echo("setup: nothing written", err=True)
            raise typer.Exit(1)
        result, verdict = outcome
    _report(session, result, show_data_key=show_data_key, verdict=verdict)


def first_run(ctx: typer.Context) -> bool:
    """The console's trigger (``setup_reason``): in a terminal, open the setup screen first.

    Returns True when setup ran and wrote the file (the console then opens on it); False when no
    setup is needed. Without a terminal the console cannot run anyway: the reason is the error.
    """
    from engine.services.setup import SetupSession, setup_reason

    config = state(ctx).config_path
    reason = setup_reason(config)
    if reason is None:
        return False
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidInput(f"{reason}: run `bakong-console setup` (or `setup --yes` with flags)")
    from bakong_console.tui.setup_app import run_setup_app

    session = SetupSession.for_config(config, force=True)
    answers = session.defaults()
    outcome = run_setup_app(session, answers, reason=reason)
    if outcome is None:
        typer.echo(f"setup: nothing written ({reason})", err=True)
        raise typer.Exit(1)
    result, verdict = outcome
    _report(session, result, show_data_key=False, verdict=verdict)
    cli = state(ctx)
    cli.config_path = cli.config_path or str(result.config_path)
    cli._settings = None
    return True


# --- plain prompts ----------------------------------------------------------------------------------


def _read_secret(prompt: str) -> str:
    """Without echo in a terminal; from a pipe, a plain line (getpass would read the terminal)."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    click.echo(prompt, nl=False)
    line = sys.stdin.readline()
    if not line:
        raise click.Abort()
    click.echo()
    return line.strip()


def _ask(field: SetupField, default: str) -> str:
    if field.secret:
        shown = " [keep current]" if default else ""
        value = _read_secret(f"  {field.label}{shown}: ").strip()
        return value or default
    choices = f" ({'/'.join(field.choices)})" if field.choices else ""
    return str(click.prompt(f"  {field.label}{choices}", default=default, show_default=bool(default))).strip()


def _mark(check: FieldCheck) -> None:
    if check.error:
        click.echo(f"    ✗ {check.error}")
    elif check.note:
        click.echo(f"    {'!' if check.warning else '✓'} {check.note}")


def _plain(session: SetupSession, answers: dict[str, str]) -> SetupResult:
    from engine.services.setup import SETUP_FIELDS

    click.echo(f"Setting up {session.path} (Enter keeps the value in brackets).")
    section = ""
    for field in SETUP_FIELDS:
        if not any(f.name == field.name for f in session.applicable(answers)):
            continue
        if field.section != section:
            section = field.section
            if section == "Database":
                _preview(session, answers)
            click.echo(f"\n{section}")
        if field.hint:
            click.echo(f"  ({field.hint})")
        while True:
            answers[field.name] = _ask(field, answers.get(field.name, ""))
            check = session.check(field.name, answers)
            if check.ok and field.name == "merchant.bakong_account_id":
                check = asyncio.run(session.check_account(answers))
            elif check.ok and field.name == "database":
                check = asyncio.run(session.check_database(answers))
            _mark(check)
            if check.ok:
                answers[field.name] = check.value
                break
    click.echo()
    if not click.confirm(f"Write {session.path}?", default=True):
        raise InvalidInput("setup: nothing written")
    return asyncio.run(session.save(answers))


def _preview(session: SetupSession, answers: Mapping[str, str]) -> None:
    from engine.khqr import render_terminal

    result = session.preview(answers)
    merchant = session.merchant_of(answers)
    click.echo("\nThe KHQR your customers will scan (no amount: each payment adds its own):")
    if result is not None:
        click.echo(render_terminal(result.qr))
    click.echo(f"  {merchant.name} · {merchant.city or 'Phnom Penh'} · {answers.get('currency', 'KHR')} · {merchant.bakong_account_id}")


# --- the report ---------------------------------------------------------------------------------


def _report(
    session: SetupSession, result: SetupResult, *, show_data_key: bool, verdict: tuple[Diagnosis, str] | None = None
) -> None:
    settings = result.settings
    typer.echo(f"wrote {result.config_path} (0600)")
    token = result.checks.get("token")
    if token is not None and token.note:
        typer.echo(f"token: {token.note}")
    account = result.checks.get("merchant.bakong_account_id")
    if account is not None and account.note:
        typer.echo(f"account: {account.note}")
    if result.data_key_file is not None:
        if result.data_key_created:
            typer.echo(f"data key: new, in {result.data_key_file} (0600); back it up: without it the stored secrets are lost")
        else:
            typer.echo(f"data key: kept, in {result.data_key_file}")
        if show_data_key:
            typer.echo(f"data key: {result.data_key_file.read_text(encoding='utf-8').splitlines()[0].strip()}")
    typer.echo(f"database: {result.database_note}")
    diagnosis, advice = verdict or asyncio.run(session.diagnose(settings))
    typer.echo(f"bakong: {diagnosis.kind.value}: {diagnosis.sentence}")
    if advice:
        typer.echo(f"  → {advice}")
    typer.echo("next: `bakong-console doctor`, then `bakong-console serve` (or `bakong-console` for the console)")
