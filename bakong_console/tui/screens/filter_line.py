"""``FilterLineScreen``: a screen of one table with a filter line above it — the audit log and the
subscriptions share it.

The line is an ``Input`` with id ``<FILTER_LINE>-filter`` and a ``Static`` with id
``<FILTER_LINE>-filter-error`` under it: ``/`` focuses the line, Enter reads it (a mistake is
shown under the line and the table stays as it was), Escape clears it. What the filter means
stays with each screen (``read_filter`` and ``drop_filter``); the keys stay in each screen's
``BINDINGS`` so each has its own binding ids.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from bakong_console.tui.context import ConsoleContext
from engine.errors import InvalidInput

__all__ = ["FilterLineScreen"]


class FilterLineScreen(Screen[None]):
    """A table read through a filter the operator types."""

    app: ConsoleContext  # type: ignore[assignment]

    #: The id prefix of the filter line and of its error line.
    FILTER_LINE: ClassVar[str]
    #: The fields whose errors (from the parser or the engine) belong under the filter line.
    FILTER_FIELDS: ClassVar[tuple[str, ...]]

    def read_filter(self, text: str) -> None:
        """Keep the filter ``text`` says; raise ``InvalidInput`` to refuse it."""
        raise NotImplementedError

    def drop_filter(self) -> bool:
        """Forget the filter; True if the table must be read again."""
        raise NotImplementedError

    def reload(self) -> Any:
        """Read the table again under the current filter."""
        raise NotImplementedError

    def action_focus_filter(self) -> None:
        self.query_one(f"#{self.FILTER_LINE}-filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one(f"#{self.FILTER_LINE}-filter", Input).value = ""
        self.query_one(f"#{self.FILTER_LINE}-filter-error", Static).update("")
        if self.drop_filter():
            self.reload()
        self.query_one(DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == f"{self.FILTER_LINE}-filter":
            self.apply_filter(event.value)

    def apply_filter(self, text: str) -> None:
        """Read the table through the filter ``text`` says; a mistake is shown under the line."""
        error = self.query_one(f"#{self.FILTER_LINE}-filter-error", Static)
        try:
            self.read_filter(text)
        except InvalidInput as exc:
            error.update(exc.message)
            return
        error.update("")
        self.reload()
        self.query_one(DataTable).focus()

    def show_field_error(self, field: str, message: str) -> bool:
        """Put an engine's complaint about a filter field under the line (the error handler asks)."""
        if field in self.FILTER_FIELDS:
            self.query_one(f"#{self.FILTER_LINE}-filter-error", Static).update(message)
            return True
        return False
