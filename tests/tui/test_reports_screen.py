"""The Reports screen (Pilot, SQLite and PostgreSQL): ``r`` opens it from every screen; it shows
what the engine's report service says about the day; it follows payments as they change, one
re-read per burst and none while another screen is shown; ``[`` ``]`` ``t`` move between days."""

from __future__ import annotations

from datetime import date

from textual.widgets import Static

from bakong_console.tui.screens.reports import ReportsScreen
from engine.clock import ManualClock
from engine.runtime import Engine
from tests.support.engine import run_for
from tests.tui.conftest import CASHIER, console_app, quiet, shown, wait_until

SIZE = (120, 40)
TODAY = date(2026, 1, 15)


def paid_totals(screen: ReportsScreen) -> list[tuple[str, int, int, int]]:
    assert screen.report is not None
    return [(t.currency, t.payments, t.paid_count, t.paid_minor) for t in screen.report.totals]


async def test_r_opens_reports_from_every_screen(engine: Engine) -> None:
    payment = (await engine.payments.initiate("5000", "KHR", actor=CASHIER, reference="table-1")).payment
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await quiet(pilot, engine)
        for key in ("b", "w", "s", "a", "d", "b"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, ReportsScreen), key
            await pilot.press("r")
            await wait_until(pilot, lambda: isinstance(app.screen, ReportsScreen), what=f"Reports after {key}")
        # The cashier's QR face (the form is not focused there) and a payment's detail screen.
        await pilot.press("n", "escape", "r")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportsScreen), what="Reports from the cashier")
        await pilot.press("b")
        app.open_payment(payment.id)
        await pilot.pause()
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportsScreen), what="Reports from the detail")
        assert len(app.screen_stack) == 1


async def test_shows_the_days_figures_and_follows_payments(engine: Engine, clock: ManualClock) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, ReportsScreen)
        screen.refresh_delay = 0.05
        await wait_until(pilot, lambda: screen.report is not None, what="the first report")
        assert screen.report is not None and screen.report.day == TODAY and screen.report.totals == ()
        assert "no payments yet" in shown(screen.query_one("#reports-totals", Static))

        # A burst of five payments and one paid: one or two re-reads, not one per event.
        loads = screen.loads
        paid = (await engine.payments.initiate("12.50", "USD", actor=CASHIER, reference="order-1")).payment
        for n in range(4):
            await engine.payments.initiate(f"{(n + 1) * 1000}", "KHR", actor=CASHIER, reference=f"table-{n}")
        assert engine.sandbox is not None
        await engine.sandbox.pay(qr=paid.khqr)
        await engine.payments.request_check(paid.id, actor=CASHIER)
        await run_for(engine, clock, 2, step=2)
        await wait_until(pilot, lambda: paid_totals(screen) == [("KHR", 4, 0, 0), ("USD", 1, 1, 1250)], what="the new totals")
        await quiet(pilot, engine)
        assert 1 <= screen.loads - loads <= 3
        totals = shown(screen.query_one("#reports-totals", Static))
        assert "12.50 USD" in totals and "1 of 1" in totals and "0 of 4" in totals
        waiting = shown(screen.query_one("#reports-open", Static))
        assert "Waiting for a decision (4)" in waiting and "4,000 KHR" in waiting
        facts = shown(screen.query_one("#reports-facts", Static))
        assert screen.report is not None and screen.report.bakong.used >= 1
        assert f"{screen.report.bakong.used}/{screen.report.bakong.budget}" in facts
        assert "Not yet checked 1" in facts
        assert [g.key for g in screen.report.cashiers] == ["cashier:dara", "cashier:dara"]


async def test_reads_nothing_while_hidden_and_catches_up_when_shown(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, ReportsScreen)
        screen.refresh_delay = 0.05
        await wait_until(pilot, lambda: screen.report is not None, what="the first report")
        await pilot.press("b")
        loads = screen.loads
        await engine.payments.initiate("7000", "KHR", actor=CASHIER, reference="table-9")
        await quiet(pilot, engine)
        await pilot.pause(0.2)
        assert screen.loads == loads
        await pilot.press("r")
        await wait_until(pilot, lambda: paid_totals(screen) == [("KHR", 1, 0, 0)], what="the payment made meanwhile")


async def test_brackets_move_between_days_and_t_comes_back(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, ReportsScreen)
        await wait_until(pilot, lambda: screen.report is not None, what="the first report")

        async def showing(day: date) -> None:
            await wait_until(pilot, lambda: screen.report is not None and screen.report.day == day, what=day.isoformat())
            await quiet(pilot)

        await pilot.press("left_square_bracket", "left_square_bracket")
        await showing(date(2026, 1, 13))
        assert screen.days[-1].day == date(2026, 1, 13) and len(screen.days) == 30
        title = shown(screen.query_one("#reports-title", Static))
        assert "Tuesday 2026-01-13" in title and "today" not in title.split("·")[0]
        await pilot.press("right_square_bracket")
        await showing(date(2026, 1, 14))
        # Tomorrow is not a day to report on: the screen stays on today.
        await pilot.press("right_square_bracket", "right_square_bracket")
        await showing(TODAY)
        assert screen.day is None
        await pilot.press("left_square_bracket", "t")
        await showing(TODAY)
        assert "(today)" in shown(screen.query_one("#reports-title", Static))
