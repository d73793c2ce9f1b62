"""How the CLI prints what the engine returns: one block or one tab-separated line per record for
people, a stable JSON shape for scripts, and the pieces every command prints the same way (times,
status history, a page of a list with its next cursor)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import typer

from bakong_console.times import local_time
from engine.records import Payment, PaymentStatus, ReconcileStatus, StatusChange

__all__ = [
    "echo_json",
    "echo_page",
    "history_block",
    "history_json",
    "iso_utc",
    "payment_json",
    "payment_line",
    "payment_summary",
]

Row = TypeVar("Row")


def iso_utc(dt: datetime | None) -> str | None:
    """A time in JSON output: ISO 8601 in UTC, written with a Z."""
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def echo_json(data: Any) -> None:
    """One record (or a list) as indented JSON on standard output."""
    typer.echo(json.dumps(data, indent=2))


def echo_page(
    rows: Iterable[Row],
    next_cursor: str | None,
    *,
    as_json: bool,
    json_of: Callable[[Row], dict[str, Any]],
    line_of: Callable[[Row], str],
    json_cursor_on_stdout: bool = True,
) -> None:
    """One page of a list: a line per row (a JSON line with --json), then the next page's cursor.

    The cursor goes to standard error under columns, so they stay clean to pipe; with --json it
    follows the JSON lines on standard output unless the command says otherwise."""
    for row in rows:
        typer.echo(json.dumps(json_of(row)) if as_json else line_of(row))
    if next_cursor:
        typer.echo(f"next: --cursor {next_cursor}", err=not (as_json and json_cursor_on_stdout))


def payment_json(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "status": p.status.value,
        "amount": str(p.amount),
        "currency": p.currency,
        "reference": p.reference,
        "bill_number": p.bill_number,
        "customer_id": p.customer_id,
        "description": p.description,
        "md5": p.md5,
        "khqr": p.khqr,
        "deep_link": p.deep_link,
        "bakong_hash": p.bakong_hash,
        "created_at": iso_utc(p.created_at),
        "expires_at": iso_utc(p.expires_at),
        "paid_at": iso_utc(p.paid_at),
        "check_count": p.check_count,
        "last_check_result": p.last_check_result,
        "reconcile_status": p.reconcile_status,
        "reconciled_at": iso_utc(p.reconciled_at),
    }


def reconciliation_text(p: Payment) -> str | None:
    """What reconciliation with Bakong found for a paid payment (None for any other status)."""
    if p.status not in (PaymentStatus.PAID, PaymentStatus.PAID_LATE):
        return None
    if p.reconcile_status is None:
        return "not yet checked"
    if p.reconcile_status == ReconcileStatus.OK.value:
        return f"reconciled {local_time(p.reconciled_at)}"
    return f"FLAGGED {p.reconcile_status.replace('_', ' ')} ({local_time(p.reconciled_at)})"


def payment_summary(p: Payment) -> str:
    lines = [
        f"payment   {p.id}",
        f"status    {p.status.value}",
        f"amount    {p.display_amount}",
        f"md5       {p.md5}",
        f"expires   {local_time(p.expires_at)}",
    ]
    if p.reference:
        lines.append(f"reference {p.reference}")
    if p.bakong_hash:
        lines.append(f"bakong    {p.bakong_hash}")
    if p.paid_at:
        lines.append(f"paid at   {local_time(p.paid_at)}")
    reconciled = reconciliation_text(p)
    if reconciled:
        lines.append(f"reconcile {reconciled}")
    return "\n".join(lines)


def payment_line(p: Payment) -> str:
    return "\t".join(
        [p.id, p.status.value, p.display_amount, p.reference or "-", local_time(p.created_at), str(p.check_count), p.md5]
    )


def history_block(changes: list[StatusChange]) -> list[str]:
    """The status history under a `show`: a heading, then one indented line per change."""
    return [
        "history:",
        *(f"  {local_time(c.at)}  {c.from_status or '-':>12} -> {c.to_status:<12} {c.actor}  {c.reason}" for c in changes),
    ]


def history_json(changes: list[StatusChange], *, at: Callable[[datetime], str | None] = iso_utc) -> list[dict[str, Any]]:
    """The status history in a `show --json`."""
    return [{"from": c.from_status, "to": c.to_status, "at": at(c.at), "actor": c.actor, "reason": c.reason} for c in changes]
