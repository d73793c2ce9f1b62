"""The Z report: a closed day as plain text 42 columns wide (a receipt printer's line), and as
CSV for the accountant. Amounts are exact and per currency.

Shared by two faces, like ``times``: ``close-day`` prints it and the console's close-day dialog
shows it, so both say the same thing about a closed day."""

from __future__ import annotations

import csv
import io
import textwrap
from typing import Any

from bakong_console.times import local_time
from engine.money import format_amount
from engine.report_records import OPEN_STATUSES, DayClose

__all__ = ["WIDTH", "close_csv", "receipt"]

WIDTH = 42


def _pair(left: str, right: str) -> str:
    room = WIDTH - len(right) - 1
    return f"{left[:room]:<{room}} {right}"


def receipt(c: DayClose) -> str:
    """The close as lines of at most 42 characters."""
    rule, thin = "=" * WIDTH, "-" * WIDTH
    lines = [rule, f"Z REPORT {c.day.isoformat()}".center(WIDTH), "Asia/Phnom_Penh calendar day".center(WIDTH), rule]
    lines += [_pair("Closed", local_time(c.closed_at)), *textwrap.wrap(f"By {c.closed_by}", WIDTH)]
    if c.forced:
        lines += textwrap.wrap(f"FORCED: {c.reason or ''}", WIDTH)
    lines += [thin, "PAID TOTALS"]
    lines += [_pair(f"{t.currency} {t.paid_count} of {t.payments}", format_amount(t.paid_minor, t.currency)) for t in c.totals] or ["no payments"]
    lines += [thin, "BY TERMINAL"]
    lines += [_pair(f"{g.key or 'api/cli'} {g.currency} {g.paid_count}", format_amount(g.paid_minor, g.currency)) for g in c.terminals] or ["-"]
    lines += [thin, "STATUS MIX"]
    lines += [_pair(f"{s.status} {s.currency} {s.count}", format_amount(s.amount_minor, s.currency)) for s in c.statuses] or ["-"]
    if c.open_items:
        # a payment id takes most of a line: it stands alone, its status and amount below it
        waiting = sum(s.count for s in c.statuses if s.status in OPEN_STATUSES)
        shown = len(c.open_items)
        lines += [thin, f"OPEN AT CLOSE ({shown})" if waiting <= shown else f"OPEN AT CLOSE (oldest {shown} of {waiting})"]
        for o in c.open_items:
            lines += [o.payment_id[:WIDTH], _pair(f"  {o.status}", format_amount(o.amount_minor, o.currency))]
    if c.adjustments:
        lines += [thin, "ADJUSTMENTS TO CLOSED DAYS"]
        for a in c.adjustments:
            lines += [a.payment_id[:WIDTH], _pair(f"  of {a.payment_day.isoformat()}", format_amount(a.amount_minor, a.currency))]
    lines.append(rule)
    return "\n".join(lines)


def close_csv(c: DayClose) -> str:
    """(section, key, currency, payments, paid_count, paid_minor) rows."""
    rows: list[list[Any]] = [["total", c.day.isoformat(), t.currency, t.payments, t.paid_count, t.paid_minor] for t in c.totals]
    rows += [["terminal", g.key or "", g.currency, g.payments, g.paid_count, g.paid_minor] for g in c.terminals]
    rows += [["status", s.status, s.currency, s.count, "", s.amount_minor] for s in c.statuses]
    rows += [["open", o.payment_id, o.currency, "", "", o.amount_minor] for o in c.open_items]
    rows += [["adjustment", a.payment_id, a.currency, "", "", a.amount_minor] for a in c.adjustments]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "currency", "payments", "paid_count", "paid_minor"])
    writer.writerows(rows)
    return out.getvalue()
