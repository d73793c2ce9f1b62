"""Snapshot tests: one SVG per screen state an operator must recognise.

Deterministic by STYLE.md's rules: a fixed terminal size per test, data seeded through the engine
with fixed amounts and references, seeded ids and randomness, the frozen ``ManualClock`` (moved
only by the test), cursor blink and animations off, timers that never fire, SQLite under the
isolated home (the header reads ``sqlite:~/data/console.db`` on every machine). The one webhook
endpoint is ``http://127.0.0.1:9/hooks``: a privileged loopback port nothing listens on, so its
deliveries fail with a refused connection without any network (the error text is Linux's).

How the console runs here: ``shoot`` in ``conftest.py`` (the app on the engine's own loop); the
seeded payments come from ``seeds.py``.

Update the baselines with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at
them before committing.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from bakong_console.tui.dialogs.payment_dialogs import ResolveDialog
from bakong_console.tui.screens.board import BoardScreen
from bakong_console.tui.screens.cashier import CashierScreen
from bakong_console.tui.screens.detail import PaymentDetailScreen
from bakong_console.tui.screens.webhooks import WebhooksScreen
from bakong_console.tui.widgets.payments_table import PendingPaymentsTable
from engine.clock import ManualClock
from engine.records import PaymentStatus
from engine.runtime import Engine
from tests.support.engine import run_for
from tests.tui.conftest import Shoot, quiet, shown, wait_until
from tests.tui.seeds import REFUSING_ENDPOINT, customer_pays, new_payment, seed_busy_board, seed_refusing_endpoint

BOARD = (120, 32)
CASHIER_SIZE = (100, 36)
NARROW = (80, 24)


# --- the board --------------------------------------------------------------------------------------


def test_empty_board(shoot: Shoot) -> None:
    """A new install: SANDBOX, the database under ~, workers here, nothing paid yet, no alerts."""
    assert shoot(BOARD)


def test_busy_board(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any) -> None:
    """Twelve payments in every status, KHR and USD totals side by side (never summed)."""
    on_loop(seed_busy_board(snapshot_engine, clock))

    async def ready(pilot: Pilot[Any]) -> None:
        table = pilot.app.screen.query_one(PendingPaymentsTable)
        await wait_until(pilot, lambda: table.row_count == 12, what="the twelve payments")
        # Only the review alert: the late payment and the wrong amount wait for an operator.
        await wait_until(pilot, lambda: set(pilot.app.state.alerts) == {"review"}, what="the review alert")

    assert shoot(BOARD, ready)


def test_needs_review_board(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any) -> None:
    """A wrong amount arrives while the operator watches: the row turns NEEDS_REVIEW, a toast
    says what to do, and the status bar counts the payments waiting for a decision."""
    engine = snapshot_engine
    on_loop(new_payment(engine, clock, "5000", "KHR", "table-4"))
    review = on_loop(new_payment(engine, clock, "10.00", "USD", "order-1043"))

    async def wrong_amount(pilot: Pilot[Any]) -> None:
        await customer_pays(engine, review, wrong_amount=True)
        await run_for(engine, clock, 2, step=2)
        table = pilot.app.screen.query_one(PendingPaymentsTable)
        await wait_until(pilot, lambda: table.get(review.id) is not None and table.get(review.id).status is PaymentStatus.NEEDS_REVIEW, what="NEEDS_REVIEW")
        await wait_until(pilot, lambda: "review" in pilot.app.state.alerts, what="the review alert")
        assert table.cursor_payment is not None and table.cursor_payment.id == review.id

    assert shoot(BOARD, wrong_amount)


def test_resolve_dialog(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any) -> None:
    """The resolve dialog over the board: what went wrong, and a reason before Accept or Reject."""
    engine = snapshot_engine
    review = on_loop(new_payment(engine, clock, "10.00", "USD", "order-1043"))
    on_loop(customer_pays(engine, review, wrong_amount=True))
    on_loop(run_for(engine, clock, 2, step=2))

    async def open_dialog(pilot: Pilot[Any]) -> None:
        board = pilot.app.screen
        assert isinstance(board, BoardScreen)
        board.action_resolve()
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ResolveDialog), what="the resolve dialog")
        reason = pilot.app.screen.query_one("#resolve-reason", Input)
        reason.value = "customer paid the cent in cash"
        # The Input selects all its text when its Focus event is handled: after that event, put
        # the cursor at the end as typing would, or the highlight comes and goes between runs.
        await pilot.pause()
        reason.cursor_position = len(reason.value)
        pilot.app.clear_notifications()

    assert shoot(BOARD, open_dialog)


def test_alerts_token_refused(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any) -> None:
    """Bakong refuses the token: a toast, the red status bar and the header's EXPIRED badge."""
    engine = snapshot_engine
    on_loop(new_payment(engine, clock, "5000", "KHR", "table-4"))

    async def refuse(pilot: Pilot[Any]) -> None:
        sandbox = engine.sandbox
        assert sandbox is not None
        sandbox.faults = sandbox.faults.updated({"token_expired": True})
        await run_for(engine, clock, 6, step=2)  # the next scheduled check meets the refusal
        await wait_until(pilot, lambda: "token" in pilot.app.state.alerts, what="the token alert")
        pilot.app.refresh_status()
        await quiet(pilot, engine)
        assert pilot.app.state.status.token_expired

    assert shoot(BOARD, refuse)


def test_board_80x24(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any) -> None:
    """The board on an 80×24 terminal: the columns that matter, the header in its short form."""
    engine = snapshot_engine
    on_loop(new_payment(engine, clock, "12000", "KHR", "table-2"))
    paid = on_loop(new_payment(engine, clock, "8.00", "USD", "order-1042"))
    on_loop(customer_pays(engine, paid))
    on_loop(run_for(engine, clock, 2, step=2))
    on_loop(new_payment(engine, clock, "2.75", "USD", "walk-in"))

    async def ready(pilot: Pilot[Any]) -> None:
        table = pilot.app.screen.query_one(PendingPaymentsTable)
        await wait_until(pilot, lambda: table.row_count == 3, what="the payments")

    assert shoot(NARROW, ready)


# --- the cashier ------------------------------------------------------------------------------------


async def show_qr(pilot: Pilot[Any]) -> CashierScreen:
    """The cashier asks for 12.50 USD for table-4. The keys are the flow tests' business: a
    Pilot key press waits for the process to go idle, which costs a tenth of a second or more
    while the engine's workers run, so the snapshots set the state directly."""
    await pilot.app.switch_mode("cashier")
    cashier = pilot.app.screen
    assert isinstance(cashier, CashierScreen)
    cashier.action_toggle_currency()
    cashier.query_one("#cashier-amount", Input).value = "12.50"
    cashier.query_one("#cashier-reference", Input).value = "table-4"
    cashier.create_payment()
    await wait_until(pilot, lambda: cashier.payment is not None, what="the QR")
    return cashier


def test_cashier_qr_waiting(shoot: Shoot) -> None:
    """The KHQR, the amount in large digits, the merchant, the countdown, PENDING."""

    async def waiting(pilot: Pilot[Any]) -> None:
        cashier = await show_qr(pilot)
        assert cashier.payment is not None and (cashier.payment.amount_minor, cashier.payment.currency) == (1250, "USD")

    assert shoot(CASHIER_SIZE, waiting)


def test_cashier_paid(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock) -> None:
    """Paid: the panel turns green, the QR dims so nobody scans it again, next customer on n."""
    engine = snapshot_engine

    async def paid(pilot: Pilot[Any]) -> None:
        cashier = await show_qr(pilot)
        assert cashier.payment is not None
        await customer_pays(engine, cashier.payment)
        await run_for(engine, clock, 2, step=2)
        await wait_until(pilot, lambda: cashier.payment is not None and cashier.payment.status is PaymentStatus.PAID, what="PAID")

    assert shoot(CASHIER_SIZE, paid)


def test_cashier_timed_out(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock) -> None:
    """Nobody paid within 15 minutes: TIMEOUT, and what the cashier should do about it."""
    engine = snapshot_engine

    async def timed_out(pilot: Pilot[Any]) -> None:
        cashier = await show_qr(pilot)
        await run_for(engine, clock, 16 * 60, step=240)
        await wait_until(pilot, lambda: cashier.payment is not None and cashier.payment.status is PaymentStatus.TIMEOUT, what="TIMEOUT")

    assert shoot(CASHIER_SIZE, timed_out)


def test_cashier_80x24(shoot: Shoot) -> None:
    """The QR on an 80×24 terminal: the whole code beside the amount, the keys in the side panel."""

    async def waiting(pilot: Pilot[Any]) -> None:
        await show_qr(pilot)

    assert shoot(NARROW, waiting)


# --- detail and webhooks ------------------------------------------------------------------------------


def test_payment_detail(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any) -> None:
    """A paid payment: every field, the timeline, the Bakong record, the failed webhook attempts."""
    payment = on_loop(seed_refusing_endpoint(snapshot_engine, clock))

    async def detail(pilot: Pilot[Any]) -> None:
        pilot.app.clear_notifications()
        board = pilot.app.screen
        assert isinstance(board, BoardScreen)
        board.action_open_detail()
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, PaymentDetailScreen), what="the detail screen")
        screen = pilot.app.screen
        await quiet(pilot)
        assert isinstance(screen, PaymentDetailScreen) and screen.payment is not None
        assert screen.payment.id == payment.id and screen.payment.status is PaymentStatus.PAID
        # Deliveries name the endpoint by its URL, as the operator configured it.
        webhooks = shown(screen.query_one("#detail-webhooks", Static))
        assert REFUSING_ENDPOINT in webhooks and "whe_" not in webhooks

    assert shoot((120, 64), detail)


def test_webhooks_failed_delivery(shoot: Shoot, snapshot_engine: Engine, clock: ManualClock, on_loop: Any) -> None:
    """The backend is down: the endpoint failing since its first attempt, the failed deliveries
    with their next try, and the highlighted delivery's attempts."""
    on_loop(seed_refusing_endpoint(snapshot_engine, clock))

    async def webhooks(pilot: Pilot[Any]) -> None:
        await pilot.app.switch_mode("webhooks")
        screen = pilot.app.screen
        assert isinstance(screen, WebhooksScreen)
        deliveries = screen.query_one("#webhooks-deliveries", DataTable)
        await wait_until(pilot, lambda: deliveries.row_count == 1, what="the failed delivery")
        await quiet(pilot)

    assert shoot(BOARD, webhooks)
