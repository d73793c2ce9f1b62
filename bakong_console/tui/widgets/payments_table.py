"""``PendingPaymentsTable``: the board's live table, built to stay smooth with 10,000 rows — its
columns, cells, styles, cursor and keys.

A line-API ``ScrollView`` (Toolong's shape) rather than a ``DataTable``: the rows are a
``BoardRows`` (``tui/board_rows.py``, which owns their order, their index by payment id and what
the board loads), so applying an engine event repaints one line and only the lines on screen are
ever rendered. This module owns how they look and how the cursor stays on its payment while rows
come and go. Age and countdown are computed from the engine's clock while rendering, so a
once-a-second ``refresh()`` keeps them true without touching any row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bakong_console.tui.board_rows import BoardRow, BoardRows
from bakong_console.tui.formatting import STATUS_STYLES, amount_number, countdown, short_age
from engine.clock import Clock
from engine.records import PaymentStatus

__all__ = ["Column", "PendingPaymentsTable"]


@dataclass(frozen=True)
class Column:
    """One column: its key, header label, width (0 = shares the free space) and alignment."""

    key: str
    label: str
    width: int
    align: str = "left"
    #: Columns with a higher number are dropped first when the table is too narrow.
    drop_order: int = 0


class PendingPaymentsTable(ScrollView, can_focus=True):
    """Payments, newest first, one line each, updated in place."""

    DEFAULT_CSS = """
    PendingPaymentsTable {
        height: 1fr;
        background: $surface;
        scrollbar-gutter: stable;
    }
    PendingPaymentsTable > .pending-payments-table--header {
        text-style: bold;
        background: $panel;
        color: $text;
    }
    PendingPaymentsTable > .pending-payments-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    PendingPaymentsTable:blur > .pending-payments-table--cursor {
        background: $block-cursor-blurred-background;
        text-style: none;
    }
    PendingPaymentsTable > .pending-payments-table--muted {
        color: $text-muted;
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "pending-payments-table--header",
        "pending-payments-table--cursor",
        "pending-payments-table--muted",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False, id="table.cursor_up"),
        Binding("down", "cursor_down", "Down", show=False, id="table.cursor_down"),
        Binding("pageup", "page_up", "Page up", show=False, id="table.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="table.page_down"),
        Binding("home", "first", "First", show=False, id="table.first"),
        Binding("end", "last", "Last", show=False, id="table.last"),
    ]

    COLUMNS: ClassVar[tuple[Column, ...]] = (
        Column("status", "Status", 12),
        Column("amount", "Amount", 12, "right"),
        Column("currency", "Cur", 3),
        Column("reference", "Reference", 0),
        Column("age", "Age", 5, "right", drop_order=2),
        Column("countdown", "Expires", 7, "right"),
        Column("checks", "Checks", 6, "right", drop_order=1),
        Column("last", "Last result", 0, drop_order=3),
    )

    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)

    class Highlighted(Message):
        """The cursor moved to a payment."""

        def __init__(self, table: PendingPaymentsTable, payment_id: str | None) -> None:
            super().__init__()
            self.table = table
            self.payment_id = payment_id

    class Selected(Message):
        """Enter or a click on the highlighted payment."""

        def __init__(self, table: PendingPaymentsTable, payment_id: str) -> None:
            super().__init__()
            self.table = table
            self.payment_id = payment_id

    def __init__(self, clock: Clock, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.clock = clock
        self._store = BoardRows()
        self._layout: list[tuple[Column, int]] = []
        self._layout_width = -1
        #: Called with the ids of rows just changed (the benchmark measures through it).
        self.on_applied: Callable[[list[str]], None] | None = None

    # --- rows: each change to the store keeps the cursor on its payment and repaints ----------------

    @property
    def row_count(self) -> int:
        return len(self._store)

    def get(self, payment_id: str) -> BoardRow | None:
        return self._store.get(payment_id)

    def row_at(self, index: int) -> BoardRow | None:
        return self._store.row_at(index)

    def rows(self) -> list[BoardRow]:
        """Every row in display order (newest first)."""
        return self._store.rows()

    def index_of(self, payment_id: str) -> int | None:
        return self._store.index_of(payment_id)

    @property
    def cursor_payment(self) -> BoardRow | None:
        return self._store.row_at(self.cursor_row)

    def clear(self) -> None:
        self._store.clear()
        self.cursor_row = 0
        self._resized()

    def set_rows(self, rows: Iterable[BoardRow]) -> None:
        """Replace every row (a new filter or search); the cursor goes to the top."""
        self._store.replace_all(rows)
        self.scroll_to(y=0, animate=False, immediate=True)
        self.cursor_row = 0
        self._resized()

    def add_rows(self, rows: Iterable[BoardRow]) -> int:
        """Add rows not shown yet (the next page of a load); rows already shown are kept as they
        are, since an event may have updated them after the page was read. Returns how many."""
        keep = self.cursor_payment
        added = self._store.add_new(rows)
        if not added:
            return 0
        self._follow(keep)
        self._resized()
        return added

    def upsert(self, row: BoardRow) -> bool:
        """Insert or replace one row; True if it was new. The cursor stays on its payment."""
        old = self._store.get(row.id)
        if old is not None and old.sort_key == row.sort_key:
            self._store.put(row)
            self._refresh_payment(row.id)
            return False
        keep = self.cursor_payment
        self._store.put(row)
        self._follow(keep)
        self._resized()
        return old is None

    def remove(self, payment_id: str) -> bool:
        if self._store.get(payment_id) is None:
            return False
        keep = self.cursor_payment
        self._store.remove(payment_id)
        if keep is not None and keep.id != payment_id:
            self._follow(keep)
        else:
            self.cursor_row = min(self.cursor_row, max(0, len(self._store) - 1))
        self._resized()
        return True

    def update(self, payment_id: str, change: Callable[[BoardRow], BoardRow]) -> BoardRow | None:
        """Apply ``change`` to one row in place; None if the payment is not on the board."""
        row = self._store.get(payment_id)
        if row is None:
            return None
        new = change(row)
        self._store.put(new)
        self._refresh_payment(payment_id)
        return new

    def applied(self, ids: list[str]) -> None:
        """Tell the observer (if any) that these rows now show their latest state."""
        if self.on_applied is not None and ids:
            self.on_applied(ids)

    def visible_rows(self) -> list[BoardRow]:
        """The rows on screen now."""
        top = int(self.scroll_offset.y)
        height = max(0, self.scrollable_content_region.height - 1)
        return self._store.window(top, height)

    def _follow(self, keep: BoardRow | None) -> None:
        if keep is None:
            return
        index = self.index_of(keep.id)
        if index is not None and index != self.cursor_row:
            top = int(self.scroll_offset.y)
            shift = index - self.cursor_row
            self.set_reactive(PendingPaymentsTable.cursor_row, index)
            if top > 0 or self.cursor_row >= self._page_height():
                self.scroll_to(y=top + shift, animate=False, immediate=True)

    def _resized(self) -> None:
        self.virtual_size = Size(self._content_width(), len(self._store) + 1)
        self.refresh()

    def _refresh_payment(self, payment_id: str) -> None:
        index = self.index_of(payment_id)
        if index is None:
            return
        top = int(self.scroll_offset.y)
        if top <= index < top + self._page_height():
            self.refresh_line(index + 1)

    # --- cursor -----------------------------------------------------------------------------------

    def _page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def validate_cursor_row(self, value: int) -> int:
        return max(0, min(value, len(self._store) - 1)) if len(self._store) else 0

    def watch_cursor_row(self, old: int, new: int) -> None:
        top = int(self.scroll_offset.y)
        page = self._page_height()
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + page:
            self.scroll_to(y=new - page + 1, animate=False, immediate=True)
        self.refresh()
        row = self.cursor_payment
        self.post_message(self.Highlighted(self, row.id if row else None))

    def move_cursor_to(self, payment_id: str) -> bool:
        index = self.index_of(payment_id)
        if index is None:
            return False
        self.cursor_row = index
        return True

    def action_cursor_up(self) -> None:
        self.cursor_row -= 1

    def action_cursor_down(self) -> None:
        self.cursor_row += 1

    def action_page_up(self) -> None:
        self.cursor_row -= self._page_height()

    def action_page_down(self) -> None:
        self.cursor_row += self._page_height()

    def action_first(self) -> None:
        self.cursor_row = 0

    def action_last(self) -> None:
        self.cursor_row = len(self._store) - 1

    def key_enter(self, event: events.Key) -> None:
        row = self.cursor_payment
        if row is not None:
            event.stop()
            self.post_message(self.Selected(self, row.id))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = int(self.scroll_offset.y) + offset.y - 1
        if index < len(self._store):
            if index == self.cursor_row and event.chain >= 2:
                row = self.cursor_payment
                if row is not None:
                    self.post_message(self.Selected(self, row.id))
            self.cursor_row = index

    # --- rendering --------------------------------------------------------------------------------

    def _content_width(self) -> int:
        return max(1, self.scrollable_content_region.width)

    def on_resize(self, event: events.Resize) -> None:
        self._layout_width = -1
        self._resized()

    def _columns(self, width: int) -> list[tuple[Column, int]]:
        if width == self._layout_width:
            return self._layout
        columns = list(self.COLUMNS)
        while True:
            fixed = sum(c.width for c in columns) + len(columns) - 1
            flexible = [c for c in columns if c.width == 0]
            free = width - fixed
            if free >= 8 * len(flexible) or not any(c.drop_order for c in columns):
                break
            columns.remove(max(columns, key=lambda c: c.drop_order))
        flexible = [c for c in columns if c.width == 0]
        share, extra = divmod(max(0, free), max(1, len(flexible)))
        layout = []
        for column in columns:
            if column.width:
                layout.append((column, column.width))
            else:
                layout.append((column, share + (1 if extra > 0 else 0)))
                extra -= 1
        self._layout, self._layout_width = layout, width
        return layout

    def _cell_text(self, column: Column, row: BoardRow, now: datetime) -> str:
        key = column.key
        if key == "amount":
            return amount_number(row.amount_minor, row.currency)
        if key == "currency":
            return row.currency
        if key == "reference":
            return row.reference or row.bill_number or "—"
        if key == "age":
            return short_age(row.created_at, now)
        if key == "countdown":
            return countdown(row.expires_at, now) if row.status is PaymentStatus.PENDING else ""
        if key == "checks":
            return str(row.check_count)
        if key == "last":
            return row.last_check_result or ""
        return ""

    @staticmethod
    def _fit(text: str, width: int, align: str) -> str:
        if len(text) > width:
            return text[: max(0, width - 1)] + "…" if width > 1 else text[:width]
        return text.rjust(width) if align == "right" else text.ljust(width)

    def render_line(self, y: int) -> Strip:
        width = self._content_width()
        layout = self._columns(width)
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("pending-payments-table--header")
            text = " ".join(self._fit(c.label, w, c.align) for c, w in layout)
            return Strip([Segment(self._fit(text, width, "left"), style)], width)
        index = int(self.scroll_offset.y) + y - 1
        row = self.row_at(index)
        if row is None:
            return Strip.blank(width, base)
        line_style = base
        if index == self.cursor_row and self.cursor_payment is not None:
            line_style = base + self.get_component_rich_style("pending-payments-table--cursor")
        muted = base + self.get_component_rich_style("pending-payments-table--muted")
        now = self.clock.now()
        segments: list[Segment] = []
        used = 0
        for i, (column, w) in enumerate(layout):
            if i:
                segments.append(Segment(" ", line_style))
                used += 1
            if column.key == "status":
                label = row.status.value.center(w)[:w]
                segments.append(Segment(label, STATUS_STYLES.get(row.status.value, Style())))
            else:
                style = line_style
                if column.key == "last" and line_style is base:
                    style = muted
                segments.append(Segment(self._fit(self._cell_text(column, row, now), w, column.align), style))
            used += w
        if used < width:
            segments.append(Segment(" " * (width - used), line_style))
        return Strip(segments, width)
