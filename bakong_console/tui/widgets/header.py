"""``EngineHeader``: the line that always says where the console is.

SANDBOX or PRODUCTION, the database, who runs the workers (this console or a daemon), the Bakong
requests left today and the days until the token expires. When the line is too narrow the
database path gives way first (shortened from the left), so the mode badge is always shown.
"""

from __future__ import annotations

import os

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from bakong_console.tui.state import EngineStatus

__all__ = ["EngineHeader", "short_database"]

_SANDBOX = Style.parse("bold black on yellow")
_PRODUCTION = Style.parse("bold white on red")
_WARN = Style.parse("bold yellow")
_ERROR = Style.parse("bold white on red")
_MUTED = Style.parse("dim")


def short_database(database: str, home: str | None = None) -> str:
    """The database as people read it: the home directory written as ~."""
    home = home if home is not None else os.path.expanduser("~")
    if database.startswith("sqlite:") and home and home != "/":
        path = database[len("sqlite:") :]
        prefix = home.rstrip("/") + "/"
        if path.startswith(prefix):
            return "sqlite:~/" + path[len(prefix) :]
    return database


class EngineHeader(Widget):
    """One line: mode badge, database, workers, Bakong budget, token expiry."""

    DEFAULT_CSS = """
    EngineHeader {
        dock: top;
        height: 1;
        width: 1fr;
        background: $panel;
        color: $text;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.status: EngineStatus | None = None

    def on_mount(self) -> None:
        state = getattr(self.app, "state", None)
        if state is not None:
            self.show(state.status)
            self.app.status_signal.subscribe(self, self.show)  # type: ignore[attr-defined]

    def show(self, status: EngineStatus) -> None:
        self.status = status
        self.refresh()

    def render(self) -> Text:
        status = self.status
        if status is None:
            return Text("")
        width = self.size.width or 80
        compact = width < 100
        badge = Text(" SANDBOX " if status.sandbox else " PRODUCTION ", style=_SANDBOX if status.sandbox else _PRODUCTION)
        if compact:
            workers = {"here": "workers here", "daemon": "daemon works", "nobody": "no workers"}
        else:
            workers = {"here": "workers: this console", "daemon": "workers: daemon", "nobody": "workers: none"}
        sep = " │ " if compact else "  │  "
        right = Text()
        right.append(workers.get(status.workers, status.workers))
        right.append(sep, style=_MUTED)
        if status.requests_left is None:
            right.append("Bakong —")
        else:
            left = f"{status.requests_left}/{status.requests_budget}"
            right.append(f"Bakong {left}" if compact else f"Bakong: {left} left", style=_WARN if status.requests_left <= 5 else "")
        right.append(sep, style=_MUTED)
        if status.token_expired:
            right.append(" token EXPIRED ", style=_ERROR)
        elif status.token_days is None:
            right.append("token: no expiry")
        else:
            right.append(f"token {status.token_days}d" if compact else f"token: {status.token_days}d", style=_WARN if status.token_days <= 7 else "")
        right.append(" ")
        room = width - badge.cell_len - right.cell_len - 4
        database = short_database(status.database)
        if room < len(database):
            database = ("…" + database[-(room - 1) :]) if room > 8 else ""
        line = Text()
        line.append_text(badge)
        line.append("  ")
        line.append(database, style=_MUTED)
        line.append(" " * max(1, width - badge.cell_len - 2 - len(database) - right.cell_len))
        line.append_text(right)
        line.truncate(width)
        return line
