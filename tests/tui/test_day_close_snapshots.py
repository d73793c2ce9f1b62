"""Snapshot tests of the close-day dialog (``z`` on the Reports screen), at 80×24 and 120×40: the
busy day with payments still waiting for a decision (the Z report as it would be frozen, what to
do about each status, force and the reason), and the same day once closed by force (read-only,
who closed it and when).

The busy day is today's twelve payments made through the engine (``seed_busy_board``) on the
frozen 2026-01-15 clock; the close is made from the command line's operator.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from textual.pilot import Pilot

from bakong_console.tui.dialogs.day_close import DayCloseDialog
from engine.clock import ManualClock
from engine.runtime import Engine
from tests.tui.conftest import OPERATOR, Shoot, wait_until
from tests.tui.seeds import seed_busy_board
from tests.tui.test_reports_snapshots import NARROW, WIDE, show_reports

TODAY = date(2026, 1, 15)


async def open_close_dialog(pilot: Pilot[Any]) -> None:
    await show_reports(pilot, payments=12)
    await pilot.press("z")
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, DayCloseDialog) and app.screen.report is not None, what="the dialog's day")
    pilot.app.clear_notifications()


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "120x40"])
def test_close_day_with_payments_waiting(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any, size: tuple[int, int]) -> None:
    """Six payments wait (PAID_LATE, NEEDS_REVIEW, PENDING): each status says what to do; the Z
    report beside them; "Close anyway" unticked, the reason field greyed out."""
    on_loop(seed_busy_board(snapshot_engine, clock))

    async def waiting(pilot: Pilot[Any]) -> None:
        await open_close_dialog(pilot)
        dialog = pilot.app.screen
        assert isinstance(dialog, DayCloseDialog) and dialog.report is not None and dialog.report.close is None

    assert shoot(size, waiting)


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "120x40"])
def test_close_day_already_closed(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any, size: tuple[int, int]) -> None:
    """The day closed by force from the command line: its frozen Z report, when and by whom,
    the reason; nothing to confirm."""
    on_loop(seed_busy_board(snapshot_engine, clock))
    on_loop(snapshot_engine.day_close.close(TODAY, actor=OPERATOR, force=True, reason="reviews decided tomorrow"))

    async def closed(pilot: Pilot[Any]) -> None:
        await open_close_dialog(pilot)
        dialog = pilot.app.screen
        assert isinstance(dialog, DayCloseDialog) and dialog.report is not None and dialog.report.close is not None

    assert shoot(size, closed)
