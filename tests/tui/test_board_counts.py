"""The board's numbers stay true without pressing f (Pilot, SQLite and PostgreSQL): the count in
its header follows payments that arrive live, and a payment's check count follows the check that
settled it."""

from __future__ import annotations

from textual.widgets import Static

from bakong_console.tui.screens.board import BoardScreen
from bakong_console.tui.widgets.payments_table import PendingPaymentsTable
from engine.clock import ManualClock
from engine.records import PaymentStatus
from engine.runtime import Engine
from tests.support.engine import run_for
from tests.tui.conftest import OPERATOR, console_app, quiet, shown, wait_until

SIZE = (120, 32)


async def test_the_count_follows_payments_that_arrive_after_the_board_loaded(engine: Engine, clock: ManualClock) -> None:
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        board = app.screen
        assert isinstance(board, BoardScreen)
        table = board.query_one(PendingPaymentsTable)
        await quiet(pilot, engine)
        assert "showing all payments · 0" in shown(board.query_one("#board-filter", Static))
        for n, amount in enumerate(("1000", "2000"), 1):
            clock.advance(1)
            await engine.payments.initiate(amount, "KHR", actor=OPERATOR, reference=f"table-{n}")
            await wait_until(pilot, lambda n=n: table.row_count == n, what=f"payment {n} on the board")
            assert f"showing all payments · {n}" in shown(board.query_one("#board-filter", Static))


async def test_the_check_that_found_a_payment_paid_is_counted_on_the_board(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("3000", "KHR", actor=OPERATOR, reference="table-8")).payment
    app = console_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        board = app.screen
        assert isinstance(board, BoardScreen)
        table = board.query_one(PendingPaymentsTable)
        await quiet(pilot, engine)
        assert engine.sandbox is not None
        await engine.sandbox.pay(qr=payment.khqr)
        await engine.payments.request_check(payment.id, actor=OPERATOR)
        await run_for(engine, clock, 2)
        await wait_until(pilot, lambda: table.get(payment.id).status is PaymentStatus.PAID, what="PAID on the board")
        stored = await engine.payments.get(payment.id)
        assert stored.check_count >= 1
        # The board's watch (every few seconds; the test runs it) brings the count up to date.
        board.refresh_watched()
        await quiet(pilot)
        row = table.get(payment.id)
        assert row is not None and row.check_count == stored.check_count
        assert row.last_check_result == stored.last_check_result
        # Read once: a settled payment is not read again.
        assert not row.watched
