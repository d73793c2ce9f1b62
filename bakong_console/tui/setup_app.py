"""``SetupApp``: the setup screen on its own, for `bakong-console setup` in a terminal and for the
console's first run against real Bakong (before any engine can open: there is no config yet).

It is handed its ``SetupSession`` (Harlequin's split: the app never builds what it talks to) and
ends with ``outcome``: the ``SetupResult`` and Bakong's verdict once the file is written, None
when quit without saving.
"""

from __future__ import annotations

import logging
from typing import Any

from textual.app import App

from bakong_console.tui.dialogs.error import report_error
from bakong_console.tui.screens.setup import SetupScreen
from engine.bakong.models import Diagnosis
from engine.services.setup import SetupResult, SetupSession

__all__ = ["SetupApp", "SetupOutcome", "run_setup_app"]

log = logging.getLogger("bakong_console.tui")

#: What setup ends with: what was written, and Bakong's verdict on it (with what to do).
SetupOutcome = tuple[SetupResult, tuple[Diagnosis, str] | None]


class SetupApp(App[SetupOutcome | None]):
    """The setup screen as an app of its own."""

    CSS_PATH = "setup.tcss"
    TITLE = "bakong-console setup"

    def __init__(self, session: SetupSession, answers: dict[str, str], *, reason: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.answers = answers
        self.reason = reason
        self.outcome: SetupOutcome | None = None

    def on_mount(self) -> None:
        self.push_screen(SetupScreen(self.session, self.answers, reason=self.reason))

    def show_error(self, exc: BaseException, *, action: str = "do that", source: object | None = None) -> None:
        """The one error handler (``dialogs.error.report_error``), shared with the console: a
        complaint about an answer goes under it; the form stays."""
        report_error(self, exc, action=action, source=source, log=log)


def run_setup_app(session: SetupSession, answers: dict[str, str], *, reason: str | None = None, **run: Any) -> SetupOutcome | None:
    """Run the setup screen until it is finished or quit."""
    return SetupApp(session, answers, reason=reason).run(**run)
