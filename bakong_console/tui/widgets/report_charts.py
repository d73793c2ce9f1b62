"""The Reports screen's charts, drawn by Plotext (``textual-plotext``) in the terminal: payments
by hour of the day as bars beside the same hour a week earlier, and paid payments per day over
the last days as a line with last week's as a grey ghost line.

Counts only: a chart never draws an amount, so two currencies are never on one axis.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from engine.report_records import DayPoint, HourPoint

__all__ = ["DailyPaymentsChart", "HourlyPaymentsChart", "count_ticks"]

_TODAY = "green"
_GHOST = "gray"


def count_ticks(highest: int, rows: int = 3) -> list[int]:
    """Whole-number y ticks from 0 to at least ``highest``: counts have no fractions."""
    top = max(1, highest)
    step = max(1, -(-top // rows))
    return list(range(0, top + step, step))


class CountChart(PlotextPlot):
    """A Plotext chart of counts that redraws from the data it was last given."""

    DEFAULT_CSS = """
    CountChart {
        height: 12;
        min-width: 30;
    }
    """

    def _axes(self, title: str, highest: int) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title(title)
        ticks = count_ticks(highest)
        plt.yticks(ticks, [str(t) for t in ticks])
        plt.ylim(0, ticks[-1])


class HourlyPaymentsChart(CountChart):
    """Payments made in each hour of the day (Phnom Penh), today's beside last week's."""

    def show(self, hours: Sequence[HourPoint], *, label: str = "today") -> None:
        xs = [h.hour for h in hours]
        made = [h.payments for h in hours]
        before = [h.last_week for h in hours]
        self._axes("Payments by hour", max([*made, *before], default=0))
        plt = self.plt
        plt.multiple_bar(xs, [made, before], labels=[label, "week before"], color=[_TODAY, _GHOST])
        plt.xticks([0, 6, 12, 18, 23], ["0h", "6h", "12h", "18h", "23h"])
        self.refresh()


class DailyPaymentsChart(CountChart):
    """Paid payments per day, with the same weekday a week earlier as a ghost line."""

    def show(self, days: Sequence[DayPoint]) -> None:
        xs = list(range(len(days)))
        paid = [d.paid_count for d in days]
        ghost = [d.last_week_paid for d in days]
        self._axes(f"Paid per day, last {len(days)} days", max([*paid, *ghost], default=0))
        plt = self.plt
        if days:
            plt.plot(xs, ghost, color=_GHOST, label="week before", marker="braille")
            plt.plot(xs, paid, color=_TODAY, label="paid", marker="braille")
            marks = sorted({0, len(days) // 2, len(days) - 1})
            plt.xticks(marks, [f"{days[i].day:%m-%d}" for i in marks])
        self.refresh()
