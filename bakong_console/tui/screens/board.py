"""The pending payments board, the console's home: every recent payment, live.

Rows come from ``engine.payments.search`` (``board_pages``: the first page at once, the rest in
pages behind it, up to ``MAX_ROWS``) and then change in place from the engine's events; the
payments on screen that Bakong is still being asked about are re-read every few seconds for their
check counts (checks that change nothing write no event). Filter by status, search by reference,
MD5, Bakong hash, bill number or id; today's totals per currency underneath.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Static

from bakong_console.tui.board_rows import MAX_ROWS, BoardRow, board_pages
from bakong_console.tui.context import ConsoleContext
from bakong_console.tui.screens.actions import PaymentActions
from bakong_console.tui.widgets.alerts import AlertBar
from bakong_console.tui.widgets.header import EngineHeader
from bakong_console.tui.widgets.payments_table import PendingPaymentsTable
from bakong_console.tui.widgets.totals import TodayTotals
from bakong_console.tui.work import engine_work
from engine.db.payments import PaymentFilter
from engine.errors import NotFound
from engine.records import Event, PaymentStatus

__all__ = ["BOARD_FILTERS", "BoardScreen"]

S = PaymentStatus
#: (key, label, statuses): what "f" cycles through.
BOARD_FILTERS: tuple[tuple[str, str, tuple[PaymentStatus, ...]], ...] = (
    ("all", "all payments", ()),
    ("pending", "pending", (S.PENDING,)),
    ("review", "needs a decision", (S.NEEDS_REVIEW, S.PAID_LATE)),
    ("paid", "paid", (S.PAID, S.PAID_LATE)),
    ("timeout", "timed out", (S.TIMEOUT,)),
    ("cancelled", "cancelled", (S.CANCELLED,)),
    ("failed", "failed or untrackable", (S.FAILED, S.UNTRACKABLE)),
)
_FILTERS = {key: (label, statuses) for key, label, statuses in BOARD_FILTERS}
_TOTALS_EVENTS = (S.PAID.value, S.PAID_LATE.value, S.FAILED.value)


class BoardScreen(PaymentActions):
    """Pending and recent payments, updated in place."""

    app: ConsoleContext  # type: ignore[assignment]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_detail", "Details", id="board.detail"),
        *PaymentActions.PAYMENT_BINDINGS,
        Binding("slash", "search", "Search", id="board.search"),
        Binding("f", "next_filter", "Filter", id="board.filter"),
        Binding("escape", "clear_search", "Clear search", show=False, id="board.clear"),
    ]

    def __init__(self) -> None:
        super().__init__(id="board")
        self.filter_key = "all"
        self.search_text = ""
        #: True until every page of the current filter is on the board.
        self.loading_pages = False
        self._early_events: dict[str, Event] = {}
        #: What the action keys depended on when the footer was last refreshed.
        self._bindings_key: tuple[bool, PaymentStatus | None] | None = None

    def compose(self) -> ComposeResult:
        yield EngineHeader()
        with Horizontal(id="board-toolbar"):
            yield Input(placeholder="/ search: reference, MD5, Bakong hash, bill number or id", id="board-search", compact=True)
            yield Static(id="board-filter")
        yield PendingPaymentsTable(self.app.engine.clock, id="board-table")
        yield TodayTotals(id="board-totals")
        yield AlertBar()
        yield Footer()

    def on_mount(self) -> None:
        self._show_filter()
        self.table.focus()
        self.app.payments_signal.subscribe(self, self.apply_changes, immediate=True)
        self.set_interval(self.app.tick_seconds, self.table.refresh, name="board-tick")
        self.set_interval(self.app.watch_seconds, self.refresh_watched, name="board-watch")
        self.load()
        self.refresh_totals()

    @property
    def table(self) -> PendingPaymentsTable:
        return self.query_one(PendingPaymentsTable)

    # --- which payment ----------------------------------------------------------------------------

    def current_payment_id(self) -> str | None:
        row = self.table.cursor_payment
        return row.id if row else None

    def current_status(self) -> PaymentStatus | None:
        row = self.table.cursor_payment
        return row.status if row else None

    def on_pending_payments_table_highlighted(self, message: PendingPaymentsTable.Highlighted) -> None:
        self._refresh_bindings_if_changed()

    def _refresh_bindings_if_changed(self) -> None:
        """Refresh the footer only when what the keys can do has changed (whether a payment is
        under the cursor, and its status): the footer rebuilds itself on each refresh, which at
        100 changes a second would cost more than the changes."""
        key = (self.current_payment_id() is not None, self.current_status())
        if key != self._bindings_key:
            self._bindings_key = key
            self.refresh_bindings()

    def on_pending_payments_table_selected(self, message: PendingPaymentsTable.Selected) -> None:
        self.app.open_payment(message.payment_id)

    def action_open_detail(self) -> None:
        if (payment_id := self.current_payment_id()) is not None:
            self.app.open_payment(payment_id)

    # --- filter and search ------------------------------------------------------------------------

    @property
    def statuses(self) -> tuple[PaymentStatus, ...]:
        return _FILTERS[self.filter_key][1]

    def set_filter(self, key: str) -> None:
        """Show only payments in one status group (a ``BOARD_FILTERS`` key) and reload."""
        if key not in _FILTERS:
            raise KeyError(key)
        self.filter_key = key
        self._show_filter()
        self.load()

    def action_next_filter(self) -> None:
        keys = [key for key, _, _ in BOARD_FILTERS]
        self.set_filter(keys[(keys.index(self.filter_key) + 1) % len(keys)])

    def action_search(self) -> None:
        self.query_one("#board-search", Input).focus()

    def action_clear_search(self) -> None:
        search = self.query_one("#board-search", Input)
        if search.value or self.search_text:
            search.value = ""
            self.search("")
        self.table.focus()

    @on(Input.Submitted, "#board-search")
    def search_submitted(self, event: Input.Submitted) -> None:
        self.search(event.value)
        self.table.focus()

    def search(self, text: str) -> None:
        """Show the payments whose reference contains ``text`` or whose MD5, Bakong hash (prefix),
        bill number or id is ``text``; empty shows everything again."""
        self.search_text = text.strip()
        self._show_filter()
        self.load()

    def _show_filter(self, count: int | None = None) -> None:
        label = _FILTERS[self.filter_key][0]
        parts = [f"showing {label}"]
        if self.search_text:
            parts.append(f"matching “{self.search_text}”")
        if count is not None:
            parts.append(f"{count:,}{'+' if count >= MAX_ROWS else ''}")
        self.query_one("#board-filter", Static).update(" · ".join(parts) + "  [dim](f)[/]")

    def matches(self, row: BoardRow) -> bool:
        """Whether a payment belongs on the board under the current filter and search."""
        if self.statuses and row.status not in self.statuses:
            return False
        needle = self.search_text
        if not needle:
            return True
        low = needle.lower()
        return bool(
            (row.reference and low in row.reference.lower())
            or row.md5 == low
            or (row.bakong_hash and row.bakong_hash.startswith(low))
            or row.id == needle
            or row.bill_number == needle
        )

    def palette_commands(self) -> Iterable[tuple[str, str, Callable[[], None]]]:
        for key, label, _ in BOARD_FILTERS:
            yield f"Board: show {label}", "filter the payments board", lambda key=key: self.set_filter(key)
        yield "Board: clear the search", "show every payment of the filter", self.action_clear_search

    # --- loading ----------------------------------------------------------------------------------

    @engine_work(exclusive=True, group="board-load", what="load the payments")
    async def load(self) -> None:
        """Read the board's rows: the first page at once, then the rest page by page."""
        flt = PaymentFilter(statuses=self.statuses, text=self.search_text or None)
        self.loading_pages = True
        self._early_events = {}
        table = self.table
        pages = board_pages(self.app.engine.payments, flt)
        first = await anext(pages)
        table.set_rows(first)
        self._replay_early_events()
        self._show_filter(len(first))
        async for page in pages:
            table.add_rows(page)
            self._replay_early_events()
            self._show_filter(table.row_count)
        self.loading_pages = False
        self._early_events = {}
        self._show_filter(table.row_count)
        self._refresh_bindings_if_changed()

    def _replay_early_events(self) -> None:
        # A page read before an event committed may carry the older state: events that arrived
        # while loading are applied again over the rows just added.
        table = self.table
        for payment_id, event in list(self._early_events.items()):
            if table.get(payment_id) is not None:
                self._apply(payment_id, event)
                del self._early_events[payment_id]

    # --- live changes -----------------------------------------------------------------------------

    def apply_changes(self, changes: dict[str, Event]) -> None:
        """Apply the newest event of each changed payment to its row (the bridge's signal)."""
        refresh_totals = False
        count = self.table.row_count
        for payment_id, event in changes.items():
            if self.loading_pages and self.table.get(payment_id) is None:
                self._early_events[payment_id] = event
            self._apply(payment_id, event)
            if event.payload.get("status") in _TOTALS_EVENTS:
                refresh_totals = True
        self.table.applied(list(changes))
        if refresh_totals:
            self.refresh_totals()
        if not self.loading_pages and self.table.row_count != count:
            self._show_filter(self.table.row_count)
        self._refresh_bindings_if_changed()

    def _apply(self, payment_id: str, event: Event) -> None:
        table = self.table
        row = table.get(payment_id)
        new = BoardRow.from_event(event) if row is None else row.updated_by(event)
        if new is None:
            return
        if self.matches(new):
            table.upsert(new)
        elif row is not None:
            table.remove(payment_id)

    @engine_work(exclusive=True, group="board-watch", what="refresh the payments being checked")
    async def refresh_watched(self) -> None:
        """Re-read the on-screen payments Bakong is still being asked about (check counts)."""
        payments = self.app.engine.payments
        for row in self.table.visible_rows():
            if not row.watched:
                continue
            try:
                payment = await payments.get(row.id)
            except NotFound:
                self.table.remove(row.id)
                continue
            fresh = BoardRow.from_payment(payment)
            if fresh != self.table.get(row.id):
                self.table.update(row.id, lambda _old, fresh=fresh: fresh)

    @engine_work(exclusive=True, group="board-totals", what="read today's totals")
    async def refresh_totals(self) -> None:
        totals = await self.app.engine.payments.today_totals()
        self.query_one(TodayTotals).show(totals)
