"""The owner's Reports screen (``r``): one day at a glance, and closing it.

Today by default (``[`` and ``]`` move a day back and forth, ``t`` comes back to today): the paid
totals per currency, the status mix, the median time to paid, the Bakong requests used against
the budget with their hours, reconciliation with Bakong, payments by hour beside last week's,
paid per day over the last 30 days with last week's ghost line, per terminal and per cashier,
and what still waits for a decision. ``z`` opens ``DayCloseDialog`` for the day on screen: its Z
report, and the close itself (or, once closed, its frozen report); after a close the screen
re-reads the day, which then shows as closed.

Everything is read through the engine's report service (``engine.reports.day`` and
``last_days``: GROUP BYs, never the payments themselves) in one async worker. The screen follows
payment and audit events, but a burst of them costs one re-read: the first change schedules a
read ``refresh_delay`` seconds later and the ones after it ride along. While another screen is
shown nothing is read; the screen catches up when it comes back.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Sparkline, Static

from bakong_console.tui.context import ConsoleContext
from bakong_console.tui.dialogs.day_close import DayCloseDialog
from bakong_console.tui.widgets.alerts import AlertBar
from bakong_console.tui.widgets.header import EngineHeader
from bakong_console.tui.widgets.report_charts import DailyPaymentsChart, HourlyPaymentsChart
from bakong_console.tui.widgets.report_panels import day_title, facts_text, group_table, open_items_text, status_mix_text, totals_text
from bakong_console.tui.work import engine_work
from engine.report_records import DayClose, DayPoint, DayReport

__all__ = ["TREND_DAYS", "ReportsScreen"]

#: How many days the "paid per day" line covers.
TREND_DAYS = 30


class ReportsScreen(Screen[None]):
    """One day's report, live, scrolling on a small terminal."""

    app: ConsoleContext  # type: ignore[assignment]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "previous_day", "Day before", id="reports.previous_day"),
        Binding("right_square_bracket", "next_day", "Day after", id="reports.next_day"),
        Binding("t", "today", "Today", id="reports.today"),
        Binding("z", "close_day", "Close day (Z)", id="reports.close_day"),
    ]

    #: Real seconds between the first engine event of a burst and the re-read it causes.
    refresh_delay: float = 1.0

    def __init__(self) -> None:
        super().__init__(id="reports")
        #: The day shown; None follows today (across midnight too).
        self.day: date | None = None
        self.report: DayReport | None = None
        self.days: tuple[DayPoint, ...] = ()
        #: How many times the report was read (tests wait on it).
        self.loads = 0
        self._pending: Timer | None = None
        self._stale = False

    def compose(self) -> ComposeResult:
        yield EngineHeader()
        yield Static("", id="reports-title")
        with VerticalScroll(id="reports-body"):
            with Horizontal(id="reports-summary", classes="reports-row"):
                with Vertical(id="reports-summary-left"):
                    yield Static("", id="reports-totals", classes="reports-panel")
                    yield Static("", id="reports-facts", classes="reports-panel")
                yield Static("", id="reports-statuses", classes="reports-panel")
            with Vertical(id="reports-requests-box", classes="reports-row"):
                yield Static("Bakong requests by hour, 0h to 23h", classes="reports-caption")
                yield Sparkline([0] * 24, id="reports-requests", summary_function=max)
            with Horizontal(id="reports-charts", classes="reports-row"):
                yield HourlyPaymentsChart(id="reports-hours")
                yield DailyPaymentsChart(id="reports-days")
            with Horizontal(id="reports-groups", classes="reports-row"):
                yield Static("", id="reports-terminals", classes="reports-panel")
                yield Static("", id="reports-cashiers", classes="reports-panel")
            yield Static("", id="reports-open", classes="reports-panel")
        yield AlertBar()
        yield Footer()

    def on_mount(self) -> None:
        self.app.payments_signal.subscribe(self, self._engine_changed)
        self.app.audit_signal.subscribe(self, self._engine_changed)
        self.query_one("#reports-body", VerticalScroll).focus()
        self.load()

    def on_screen_resume(self) -> None:
        self.query_one("#reports-body", VerticalScroll).focus()
        if self._stale:
            self._stale = False
            self.load()

    # --- which day --------------------------------------------------------------------------------

    @property
    def shown_day(self) -> date:
        """The day on screen (today when following today)."""
        return self.day or self.app.engine.reports.today()

    def show_day(self, day: date | None) -> None:
        """Show ``day`` (None: today, following it); a day still to come is not shown."""
        today = self.app.engine.reports.today()
        if day is not None and day >= today:
            day = None
        self.day = day
        self.load()

    def action_previous_day(self) -> None:
        self.show_day(self.shown_day - timedelta(days=1))

    def action_next_day(self) -> None:
        self.show_day(self.shown_day + timedelta(days=1))

    def action_today(self) -> None:
        self.show_day(None)

    # --- closing ----------------------------------------------------------------------------------

    def action_close_day(self) -> None:
        """Open the close-day dialog (the Z report) for the day on screen."""
        self.app.push_screen(DayCloseDialog(self.shown_day), self._day_closed)

    def _day_closed(self, close: DayClose | None) -> None:
        if close is None:
            return
        forced = " by force" if close.forced else ""
        self.notify(f"{close.day.isoformat()} closed{forced} by {close.closed_by}: its totals are frozen.", title="Day closed")
        self.load()

    # --- live -------------------------------------------------------------------------------------

    def _engine_changed(self, _change: object) -> None:
        """A payment or anything audited changed: re-read once the burst has passed."""
        if not self.is_current:
            self._stale = True
            return
        if self._pending is None:
            self._pending = self.set_timer(self.refresh_delay, self._reload, name="reports-refresh")

    def _reload(self) -> None:
        self._pending = None
        self.load()

    # --- reading ----------------------------------------------------------------------------------

    @engine_work(exclusive=True, group="reports-load", what="read the report")
    async def load(self) -> None:
        """Read the shown day's report and the days before it, then lay them out."""
        reports = self.app.engine.reports
        day = self.shown_day
        report = await reports.day(day)
        days = await reports.last_days(TREND_DAYS, until=day)
        self.show(report, days)

    def show(self, report: DayReport, days: tuple[DayPoint, ...]) -> None:
        """Lay one day's report out (the worker's result)."""
        self.report = report
        self.days = days
        self.loads += 1
        today = self.app.engine.reports.today()
        title = day_title(report, today)
        title.append("   [ ] day · t today · z close", style="dim")
        self.query_one("#reports-title", Static).update(title)
        self.query_one("#reports-totals", Static).update(totals_text(report))
        self.query_one("#reports-statuses", Static).update(status_mix_text(report))
        self.query_one("#reports-facts", Static).update(facts_text(report))
        self.query_one("#reports-requests", Sparkline).data = list(report.bakong.by_hour)
        self.query_one(HourlyPaymentsChart).show(report.hours, label="today" if report.day == today else f"{report.day:%m-%d}")
        self.query_one(DailyPaymentsChart).show(days)
        self.query_one("#reports-terminals", Static).update(group_table("By terminal", report.terminals, none_label="no terminal"))
        self.query_one("#reports-cashiers", Static).update(group_table("By cashier", report.cashiers))
        self.query_one("#reports-open", Static).update(open_items_text(report))

