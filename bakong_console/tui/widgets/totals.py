"""``TodayTotals``: what was paid today, per currency (KHR and USD are never added together)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from bakong_console.tui.formatting import amount_text

__all__ = ["TodayTotals"]


class TodayTotals(Static):
    """"Today: 3 paid · 40,500 KHR │ 2 paid · 25.00 USD" (Phnom Penh day)."""

    DEFAULT_CSS = """
    TodayTotals {
        height: 1;
        padding: 0 1;
        background: $boost;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def show(self, totals: dict[str, dict[str, int]]) -> None:
        text = Text("Today: ", style="bold")
        if not totals:
            text.append("nothing paid yet", style="dim")
        for i, currency in enumerate(sorted(totals)):
            if i:
                text.append("  │  ", style="dim")
            entry = totals[currency]
            text.append(f"{entry['count']} paid · ")
            text.append(amount_text(entry["amount_minor"], currency), style="bold")
        self.update(text)
