"""The close-day dialog (Pilot, SQLite and PostgreSQL): ``z`` on the Reports screen closes the
day on screen through the engine's close service, recording the console's operator; while
payments wait it needs "force" and a typed reason, and a refusal writes nothing; the service's
refusals show in the dialog; a closed day opens read-only; Escape writes nothing.

The clock is the frozen 2026-01-15 10:00 Phnom Penh."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, Input, Static

from bakong_console.tui.dialogs.day_close import DayCloseDialog
from bakong_console.tui.screens.reports import ReportsScreen
from engine.db import journal
from engine.db.models import DayCloseRow
from engine.records import Event
from engine.runtime import Engine
from tests.tui.conftest import CASHIER, OPERATOR, console_app, quiet, shown, wait_until

SIZE = (120, 40)
TODAY = date(2026, 1, 15)
YESTERDAY = date(2026, 1, 14)


async def close_rows(engine: Engine) -> list[tuple[str, str, bool, str | None]]:
    async with engine.storage.read() as tx:
        rows = (await tx.session.scalars(select(DayCloseRow).order_by(DayCloseRow.day))).all()
        return [(r.day.isoformat(), r.closed_by, r.forced, r.reason) for r in rows]


async def day_closed_events(engine: Engine) -> list[Event]:
    async with engine.storage.read() as tx:
        return await journal.events_since(tx, 0, types=["day.closed"])


async def open_dialog(pilot: Pilot[Any], *keys: str) -> DayCloseDialog:
    """Reports, the day after ``keys`` ([ ] t), then ``z``: the dialog once it has read the day."""
    app = pilot.app
    await pilot.press("r")
    screen = app.screen
    assert isinstance(screen, ReportsScreen)
    await wait_until(pilot, lambda: screen.report is not None, what="the report")
    for key in keys:
        await pilot.press(key)
        await quiet(pilot)
    await pilot.press("z")
    await wait_until(pilot, lambda: isinstance(app.screen, DayCloseDialog) and app.screen.report is not None, what="the dialog's day")
    dialog = app.screen
    assert isinstance(dialog, DayCloseDialog)
    return dialog


def text_of(dialog: DayCloseDialog, selector: str) -> str:
    return shown(dialog.query_one(selector, Static))


async def test_closes_the_day_on_screen_with_the_operator_and_the_screen_shows_it_closed(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_dialog(pilot, "left_square_bracket")
        assert dialog.day == YESTERDAY
        assert "To be closed by cashier:dara" in text_of(dialog, "#close-who")
        assert "Nothing waits for a decision." in text_of(dialog, "#close-waiting")
        preview = text_of(dialog, "#close-preview")
        assert "Z REPORT 2026-01-14" in preview and "By cashier:dara" in preview
        assert max(len(line) for line in preview.splitlines()) <= 42
        assert not dialog.query_one("#close-force", Checkbox).display
        assert app.focused is dialog.query_one("#close-confirm", Button)

        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, ReportsScreen)
        await wait_until(pilot, lambda: screen.report is not None and screen.report.close is not None, what="the day shown closed")

        assert await close_rows(engine) == [("2026-01-14", "cashier:dara", False, None)]
        [event] = await day_closed_events(engine)
        assert event.subject_id == "2026-01-14" and event.payload["closed_by"] == "cashier:dara"
        assert "CLOSED" in shown(screen.query_one("#reports-title", Static)) and "by cashier:dara" in shown(screen.query_one("#reports-title", Static))
        assert [n.title for n in app._notifications] == ["Day closed"]


async def test_waiting_payments_need_force_and_a_reason_and_a_refusal_writes_nothing(engine: Engine) -> None:
    pending = (await engine.payments.initiate("5000", "KHR", actor=CASHIER, reference="table-1")).payment
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_dialog(pilot)
        assert dialog.day == TODAY
        waiting = text_of(dialog, "#close-waiting")
        assert "1 payment needs a decision" in waiting
        assert "PENDING" in waiting and "the payer may still pay: wait until it is paid or expired" in waiting
        assert pending.id in text_of(dialog, "#close-preview")
        assert app.focused is dialog.query_one("#close-force", Checkbox)
        assert dialog.query_one("#close-reason", Input).disabled

        # Not forced: the dialog says what is missing.
        await pilot.click("#close-confirm")
        await quiet(pilot, engine)
        assert "1 payment waits for a decision" in text_of(dialog, "#close-error")
        # Forced with no reason (blanks are none): the message is by the field.
        await pilot.press("space")  # ticks "Close anyway"; the reason field takes the focus
        assert app.focused is dialog.query_one("#close-reason", Input)
        await pilot.press("space", "space", "enter")
        await quiet(pilot, engine)
        assert text_of(dialog, "#close-reason-error") == "A reason is required to close by force."
        assert text_of(dialog, "#close-error") == ""
        assert app.screen is dialog
        assert await close_rows(engine) == [] and await day_closed_events(engine) == []

        # Escape leaves without writing anything.
        await pilot.press("escape")
        await quiet(pilot, engine)
        assert isinstance(app.screen, ReportsScreen)
        assert await close_rows(engine) == [] and await day_closed_events(engine) == []


async def test_a_forced_close_stores_the_reason_and_the_closed_day_opens_read_only(engine: Engine) -> None:
    await engine.payments.initiate("5000", "KHR", actor=CASHIER, reference="table-1")
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_dialog(pilot)
        await pilot.press("space")
        await pilot.press(*"checked by phone")  # letters are typed, never shortcuts (no quit, no board)
        assert "FORCED: checked by phone" in text_of(dialog, "#close-preview")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, ReportsScreen)
        await wait_until(pilot, lambda: screen.report is not None and screen.report.close is not None, what="the day shown closed")
        assert await close_rows(engine) == [("2026-01-15", "cashier:dara", True, "checked by phone")]
        [event] = await day_closed_events(engine)
        assert event.payload["forced"] is True and event.payload["reason"] == "checked by phone"

        closed = await open_dialog(pilot)
        said = text_of(closed, "#close-who")
        assert "Closed 2026-01-15 10:00:00 +07 by cashier:dara" in said and "Forced: checked by phone" in said
        assert "FORCED: checked by phone" in text_of(closed, "#close-preview")
        for control in ("#close-confirm", "#close-force", "#close-reason"):
            assert not closed.query_one(control).display, control
        assert app.focused is closed.query_one("#close-back", Button)
        await pilot.press("enter")
        await quiet(pilot, engine)
        assert isinstance(app.screen, ReportsScreen)
        assert len(await close_rows(engine)) == 1 and len(await day_closed_events(engine)) == 1


async def test_the_services_refusals_show_in_the_dialog(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        # Today, nothing waits when the dialog opens; a payment comes before the confirm.
        dialog = await open_dialog(pilot)
        assert not dialog.query_one("#close-force", Checkbox).display
        await engine.payments.initiate("7000", "KHR", actor=CASHIER, reference="table-9")
        await pilot.click("#close-confirm")
        await wait_until(pilot, lambda: dialog.query_one("#close-force", Checkbox).display, what="the refusal")
        assert app.screen is dialog
        assert text_of(dialog, "#close-error").startswith("2026-01-15 cannot be closed: 1 payments still need a decision (PENDING 1)")
        assert "1 payment needs a decision" in text_of(dialog, "#close-waiting")
        assert await close_rows(engine) == []
        await pilot.press("escape")

        # Yesterday, closed from the command line while the dialog was open.
        dialog = await open_dialog(pilot, "left_square_bracket")
        await engine.day_close.close(YESTERDAY, actor=OPERATOR)
        await pilot.click("#close-confirm")
        await wait_until(pilot, lambda: dialog.report is not None and dialog.report.close is not None, what="the close made meanwhile")
        assert text_of(dialog, "#close-error").startswith("2026-01-14 was already closed at 2026-01-15T03:00:00")
        assert "by cli:sokha" in text_of(dialog, "#close-who")
        assert not dialog.query_one("#close-confirm").display
        assert await close_rows(engine) == [("2026-01-14", "cli:sokha", False, None)]


async def test_a_day_still_to_come_says_why_it_cannot_be_closed(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await quiet(pilot, engine)
        dialog = DayCloseDialog(date(2026, 1, 16))
        await app.push_screen(dialog)
        await wait_until(pilot, lambda: text_of(dialog, "#close-error") != "", what="the explanation")
        assert text_of(dialog, "#close-error") == (
            "This day cannot be closed: date 2026-01-16 is in the future (today is 2026-01-15 in Asia/Phnom_Penh)"
        )
        assert not dialog.query_one("#close-confirm").display
        assert await close_rows(engine) == []
