"""The customer displays of this console's terminal: pair one, see them, revoke one.

``p`` asks the engine for a pairing code and shows it large with the display's address (open the
address on the display, type the code); ``x`` revokes the highlighted display, whose page goes
back to asking for a code. The list follows ``display.*`` events, so a display paired a moment
ago shows up by itself.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from bakong_console.times import local_time
from bakong_console.tui.context import ConsoleContext
from bakong_console.tui.widgets.alerts import AlertBar
from bakong_console.tui.widgets.header import EngineHeader
from bakong_console.tui.work import engine_work
from engine.db.displays import Display
from engine.records import Event
from engine.services.displays import PairingCode
from engine.terminals import terminal_name

__all__ = ["DisplaysScreen"]


class DisplaysScreen(Screen[None]):
    """This terminal's displays, oldest first, and the pairing code just made."""

    app: ConsoleContext  # type: ignore[assignment]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pair", "Pairing code", id="displays.pair"),
        Binding("x", "revoke", "Revoke display", id="displays.revoke"),
    ]

    def __init__(self) -> None:
        super().__init__(id="displays")
        self.displays: list[Display] = []
        self.pairing: PairingCode | None = None

    @property
    def terminal(self) -> str:
        return terminal_name(self.app.engine.settings.console.terminal)

    def compose(self) -> ComposeResult:
        yield EngineHeader()
        yield Static("", id="displays-address", markup=False)
        yield Static("", id="displays-pairing")
        yield DataTable(id="displays-table", cursor_type="row", zebra_stripes=True)
        yield AlertBar()
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Display", key="id")
        table.add_column("Status", key="status")
        table.add_column("Paired", key="paired", width=19)
        table.add_column("Last seen", key="seen", width=19)
        table.focus()
        self.query_one("#displays-address", Static).update(
            f"Customer display of terminal {self.terminal}: {self.app.engine.displays.url(self.terminal)}"
        )
        self._show_pairing()
        self.app.audit_signal.subscribe(self, self._changed)
        self.reload()

    def _changed(self, event: Event) -> None:
        if event.subject_type == "display":
            if self.pairing is not None and event.subject_id == self.pairing.display.id and event.type == "display.paired":
                self.pairing = None  # used: the code is gone
                self._show_pairing()
            self.reload()

    def _show_pairing(self) -> None:
        box = self.query_one("#displays-pairing", Static)
        if self.pairing is None:
            box.update(Text("p: a pairing code for a new display", style="dim"))
            return
        code = self.pairing.code
        text = Text()
        text.append("Pairing code  ", style="bold")
        text.append(f"{code[:3]} {code[3:]}", style="bold reverse")
        text.append(f"\nopen {self.app.engine.displays.url(self.terminal)} on the display and type it")
        text.append(f"\nworks once, until {local_time(self.pairing.expires_at)}", style="dim")
        box.update(text)

    @engine_work(exclusive=True, group="displays-load", what="read the displays")
    async def reload(self) -> None:
        displays = await self.app.engine.displays.list(terminal=self.terminal)
        self.displays = displays
        now = self.app.engine.clock.now()
        table = self.query_one(DataTable)
        table.clear()
        for d in displays:
            table.add_row(d.id, d.status(now), local_time(d.paired_at, missing="—"), local_time(d.last_seen_at, missing="—"), key=d.id)

    def action_pair(self) -> None:
        self.start_pairing()

    @engine_work(exclusive=True, group="displays-pair", what="make a pairing code")
    async def start_pairing(self) -> None:
        self.pairing = await self.app.engine.displays.start_pairing(self.terminal, actor=self.app.actor)
        self._show_pairing()
        self.reload()

    def action_revoke(self) -> None:
        table = self.query_one(DataTable)
        if not self.displays or table.cursor_row < 0 or table.cursor_row >= len(self.displays):
            return
        display = self.displays[table.cursor_row]
        if display.revoked_at is None:
            self.revoke(display.id)

    @engine_work(exclusive=True, group="displays-revoke", what="revoke the display")
    async def revoke(self, display_id: str) -> None:
        await self.app.engine.displays.revoke(display_id, actor=self.app.actor)
        self.notify(f"display {display_id} revoked: it asks for a pairing code again", title="Display revoked")
        self.reload()
