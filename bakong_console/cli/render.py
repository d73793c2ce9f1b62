"""How the CLI prints payments: one summary block for people, a stable JSON shape for scripts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.clock import PHNOM_PENH
from engine.records import Payment, StatusChange

__all__ = ["local_time", "payment_json", "payment_line", "payment_summary", "history_lines"]


def local_time(dt: datetime | None) -> str:
    return dt.astimezone(PHNOM_PENH).strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


def payment_json(p: Payment) -> dict[str, Any]:
    def iso(dt: datetime | None) -> str | None:
        return dt.isoformat().replace("+00:00", "Z") if dt else None

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
        "created_at": iso(p.created_at),
        "expires_at": iso(p.expires_at),
        "paid_at": iso(p.paid_at),
        "check_count": p.check_count,
        "last_check_result": p.last_check_result,
    }


def payment_summary(p: Payment) -> str:
    lines = [
        f"payment   {p.id}",
        f"status    {p.status.value}",
        f"amount    {p.display_amount}",
        f"md5       {p.md5}",
        f"expires   {local_time(p.expires_at)} (Asia/Phnom_Penh)",
    ]
    if p.reference:
        lines.append(f"reference {p.reference}")
    if p.bakong_hash:
        lines.append(f"bakong    {p.bakong_hash}")
    if p.paid_at:
        lines.append(f"paid at   {local_time(p.paid_at)}")
    return "\n".join(lines)


def payment_line(p: Payment) -> str:
    return "\t".join(
        [p.id, p.status.value, p.display_amount, p.reference or "-", local_time(p.created_at), str(p.check_count), p.md5]
    )


def history_lines(changes: list[StatusChange]) -> list[str]:
    return [f"{local_time(c.at)}  {c.from_status or '-':>12} -> {c.to_status:<12} {c.actor}  {c.reason}" for c in changes]
