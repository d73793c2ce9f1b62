"""How the Reports screen writes one day's figures for people: the paid totals per currency, the
status mix, the median time to paid, the Bakong requests against the budget, reconciliation, the
per-terminal and per-cashier tables, what still waits for a decision, and a closed day's line.

Pure functions from the engine's report DTOs (``engine.report_records``) to Rich text and
tables: no Textual, no I/O, so the screen calls them while it lays a report out and tests call
them on hand-made reports. No line ever adds two currencies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from rich.table import Table
from rich.text import Text

from bakong_console.times import local_time
from bakong_console.tui.formatting import amount_text, status_badge
from engine.report_records import BakongUse, DayReport, GroupTotal

__all__ = [
    "budget_bar",
    "day_title",
    "duration_text",
    "facts_text",
    "group_table",
    "open_items_text",
    "status_mix_text",
    "totals_text",
]

#: The order an owner reads statuses in: money first, then what waits, then what did not happen.
_STATUS_ORDER = ("PAID", "PAID_LATE", "NEEDS_REVIEW", "PENDING", "TIMEOUT", "CANCELLED", "FAILED", "UNTRACKABLE")


def duration_text(seconds: float | None) -> str:
    """'45s', '2m05s', '1h02m': how long people waited; '-' when nothing was paid."""
    if seconds is None:
        return "-"
    whole = int(round(seconds))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def day_title(report: DayReport, today: date) -> Text:
    """'Thursday 2026-01-15 (today) · open', or who closed it and when."""
    text = Text()
    text.append(f"{report.day:%A} {report.day.isoformat()}", style="bold")
    if report.day == today:
        text.append(" (today)", style="bold")
    text.append(" · ", style="dim")
    close = report.close
    if close is None:
        text.append("open", style="green")
    else:
        text.append(" CLOSED ", style="bold black on yellow")
        text.append(f" {local_time(close.closed_at)} by {close.closed_by}")
        if close.forced:
            text.append(" (forced)", style="bold red")
    return text


def totals_text(report: DayReport) -> Text:
    """One line per currency: paid of made, and the exact paid sum."""
    text = Text("Paid\n", style="bold")
    if not report.totals:
        text.append("no payments yet", style="dim")
        return text
    for i, t in enumerate(report.totals):
        if i:
            text.append("\n")
        text.append(f"{t.currency} ", style="dim")
        text.append(f"{amount_text(t.paid_minor, t.currency):>16}", style="bold")
        text.append(f"  {t.paid_count} of {t.payments}", style="dim")
    return text


def status_mix_text(report: DayReport) -> Text:
    """One line per status: its badge, how many, and their sum per currency."""
    counts: dict[str, int] = defaultdict(int)
    sums: dict[str, list[str]] = defaultdict(list)
    for s in report.statuses:
        counts[s.status] += s.count
        sums[s.status].append(amount_text(s.amount_minor, s.currency))
    text = Text("Status mix\n", style="bold")
    if not counts:
        text.append("-", style="dim")
        return text
    order = [s for s in _STATUS_ORDER if s in counts] + sorted(set(counts) - set(_STATUS_ORDER))
    for i, status in enumerate(order):
        if i:
            text.append("\n")
        text.append_text(status_badge(status, 12))
        text.append(f" {counts[status]:>4}  ")
        text.append(" · ".join(sums[status]), style="dim")
    return text


def budget_bar(used: int, budget: int, width: int = 20) -> Text:
    """``used`` of ``budget`` as a bar: green, yellow past three quarters, red when spent."""
    share = 0.0 if budget <= 0 else min(1.0, used / budget)
    filled = round(share * width)
    style = "red" if share >= 1.0 else "yellow" if share >= 0.75 else "green"
    text = Text("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    return text


def facts_text(report: DayReport) -> Text:
    """The median time to paid, the Bakong requests used against the budget, and what
    reconciliation with Bakong found of the day's paid payments, a fact a line."""
    bakong: BakongUse = report.bakong
    checked = report.reconciliation
    flagged = checked.get("flagged", 0)
    text = Text()
    text.append("Median to paid  ", style="bold")
    text.append(duration_text(report.median_seconds_to_paid))
    text.append("\nBakong requests ", style="bold")
    text.append(f"{bakong.used}/{bakong.budget} ")
    text.append_text(budget_bar(bakong.used, bakong.budget, 8))
    text.append("\nReconciled      ", style="bold")
    text.append(str(checked.get("reconciled", 0)), style="green")
    text.append("\nFlagged         ", style="bold")
    text.append(str(flagged), style="bold red" if flagged else "")
    text.append("\nNot yet checked ", style="bold")
    text.append(str(checked.get("unchecked", 0)))
    return text


def group_table(title: str, groups: Iterable[GroupTotal], *, none_label: str = "-") -> Table:
    """Made, paid and the paid sum per group (a terminal, a cashier) and currency."""
    table = Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False, expand=False, show_edge=False)
    table.add_column(title.split()[-1].capitalize(), no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("Made", justify="right")
    table.add_column("Paid", justify="right")
    table.add_column("Amount", justify="right", no_wrap=True)
    rows = list(groups)
    if not rows:
        table.add_row(Text("no payments", style="dim"), "", "", "")
    for g in rows:
        table.add_row(g.key or Text(none_label, style="dim"), str(g.payments), str(g.paid_count), amount_text(g.paid_minor, g.currency))
    return table


def open_items_text(report: DayReport, limit: int = 12) -> Text:
    """What still needs a decision before the day can be closed (NEEDS_REVIEW, PAID_LATE, PENDING)."""
    text = Text(f"Waiting for a decision ({report.open_count})\n", style="bold")
    if not report.open_items:
        text.append("nothing: the day can be closed" if report.close is None else "nothing", style="dim")
        return text
    for i, item in enumerate(report.open_items[:limit]):
        if i:
            text.append("\n")
        text.append_text(status_badge(item.status, 12))
        text.append(f" {item.payment_id}  ")
        text.append(f"{amount_text(item.amount_minor, item.currency):>14}", style="bold")
        text.append(f"  {local_time(item.created_at)}", style="dim")
    if len(report.open_items) > limit:
        text.append(f"\n… and {len(report.open_items) - limit} more", style="dim")
    return text

