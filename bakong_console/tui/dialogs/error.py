"""What a console app does with a failure: ``report_error``, the one error handler both apps (the
console and setup) answer with, and ``ErrorDialog``, what went wrong when it was not an engine
error (a bug), without crashing."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from engine.errors import BakongConsoleError, InvalidInput

__all__ = ["ErrorDialog", "report_error"]


class ErrorDialog(ModalScreen[None]):
    """A title, the error, and OK."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "dismiss", "Close", id="dialog.close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box -error"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, classes="dialog-body", markup=False)
            yield Static("The console keeps running; the details are in the log.", classes="dialog-hint")
            yield Button("OK", id="error-ok", variant="error", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


def report_error(app: App[Any], exc: BaseException, *, action: str, source: object | None, log: logging.Logger) -> None:
    """Tell the person at ``app`` that ``action`` failed; the app keeps running.

    A complaint about one field goes by that field when ``source`` (the screen or form that
    asked) can show it (``show_field_error(field, message) -> bool``); any other engine error
    becomes a toast; anything unexpected is logged with its traceback and opens an ``ErrorDialog``.
    """
    if isinstance(exc, InvalidInput) and exc.field:
        show_field_error = getattr(source, "show_field_error", None)
        if show_field_error is not None and show_field_error(exc.field, exc.message):
            return
    if isinstance(exc, BakongConsoleError):
        app.notify(exc.message, title=f"Could not {action}", severity="error", timeout=8)
        return
    log.error("%s failed", action, exc_info=exc)
    app.push_screen(ErrorDialog(f"Could not {action}", f"{type(exc).__name__}: {exc}"))
