"""A KHQR on screen is always scannable (Pilot, SQLite and PostgreSQL): drawn whole with its
four-module quiet zone or not at all (an 80×24 terminal is told to grow, or to use the card),
the footer and the alert line always in view, and no toast ever over the code (cashier, QR
dialog, payment detail)."""

from __future__ import annotations

from typing import Any

from textual.widgets import Footer
from textual.widgets._toast import Toast

from bakong_console.tui.dialogs.payment_dialogs import PaymentQRDialog
from bakong_console.tui.screens.cashier import CashierScreen
from bakong_console.tui.widgets.alerts import AlertBar
from bakong_console.tui.widgets.khqr_code import KHQRCode
from engine.khqr import render_terminal
from engine.runtime import Engine
from tests.tui.conftest import console_app, quiet, wait_until


async def _show_qr(pilot: Any, amount: str = "25000") -> CashierScreen:
    await pilot.press("n", *amount, "enter")
    cashier = pilot.app.screen
    assert isinstance(cashier, CashierScreen)
    await wait_until(pilot, lambda: cashier.payment is not None, what="the payment")
    await quiet(pilot)
    return cashier


def _in_view(screen: Any, widget: Any) -> bool:
    region = widget.region
    return widget.display and region.height >= 1 and region.bottom <= screen.size.height


async def test_at_80x24_the_qr_place_says_what_to_do_and_the_footer_stays(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        cashier = await _show_qr(pilot)
        code = cashier.query_one(KHQRCode)
        # 25 rows of code and quiet zone cannot fit in the 21 left by the header, alerts and footer.
        assert code.code_rows > 21
        assert not code.showing_code
        said = code.render().plain
        assert "▀" not in said and "█" not in said and "▄" not in said
        assert "Enlarge the terminal, or press v for the card." in " ".join(said.split())
        assert _in_view(cashier, cashier.query_one(Footer)) and _in_view(cashier, cashier.query_one(AlertBar))
        side = cashier.query_one("#cashier-side")
        assert side.region.x >= code.region.right and side.region.right <= 80
        assert cashier.query_one("#cashier-countdown").region.bottom <= 24 - 2


async def test_a_code_that_fits_is_drawn_whole_with_its_quiet_zone(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        cashier = await _show_qr(pilot)
        code = cashier.query_one(KHQRCode)
        assert cashier.payment is not None
        assert code.showing_code
        assert code.region.height >= code.code_rows
        # Every line of the drawing, the four-module quiet zone (two rows of full blocks) included.
        full = render_terminal(cashier.payment.khqr).split("\n")
        assert code.render().plain.split("\n")[: len(full)] == full
        assert full[0] == full[1] == "█" * len(full[0])
        assert _in_view(cashier, cashier.query_one(Footer)) and _in_view(cashier, cashier.query_one(AlertBar))


async def _toasts_clear_of(pilot: Any, code: KHQRCode) -> None:
    app = pilot.app
    app.notify("Bakong: connection timed out while checking 3 payments; retrying in 30 s", title="Bakong unreachable", timeout=60)
    app.notify("A second toast, to stack them", timeout=60)
    await wait_until(pilot, lambda: len(app.screen.query(Toast)) >= 2, what="the toasts")
    await pilot.pause()
    assert code.showing_code
    width = app.screen.size.width
    for toast in app.screen.query(Toast):
        # Whole, readable, on screen, and off the code.
        assert toast.region.width >= 20 and 0 <= toast.region.x and toast.region.right <= width, toast.region
        assert not toast.region.overlaps(code.region), (toast.region, code.region)


async def test_toasts_never_cover_the_cashiers_qr(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        cashier = await _show_qr(pilot)
        await _toasts_clear_of(pilot, cashier.query_one(KHQRCode))


async def test_toasts_keep_off_the_qr_after_the_terminal_grows(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        cashier = await _show_qr(pilot)
        assert not cashier.query_one(KHQRCode).showing_code
        await pilot.resize_terminal(100, 32)
        await quiet(pilot)
        await _toasts_clear_of(pilot, cashier.query_one(KHQRCode))


async def test_toasts_never_cover_the_qr_dialog(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await _show_qr(pilot)
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, PaymentQRDialog), what="the QR dialog")
        await quiet(pilot)
        await _toasts_clear_of(pilot, app.screen.query_one(KHQRCode))


async def test_toasts_never_cover_the_qr_on_a_payments_detail(engine: Engine) -> None:
    from bakong_console.tui.screens.detail import PaymentDetailScreen
    from tests.tui.conftest import OPERATOR

    await engine.payments.initiate("6000", "KHR", actor=OPERATOR, reference="table-6")
    app = console_app(engine)
    async with app.run_test(size=(120, 32), notifications=True) as pilot:
        await quiet(pilot, engine)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PaymentDetailScreen), what="the detail screen")
        await quiet(pilot)
        await _toasts_clear_of(pilot, app.screen.query_one(KHQRCode))
