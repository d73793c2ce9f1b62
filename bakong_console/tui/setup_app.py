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

from bakong_console.tui.dialogs.error import ErrorDialog
from bakong_console.tui.screens.setup import SetupScreen
from engine.bakong.models import Diagnosis
from engine.errors import BakongConsoleError, InvalidInput
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
        """The one error handler: a complaint about an answer goes under it, other engine errors
        become a toast, anything unexpected an error dialog; the form stays."""
        if isinstance(exc, InvalidInput) and exc.field:
            show_field_error = getattr(source, "show_field_error", None)
            if show_field_error is not None and show_field_error(exc.field, exc.message):
                return
        if isinstance(exc, BakongConsoleError):
            self.notify(exc.message, title=f"Could not {action}", severity="error", timeout=8)
            return
        log.error("setup: %s failed", action, exc_info=exc)
        self.push_screen(ErrorDialog(f"Could not {action}", f"{type(exc).__name__}: {exc}"))


def run_setup_app(session: SetupSession, answers: dict[str, str], *, reason: str | None = None, **run: Any) -> SetupOutcome | None:
    """Run the setup screen until it is finished or quit."""
    return SetupApp(session, answers, reason=reason).run(**run)
