"""Snapshot tests: one SVG per screen state an operator must recognise.

Deterministic by STYLE.md's rules: a fixed terminal size per test, data seeded through the engine
with fixed amounts and references, seeded ids and randomness, the frozen ``ManualClock`` (moved
only by the test), cursor blink and animations off, timers that never fire, SQLite under the
isolated home (the header reads ``sqlite:~/data/console.db`` on every machine). The one webhook
endpoint is ``http://127.0.0.1:9/hooks``: a privileged loopback port nothing listens on, so its
deliveries fail with a refused connection without any network (the error text is Linux's).

How the console runs here: pytest-textual-snapshot takes the screenshot with ``App.run()``, which
starts a new event loop (``asyncio.run``), and an open engine (database pool, workers, event bus)
only works on the loop that opened it. So these tests are sync: the engine is opened by the async
``snapshot_engine`` fixture on pytest-asyncio's loop, the data is seeded on that loop
(``on_loop``), and the app is handed that same loop through Textual's own ``App.run(loop=...)``
argument. The fixture closes the engine on it afterwards, leases released.

Update the baselines with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at
them before committing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from bakong_console.tui.app import BakongConsoleApp
from bakong_console.tui.dialogs.payment_dialogs import ResolveDialog
from bakong_console.tui.screens.board import BoardScreen
from bakong_console.tui.screens.cashier import CashierScreen
from bakong_console.tui.screens.detail import PaymentDetailScreen
from bakong_console.tui.screens.webhooks import WebhooksScreen
from bakong_console.tui.widgets.payments_table import PendingPaymentsTable
from engine.clock import ManualClock
from engine.records import Payment, PaymentStatus
from engine.runtime import Engine
from tests.support.engine import run_for, settle
from tests.tui.conftest import CASHIER, OPERATOR, console_app, quiet, shown, still, wait_until, workers_done

T = TypeVar("T")

BOARD = (120, 32)
CASHIER_SIZE = (100, 36)
NARROW = (80, 24)
REFUSING_ENDPOINT = "http://127.0.0.1:9/hooks"

Shoot = Callable[..., bool]


@pytest.fixture
async def engine_loop(snapshot_engine: Engine) -> asyncio.AbstractEventLoop:
    """The loop ``snapshot_engine`` was opened on (pytest-asyncio's): the console runs on it."""
    return asyncio.get_running_loop()


@pytest.fixture
def on_loop(engine_loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run one coroutine (seeding) on the engine's loop, from a sync test."""
    return engine_loop.run_until_complete


@pytest.fixture
def shoot(snap_compare: Any, snapshot_engine: Engine, engine_loop: asyncio.AbstractEventLoop) -> Shoot:
    """``shoot(size, run_before)``: the console over ``snapshot_engine``, compared with its SVG."""

    def take(size: tuple[int, int], run_before: Callable[[Pilot[Any]], Awaitable[None]] | None = None) -> bool:
        app = console_app(snapshot_engine)
        # See the module docstring: the app must run on the loop the engine was opened on.
        app.run = partial(BakongConsoleApp.run, app, loop=engine_loop)  # type: ignore[method-assign]

        async def before(pilot: Pilot[Any]) -> None:
            await settled(pilot, snapshot_engine)
            if run_before is not None:
                await run_before(pilot)
            await settled(pilot, snapshot_engine)
            await still(pilot)

        return bool(snap_compare(app, terminal_size=size, run_before=before))

    return take


async def settled(pilot: Pilot[Any], engine: Engine) -> None:
    """``quiet`` with fewer rounds: each Pilot pause waits for the process to go idle (a tenth
    of a second), and twelve snapshots pay for every one of them."""
    for _ in range(2):
        await workers_done(pilot.app)
        await settle(engine)
        await pilot.pause()
    await workers_done(pilot.app)


# --- seeding --------------------------------------------------------------------------------------


async def new_payment(engine: Engine, clock: ManualClock, amount: str, currency: str, reference: str | None, *, gap: float = 20) -> Payment:
    payment = (await engine.payments.initiate(amount, currency, actor=CASHIER, reference=reference)).payment
    # The workers act on it (first check, webhooks) at its creation time and are parked again
    # before anything else happens: one order of events, the same every run.
    await run_for(engine, clock, gap, step=gap)
    return payment


async def customer_pays(engine: Engine, payment: Payment, **how: Any) -> None:
    """The sandbox pays the QR and the cashier says so (a check ahead of the schedule)."""
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=payment.khqr, **how)
    await engine.payments.request_check(payment.id, actor=CASHIER)
    # The workers and the sandbox draw from one seeded Random: let the poller finish before the
    # next draw, so the draws (check times, Bakong hashes) come in the same order every run.
    await settle(engine)


async def seed_busy_board(engine: Engine, clock: ManualClock) -> dict[str, Payment]:
    """A dozen payments in every status an operator meets, KHR and USD, minutes apart."""
    p: dict[str, Payment] = {}
    p["timeout"] = await new_payment(engine, clock, "12000", "KHR", "table-2", gap=7)
    p["late"] = await new_payment(engine, clock, "4.50", "USD", "table-9", gap=7)
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=p["late"].khqr, late_seconds=30)
    # Second by second through the expiries, so the expirer and the poller never wake at one
    # instant (which of them went first would change the check counts from run to run).
    await run_for(engine, clock, 14 * 60 + 40, step=120)  # to 10:14:54
    await run_for(engine, clock, 16, step=1)  # the expiries at 10:15:00 and 10:15:07
    await run_for(engine, clock, 5 * 60 + 10, step=155)  # the late watch finds table-9 paid

    p["paid_khr"] = await new_payment(engine, clock, "25000", "KHR", "order-1041")
    p["paid_usd"] = await new_payment(engine, clock, "8.00", "USD", "order-1042")
    p["cancelled"] = await new_payment(engine, clock, "6500", "KHR", "table-5")
    p["review"] = await new_payment(engine, clock, "10.00", "USD", "order-1043")
    p["failed"] = await new_payment(engine, clock, "3.25", "USD", "table-7")
    p["paid_big"] = await new_payment(engine, clock, "150000", "KHR", "invoice-88")
    for key in ("paid_khr", "paid_usd", "paid_big"):
        await customer_pays(engine, p[key])
    for key in ("review", "failed"):
        await customer_pays(engine, p[key], wrong_amount=True)
    await engine.payments.cancel(p["cancelled"].id, actor=CASHIER, reason="customer left")
    await run_for(engine, clock, 10, step=5)
    await engine.payments.resolve(p["failed"].id, accept=False, actor=OPERATOR, reason="refunded the 3.24 USD by bank transfer")

    p["pending_khr"] = await new_payment(engine, clock, "40000", "KHR", "table-3")
    p["pending_usd"] = await new_payment(engine, clock, "2.75", "USD", "walk-in")
    p["pending_noref"] = await new_payment(engine, clock, "9900", "KHR", None)
    p["says_paid"] = await new_payment(engine, clock, "15.00", "USD", "order-1044", gap=30)
    await engine.payments.request_check(p["says_paid"].id, actor=CASHIER)
    await run_for(engine, clock, 5, step=5)
    for key, status in {
        "timeout": PaymentStatus.TIMEOUT, "late": PaymentStatus.PAID_LATE, "paid_khr": PaymentStatus.PAID,
        "paid_usd": PaymentStatus.PAID, "cancelled": PaymentStatus.CANCELLED, "review": PaymentStatus.NEEDS_REVIEW,
        "failed": PaymentStatus.FAILED, "paid_big": PaymentStatus.PAID, "pending_khr": PaymentStatus.PENDING,
    }.items():  # fmt: skip
        assert (await engine.payments.get(p[key].id)).status is status, key
    return p


async def seed_refusing_endpoint(engine: Engine, clock: ManualClock) -> Payment:
    """An endpoint whose backend is down, and a paid payment whose webhooks it failed."""
    await engine.webhooks.add_endpoint(REFUSING_ENDPOINT, description="main backend", actor=OPERATOR)
    payment = await new_payment(engine, clock, "7.77", "USD", "order-2001", gap=30)
    await customer_pays(engine, payment)
    await run_for(engine, clock, 2, step=2)
    # payment.created failed twice and waits for its next try; payment.completed queues behind it.
    page, _ = await engine.webhooks.list_deliveries(failed_only=True)
    assert [(d.event_type, d.attempt_count) for d in page] == [("payment.created", 2)]
    assert page[0].last_error is not None and page[0].last_error.startswith("cannot connect")
    return payment


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
