"""The audit log: who did what to which record, newest first, filterable, live.

The filter line takes ``action:payment.cancel``, ``actor:dara`` and ``subject:pay_…`` (a bare
word is a subject id); each is an exact match. ``m`` reads older entries.
"""

from __future__ import annotations

import json
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, Static

from bakong_console.times import local_time
from bakong_console.tui.screens.filter_line import FilterLineScreen
from bakong_console.tui.widgets.alerts import AlertBar
from bakong_console.tui.widgets.header import EngineHeader
from bakong_console.tui.work import engine_work
from engine.errors import InvalidInput
from engine.records import AuditEntry, Event

__all__ = ["AuditFilter", "AuditScreen", "parse_audit_filter"]

PAGE = 200


class AuditFilter(dict[str, str]):
    """``{"action": ..., "actor": ..., "subject_id": ...}`` from the filter line."""


def parse_audit_filter(text: str) -> AuditFilter:
    """Read ``action:X actor:Y subject:Z`` (bare word = subject); refuses unknown keys."""
    names = {"action": "action", "actor": "actor", "subject": "subject_id"}
    out = AuditFilter()
    for token in text.split():
        key, sep, value = token.partition(":")
        if not sep:
            key, value = "subject", token
        if key not in names:
            raise InvalidInput(f"unknown filter {key!r}: use action:, actor: or subject:", field="filter")
        if not value:
            raise InvalidInput(f"{key}: needs a value", field="filter")
        out[names[key]] = value
    return out


class AuditScreen(FilterLineScreen):
    """Newest first; the highlighted entry's before/after below the table."""

    FILTER_LINE = "audit"
    FILTER_FIELDS = ("action", "actor", "subject_id", "filter")

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", id="audit.filter"),
        Binding("m", "more", "Older entries", id="audit.more"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="audit.clear"),
    ]

    def __init__(self) -> None:
        super().__init__(id="audit")
        self.filter = AuditFilter()
        self.entries: list[AuditEntry] = []
        self.exhausted = False

    def compose(self) -> ComposeResult:
        yield EngineHeader()
        yield Input(placeholder="/ filter: action:payment.cancel actor:NAME subject:pay_…", id="audit-filter", compact=True)
        yield Static("", id="audit-filter-error", classes="field-error")
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="audit-entry")
        yield AlertBar()
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("When", key="at", width=19)
        table.add_column("Who", key="actor")
        table.add_column("Action", key="action")
        table.add_column("Subject", key="subject")
        table.add_column("Reason", key="reason")
        table.focus()
        self.app.audit_signal.subscribe(self, self._changed)
        self.reload()

    def _changed(self, event: Event) -> None:
        # Only the first page moves with new entries; an operator paging back keeps their place.
        if len(self.entries) <= PAGE:
            self.reload()

    # --- FilterLineScreen ------------------------------------------------------------------------

    def read_filter(self, text: str) -> None:
        self.filter = parse_audit_filter(text)

    def drop_filter(self) -> bool:
        if not self.filter:
            return False
        self.filter = AuditFilter()
        return True

    def action_more(self) -> None:
        if not self.exhausted and self.entries:
            self.load_older()

    @engine_work(exclusive=True, group="audit-load", what="read the audit log")
    async def reload(self) -> None:
        entries = await self.app.engine.audit.list(limit=PAGE, **self.filter)
        self.entries = entries
        self.exhausted = len(entries) < PAGE
        table = self.query_one(DataTable)
        table.clear()
        self._add(entries)
        self._show_entry()

    @engine_work(exclusive=True, group="audit-load", what="read older audit entries")
    async def load_older(self) -> None:
        entries = await self.app.engine.audit.list(limit=PAGE, before_id=self.entries[-1].id, **self.filter)
        self.entries.extend(entries)
        self.exhausted = len(entries) < PAGE
        self._add(entries)

    def _add(self, entries: list[AuditEntry]) -> None:
        table = self.query_one(DataTable)
        for e in entries:
            table.add_row(
                local_time(e.at),
                f"{e.actor_type}:{e.actor}",
                e.action,
                e.subject_id,
                Text(e.reason or "", style="dim"),
                key=str(e.id),
            )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_entry()

    def _show_entry(self) -> None:
        table = self.query_one(DataTable)
        out = self.query_one("#audit-entry", Static)
        if not self.entries or table.cursor_row >= len(self.entries):
            out.update(Text("No audit entries." if not self.entries else "", style="dim"))
            return
        e = self.entries[table.cursor_row]
        text = Text()
        text.append(f"{e.action} ", style="bold")
        text.append(f"{e.subject_type} {e.subject_id} by {e.actor_type}:{e.actor}")
        if e.source_ip:
            text.append(f" from {e.source_ip}")
        if e.reason:
            text.append(f"\nreason: {e.reason}")
        for label, data in (("before", e.before), ("after", e.after)):
            if data:
                text.append(f"\n{label}: ", style="dim")
                text.append(json.dumps(data, sort_keys=True, ensure_ascii=False))
        out.update(text)
