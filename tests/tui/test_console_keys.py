"""Where the cashier's and operator's keys go (Pilot, SQLite and PostgreSQL): typed into a form
they never fire shortcuts; back on the cashier screen they reach the visible face, never the
hidden form; b shows the board from anywhere; nothing is focused before a screen says so."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Button, Input

from bakong_console.tui.app import BakongConsoleApp
from bakong_console.tui.dialogs.payment_dialogs import CancelPaymentDialog
from bakong_console.tui.screens.audit import AuditScreen
from bakong_console.tui.screens.board import BoardScreen
from bakong_console.tui.screens.cashier import CashierScreen
from bakong_console.tui.screens.detail import PaymentDetailScreen
from engine.clock import ManualClock
from engine.db.payments import PaymentFilter
from engine.records import PaymentStatus
from engine.runtime import Engine
from tests.support.engine import run_for
from tests.tui.conftest import OPERATOR, console_app, quiet, wait_until

SIZE = (100, 32)


async def test_letters_typed_on_the_currency_button_are_not_shortcuts(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", *"4000", "tab")
        cashier = app.screen
        assert isinstance(cashier, CashierScreen)
        assert isinstance(app.focused, Button) and app.focused.id == "cashier-currency"
        # Every app and cashier shortcut letter (q quits, a opens Audit, b, w, s, n, p, v, x...).
        await pilot.press(*"table-7 quit abnwsvcxrpPL")
        await pilot.pause()
        assert app.is_running and app.return_code is None
        assert app.screen is cashier and app.current_mode == "cashier"
        assert app.focused is not None and app.focused.id == "cashier-currency"
        # The footer does not offer letters that would only be typed into the form.
        assert not {"q", "a", "b", "n"} & set(app.screen.active_bindings)
        # Keys that are not characters still work: Tab to the reference, where the text goes.
        await pilot.press("tab", *"table-7", "enter")
        await wait_until(pilot, lambda: cashier.payment is not None, what="the payment")
        assert cashier.payment is not None and cashier.payment.reference == "table-7"
        assert (cashier.payment.amount_minor, cashier.payment.currency) == (4000, "KHR")


async def test_escape_leaves_the_form_and_letters_are_shortcuts_again(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "escape")
        assert isinstance(app.screen, CashierScreen) and app.focused is None
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, AuditScreen)


async def _cashier_paid_then_board_then_back(pilot: Any, engine: Engine, clock: ManualClock) -> CashierScreen:
    app = pilot.app
    await pilot.press("n", *"5000", "enter")
    cashier = app.screen
    assert isinstance(cashier, CashierScreen)
    await wait_until(pilot, lambda: cashier.payment is not None, what="the payment")
    await pilot.press("p")
    await quiet(pilot, engine)
    await run_for(engine, clock, 6)
    await wait_until(pilot, lambda: cashier.payment is not None and cashier.payment.status is PaymentStatus.PAID, what="PAID")
    await pilot.press("b")
    await pilot.pause()
    assert isinstance(app.screen, BoardScreen)
    await pilot.press("n")
    await pilot.pause()
    assert app.screen is cashier
    return cashier


async def test_back_on_the_cashier_screen_keys_reach_the_qr_face_not_the_hidden_form(engine: Engine, clock: ManualClock) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        cashier = await _cashier_paid_then_board_then_back(pilot, engine, clock)
        first = cashier.payment
        assert first is not None
        # Nothing in the hidden form has the focus, so n starts the next customer...
        assert app.focused is None
        await pilot.press("n")
        await pilot.pause()
        assert cashier.payment is None
        assert app.focused is cashier.query_one("#cashier-amount", Input)
        # ...whose payment is a new one (a fresh idempotency key), not a conflict with the first.
        await pilot.press(*"7000", "enter")
        await wait_until(pilot, lambda: cashier.payment is not None, what="the second payment")
        second = cashier.payment
        assert second is not None and second.id != first.id and second.amount_minor == 7000
        page, _ = await engine.payments.search(PaymentFilter())
        assert sorted(p.amount_minor for p in page) == [5000, 7000]
        assert not any("dempotency" in n.message for n in app._notifications)


async def test_q_quits_from_the_qr_face_after_going_back_to_it(engine: Engine, clock: ManualClock) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await _cashier_paid_then_board_then_back(pilot, engine, clock)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_keep_it_in_the_cancel_dialog_gives_the_keys_back_to_the_qr(engine: Engine, clock: ManualClock) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", *"9000", "enter")
        cashier = app.screen
        assert isinstance(cashier, CashierScreen)
        await wait_until(pilot, lambda: cashier.payment is not None, what="the payment")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, CancelPaymentDialog), what="the cancel dialog")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is cashier, what="the cashier screen again")
        assert app.focused is None
        await pilot.press("p")
        await quiet(pilot, engine)
        await run_for(engine, clock, 6)
        await wait_until(pilot, lambda: cashier.payment is not None and cashier.payment.status is PaymentStatus.PAID, what="PAID")
        assert cashier.payment is not None
        assert (await engine.payments.get(cashier.payment.id)).status is PaymentStatus.PAID
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_b_on_the_detail_screen_shows_the_board(engine: Engine) -> None:
    await engine.payments.initiate("1200", "KHR", actor=OPERATOR, reference="table-3")
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await quiet(pilot, engine)
        board = app.screen
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PaymentDetailScreen), what="the detail screen")
        await pilot.press("b")
        await pilot.pause()
        assert app.screen is board
        # From another mode too: the board comes back without the detail over it.
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PaymentDetailScreen), what="the detail screen")
        await pilot.press("w", "b")
        await pilot.pause()
        assert app.screen is board


async def test_a_key_pressed_while_the_board_starts_is_not_typed_into_the_search(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    focused_at_mount: list[object] = []

    class WatchedBoard(BoardScreen):
        def on_mount(self) -> None:
            # Runs before BoardScreen.on_mount: what a key pressed now would reach.
            focused_at_mount.append(self.focused)

    monkeypatch.setitem(BakongConsoleApp.MODES, "board", WatchedBoard)
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await quiet(pilot, engine)
        board = app.screen
        assert isinstance(board, WatchedBoard)
        assert focused_at_mount == [None]
        assert app.focused is board.table
