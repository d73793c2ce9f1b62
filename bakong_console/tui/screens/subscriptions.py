"""Subscriptions: every subscription with its plan, state, period end, pending change and what it
owes, filtered by status (``f`` cycles), plan, user and period end. Read from the subscription
engine (``engine.subscriptions.list``); follows subscription events.

The filter line takes ``plan:CODE``, ``user:ID`` and ``ends:7d`` (period ending within 7 days;
also ``h`` and ``m``) or ``ends:2026-02-01`` (before that day, Phnom Penh time).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Input, Static

from bakong_console.times import local_time
from bakong_console.tui.formatting import amount_text
from bakong_console.tui.screens.filter_line import FilterLineScreen
from bakong_console.tui.time_input import parse_span
from bakong_console.tui.widgets.alerts import AlertBar
from bakong_console.tui.widgets.header import EngineHeader
from bakong_console.tui.work import engine_work
from engine.clock import PHNOM_PENH
from engine.errors import InvalidInput
from engine.records import Event, SubscriptionStatus

if TYPE_CHECKING:
    from engine.records import SubscriptionView

__all__ = ["SubscriptionsScreen", "parse_subscription_filter"]

PAGE = 500
STATUS_FILTERS: tuple[SubscriptionStatus | None, ...] = (None, *SubscriptionStatus)
_STATUS_STYLES = {
    SubscriptionStatus.ACTIVE: "bold green",
    SubscriptionStatus.TRIALING: "cyan",
    SubscriptionStatus.PAST_DUE: "bold yellow",
    SubscriptionStatus.INCOMPLETE: "yellow",
    SubscriptionStatus.EXPIRED: "dim",
    SubscriptionStatus.CANCELLED: "dim",
}


def parse_subscription_filter(text: str, now: datetime) -> dict[str, Any]:
    """``plan:CODE user:ID ends:7d|ends:YYYY-MM-DD`` → keyword arguments of ``subscriptions.list``."""
    out: dict[str, Any] = {}
    for token in text.split():
        key, sep, value = token.partition(":")
        if not sep or not value:
            raise InvalidInput(f"{token!r}: use plan:CODE, user:ID or ends:7d", field="filter")
        if key == "plan":
            out["plan"] = value
        elif key == "user":
            out["user_id"] = value
        elif key == "ends":
            span = parse_span(value)
            if span is not None:
                out["period_end_before"] = now + span
            else:
                try:
                    day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=PHNOM_PENH)
                except ValueError:
                    raise InvalidInput(f"ends:{value} is neither a duration (7d, 12h) nor a date (2026-02-01)", field="filter") from None
                out["period_end_before"] = day
        else:
            raise InvalidInput(f"unknown filter {key!r}: use plan:, user: or ends:", field="filter")
    return out


class SubscriptionsScreen(FilterLineScreen):
    """Subscriptions newest first, with their plans' names and what they owe."""

    FILTER_LINE = "subscriptions"
    FILTER_FIELDS = ("plan", "user_id", "status", "filter", "plan_code")

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "next_status", "Status filter", id="subscriptions.status_filter"),
        Binding("slash", "focus_filter", "Filter", id="subscriptions.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="subscriptions.clear"),
    ]

    def __init__(self) -> None:
        super().__init__(id="subscriptions")
        self.status: SubscriptionStatus | None = None
        self.criteria: dict[str, Any] = {}
        self.views: list[SubscriptionView] = []

    def compose(self) -> ComposeResult:
        yield EngineHeader()
        with Horizontal(id="board-toolbar"):
            yield Input(placeholder="/ filter: plan:CODE user:ID ends:7d", id="subscriptions-filter", compact=True)
            yield Static(id="subscriptions-status")
        yield Static("", id="subscriptions-filter-error", classes="field-error")
        yield DataTable(id="subscriptions-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="subscriptions-plans", classes="table-title")
        yield AlertBar()
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key in (
            ("User", "user"), ("Plan", "plan"), ("Status", "status"), ("Price", "price"),
            ("Period ends", "end"), ("Change", "change"), ("Owes", "owes"),
        ):  # fmt: skip
            table.add_column(label, key=key)
        table.focus()
        self.app.subscriptions_signal.subscribe(self, self._changed)
        self._show_status()
        self.reload()

    def _changed(self, event: Event) -> None:
        self.reload()

    def _show_status(self) -> None:
        label = self.status.value if self.status else "all"
        self.query_one("#subscriptions-status", Static).update(f"status: {label} [dim](f)[/]")

    def action_next_status(self) -> None:
        self.status = STATUS_FILTERS[(STATUS_FILTERS.index(self.status) + 1) % len(STATUS_FILTERS)]
        self._show_status()
        self.reload()

    def set_status(self, status: SubscriptionStatus | None) -> None:
        self.status = status
        self._show_status()
        self.reload()

    # --- FilterLineScreen ------------------------------------------------------------------------

    def read_filter(self, text: str) -> None:
        self.criteria = parse_subscription_filter(text, self.app.engine.clock.now())

    def drop_filter(self) -> bool:
        self.criteria = {}
        return True

    def palette_commands(self):  # type: ignore[no-untyped-def]
        for status in STATUS_FILTERS:
            label = status.value if status else "all"
            yield f"Subscriptions: show {label}", "filter subscriptions by status", lambda status=status: self.set_status(status)

    @engine_work(exclusive=True, group="subscriptions-load", what="read the subscriptions")
    async def reload(self) -> None:
        subscriptions = self.app.engine.subscriptions
        views, more = await subscriptions.list(status=self.status, limit=PAGE, **self.criteria)
        plans = await subscriptions.list_plans()
        self.views = views
        table = self.query_one(DataTable)
        table.clear()
        for view in views:
            sub = view.subscription
            change = ""
            if view.pending_change:
                target = view.pending_plan.code if view.pending_plan else ""
                change = f"{view.pending_change} → {target}".strip()
            if sub.cancel_at_period_end:
                change = (change + " · " if change else "") + "cancels at period end"
            owes = ", ".join(
                f"{item.invoice.kind} {amount_text(item.invoice.amount_minor, item.invoice.currency)}" for item in view.open_invoices
            )
            table.add_row(
                sub.user_id,
                view.plan.code,
                Text(sub.status.value, style=_STATUS_STYLES.get(sub.status, "")),
                amount_text(sub.price_minor, sub.currency),
                local_time(sub.current_period_end) if sub.current_period_end else "—",
                change or "—",
                owes or "—",
                key=sub.id,
            )
        shown = f"{len(views)}{'+' if more else ''} subscription(s)"
        plan_list = ", ".join(f"{p.code} {p.display_price}/{p.cycle_days}d" for p in plans if p.archived_at is None)
        self.query_one("#subscriptions-plans", Static).update(f"{shown} · plans: {plan_list or 'none yet'}")
