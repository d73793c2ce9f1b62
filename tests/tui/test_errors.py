"""The one error handler, shared by the console and the setup app (``dialogs.error.report_error``):
a complaint about a field goes by the field, an engine error is a toast, a bug opens the error
dialog and is logged; the app keeps running."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from bakong_console.tui.dialogs.error import ErrorDialog
from bakong_console.tui.setup_app import SetupApp
from engine.errors import InvalidInput, InvalidTransition
from engine.runtime import Engine
from engine.services.setup import SetupSession
from tests.tui.conftest import console_app, shown


class FieldSource:
    """A form that shows complaints about its ``amount`` field."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []

    def show_field_error(self, field: str, message: str) -> bool:
        if field != "amount":
            return False
        self.shown.append((field, message))
        return True


async def _report_each_kind(app: Any, pilot: Any, caplog: pytest.LogCaptureFixture) -> None:
    source = FieldSource()
    app.show_error(InvalidInput("whole riel only", field="amount"), action="create the payment", source=source)
    assert source.shown == [("amount", "whole riel only")]
    assert list(app._notifications) == []

    app.show_error(InvalidInput("no such terminal", field="terminal"), action="create the payment", source=source)
    app.show_error(InvalidTransition("it is PAID"), action="cancel the payment")
    await pilot.pause()
    assert [(n.title, n.message) for n in app._notifications] == [
        ("Could not create the payment", "no such terminal"),
        ("Could not cancel the payment", "it is PAID"),
    ]
    assert not isinstance(app.screen, ErrorDialog)

    with caplog.at_level(logging.ERROR, logger="bakong_console.tui"):
        app.show_error(RuntimeError("the disk is full"), action="save the card")
        await pilot.pause()
    dialog = app.screen
    assert isinstance(dialog, ErrorDialog)
    assert dialog.title_text == "Could not save the card"
    assert shown(dialog.query_one(".dialog-body", Static)) == "RuntimeError: the disk is full"
    assert [(r.getMessage(), r.exc_info is not None) for r in caplog.records] == [("save the card failed", True)]
    await pilot.press("enter")
    await pilot.pause()
    assert not isinstance(app.screen, ErrorDialog) and app.is_running


async def test_the_console_reports_errors_through_the_shared_handler(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        await _report_each_kind(app, pilot, caplog)


async def test_setup_reports_errors_through_the_shared_handler(isolated_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    session = SetupSession(isolated_home / "config" / "bakong-console" / "config.toml")
    app = SetupApp(session, session.defaults())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await _report_each_kind(app, pilot, caplog)
