"""Pilot tests of the console's flows, on SQLite and PostgreSQL: what the operator sees and what
the engine recorded (rows, history, audit) after each key press."""

from __future__ import annotations

from textual.widgets import Button, Input, Static

from bakong_console.tui.dialogs.payment_dialogs import CancelPaymentDialog, PaymentQRDialog, ResolveDialog
from bakong_console.tui.screens.board import BoardScreen
from bakong_console.tui.screens.cashier import CashierScreen
from bakong_console.tui.screens.detail import PaymentDetailScreen
from bakong_console.tui.widgets.khqr_code import KHQRCode
from bakong_console.tui.widgets.payments_table import PendingPaymentsTable
from engine.clock import ManualClock
from engine.db.payments import PaymentFilter
from engine.records import PaymentStatus
from engine.runtime import Engine
from tests.support.engine import run_for
from tests.tui.conftest import OPERATOR, console_app, quiet, shown, wait_until


async def test_create_show_qr_sandbox_pay_and_paid(engine: Engine, clock: ManualClock) -> None:
    app = console_app(engine)
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("n")
        cashier = app.screen
        assert isinstance(cashier, CashierScreen)
        assert cashier.currency == "KHR"
        await pilot.press("ctrl+t")
        assert cashier.currency == "USD"
        await pilot.press(*"12.50", "enter")
        await wait_until(pilot, lambda: cashier.payment is not None, what="the payment")
        payment = cashier.payment
        assert payment is not None
        stored = await engine.payments.get(payment.id)
        assert (stored.amount_minor, stored.currency, stored.status) == (1250, "USD", PaymentStatus.PENDING)
        assert (stored.created_by_type, stored.created_by) == ("cashier", "dara")
        assert cashier.query_one(KHQRCode).qr == stored.khqr
        assert "expires in 15:00" in shown(cashier.query_one("#cashier-countdown", Static))

        await pilot.press("p")
        await quiet(pilot, engine)
        await run_for(engine, clock, 6)
        await wait_until(pilot, lambda: cashier.payment is not None and cashier.payment.status is PaymentStatus.PAID, what="PAID")
        assert (await engine.payments.get(payment.id)).status is PaymentStatus.PAID
        assert "PAID" in shown(cashier.query_one("#cashier-status", Static))
        assert cashier.query_one("#cashier-qr").has_class("-paid")
        assert rings == [1]

        await pilot.press("n")
        assert cashier.payment is None
        assert cashier.query_one("#cashier-amount", Input).value == ""
        assert cashier.query_one("#cashier-amount", Input).has_focus


async def test_enter_twice_makes_one_payment(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("n", *"40000")
        cashier = app.screen
        assert isinstance(cashier, CashierScreen)
        cashier.create_payment()
        cashier.create_payment()
        await quiet(pilot)
        page, _ = await engine.payments.search(PaymentFilter())
        assert [(p.amount_minor, p.currency) for p in page] == [(40000, "KHR")]


async def test_bad_amount_is_shown_by_the_field(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("n", *"12.5", "enter")
        cashier = app.screen
        assert isinstance(cashier, CashierScreen)
        await quiet(pilot)
        assert cashier.payment is None
        assert "whole riel" in shown(cashier.query_one("#cashier-amount-error", Static))
        page, _ = await engine.payments.search(PaymentFilter())
        assert page == []


async def test_board_follows_changes_cancel_and_check_now(engine: Engine, clock: ManualClock) -> None:
    first = (await engine.payments.initiate("5000", "KHR", actor=OPERATOR, reference="table-4")).payment
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        board = app.screen
        assert isinstance(board, BoardScreen)
        table = board.query_one(PendingPaymentsTable)
        await quiet(pilot, engine)
        assert [r.id for r in table.rows()] == [first.id]

        clock.advance(1)
        second = (await engine.payments.initiate("2.25", "USD", actor=OPERATOR, reference="table-7")).payment
        await wait_until(pilot, lambda: table.row_count == 2, what="the new payment on the board")
        assert [r.id for r in table.rows()] == [second.id, first.id]
        # The cursor stays on the payment it was on.
        assert table.cursor_payment is not None and table.cursor_payment.id == first.id

        checks_before = (await engine.payments.get(first.id)).check_count
        await pilot.press("c")
        await quiet(pilot, engine)
        # Checked at once, ahead of its schedule (the clock has not moved), and the request served.
        checked = await engine.payments.get(first.id)
        assert checked.check_count == checks_before + 1 and checked.last_checked_at == clock.now()
        assert checked.check_requested_at is None

        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, CancelPaymentDialog), what="the cancel dialog")
        await pilot.press(*"customer left", "enter")
        await wait_until(pilot, lambda: table.get(first.id) is not None and table.get(first.id).status is PaymentStatus.CANCELLED, what="CANCELLED")
        history = await engine.payments.history(first.id)
        assert (history[-1].to_status, history[-1].reason, history[-1].actor) == ("CANCELLED", "customer left", "cashier:dara")
        audit = await engine.audit.list(subject_id=first.id, action="payment.cancelled")
        assert [a.reason for a in audit] == ["customer left"]


async def test_resolve_needs_review_with_a_reason(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("10.00", "USD", actor=OPERATOR, reference="wrong")).payment
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        board = app.screen
        assert isinstance(board, BoardScreen)
        table = board.query_one(PendingPaymentsTable)
        await quiet(pilot, engine)
        await pilot.press("P")  # the sandbox pays a wrong amount
        await quiet(pilot, engine)
        await run_for(engine, clock, 6)
        await wait_until(pilot, lambda: table.get(payment.id).status is PaymentStatus.NEEDS_REVIEW, what="NEEDS_REVIEW")
        await wait_until(pilot, lambda: "review" in app.state.alerts, what="the review alert")
        assert app.state.alerts["review"].message == "1 payment needs review"

        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ResolveDialog), what="the resolve dialog")
        dialog = app.screen
        await pilot.click("#resolve-accept")
        await pilot.pause()
        assert "A reason is required" in shown(dialog.query_one("#resolve-reason-error", Static))
        assert app.screen is dialog
        dialog.query_one("#resolve-reason", Input).value = "customer topped up the 0.01 in cash"
        # A Button ignores clicks while its press animation runs (as it would for a real double click).
        accept = dialog.query_one("#resolve-accept", Button)
        await wait_until(pilot, lambda: not accept.has_class("-active"), what="the button press to finish")
        await pilot.click("#resolve-accept")
        await wait_until(pilot, lambda: table.get(payment.id).status is PaymentStatus.PAID, what="PAID")
        history = await engine.payments.history(payment.id)
        assert (history[-1].from_status, history[-1].to_status, history[-1].reason) == (
            "NEEDS_REVIEW", "PAID", "customer topped up the 0.01 in cash",
        )  # fmt: skip
        await wait_until(pilot, lambda: "review" not in app.state.alerts, what="the review alert to clear")


async def test_filter_and_search(engine: Engine, clock: ManualClock) -> None:
    a = (await engine.payments.initiate("1000", "KHR", actor=OPERATOR, reference="order-100")).payment
    clock.advance(1)
    b = (await engine.payments.initiate("2000", "KHR", actor=OPERATOR, reference="order-200")).payment
    clock.advance(1)
    c = (await engine.payments.initiate("3.00", "USD", actor=OPERATOR, reference="walk-in")).payment
    await engine.payments.cancel(b.id, actor=OPERATOR)
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        board = app.screen
        assert isinstance(board, BoardScreen)
        table = board.query_one(PendingPaymentsTable)
        await quiet(pilot, engine)
        assert [r.id for r in table.rows()] == [c.id, b.id, a.id]

        await pilot.press("f")  # pending only
        await quiet(pilot)
        assert board.filter_key == "pending"
        assert [r.id for r in table.rows()] == [c.id, a.id]

        await pilot.press("slash", *"order", "enter")
        await quiet(pilot)
        assert [r.id for r in table.rows()] == [a.id]

        await pilot.press("slash")
        board.query_one("#board-search", Input).value = c.md5
        await pilot.press("enter")
        await quiet(pilot)
        assert [r.id for r in table.rows()] == [c.id]

        # A live change that leaves the filter takes the row off the board.
        await engine.payments.cancel(c.id, actor=OPERATOR)
        await wait_until(pilot, lambda: table.row_count == 0, what="the cancelled payment to leave the pending board")

        await pilot.press("escape")
        await quiet(pilot)
        assert [r.id for r in table.rows()] == [a.id]
        board.set_filter("all")
        await quiet(pilot)
        assert [r.id for r in table.rows()] == [c.id, b.id, a.id]


async def test_detail_and_qr_dialog(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("7.77", "USD", actor=OPERATOR, reference="detail-me")).payment
    app = console_app(engine)
    async with app.run_test(size=(100, 40)) as pilot:
        await quiet(pilot, engine)
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, PaymentQRDialog), what="the QR dialog")
        assert app.screen.query_one(KHQRCode).qr == payment.khqr
        await pilot.press("escape", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PaymentDetailScreen), what="the detail screen")
        detail = app.screen
        await quiet(pilot)
        fields = shown(detail.query_one("#detail-fields", Static))
        assert payment.md5 in fields and "detail-me" in fields
        timeline = shown(detail.query_one("#detail-timeline", Static))
        assert "created" in timeline
        await engine.payments.cancel(payment.id, actor=OPERATOR, reason="wrong table")
        await wait_until(pilot, lambda: "wrong table" in shown(detail.query_one("#detail-timeline", Static)), what="the timeline to follow")
        await pilot.press("escape")
        assert isinstance(app.screen, BoardScreen)


async def test_unknown_binding_id_is_refused(engine: Engine) -> None:
    from dataclasses import replace

    import pytest

    from engine.errors import InvalidInput

    bad = replace(engine.settings, console=replace(engine.settings.console, bindings={"board.nope": "z"}))
    engine.settings = bad
    with pytest.raises(InvalidInput, match="unknown binding id 'board.nope'"):
        console_app(engine)


async def test_bindings_are_remapped_from_settings(engine: Engine) -> None:
    from dataclasses import replace

    payment = (await engine.payments.initiate("900", "KHR", actor=OPERATOR)).payment
    engine.settings = replace(engine.settings, console=replace(engine.settings.console, bindings={"payment.cancel": "delete"}))
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await quiet(pilot, engine)
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, CancelPaymentDialog)
        await pilot.press("delete")
        await wait_until(pilot, lambda: isinstance(app.screen, CancelPaymentDialog), what="the cancel dialog on the remapped key")
        assert app.screen.payment.id == payment.id


async def test_engine_errors_become_toasts_not_crashes(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("900", "KHR", actor=OPERATOR)).payment
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await quiet(pilot, engine)
        board = app.screen
        assert isinstance(board, BoardScreen)
        # Another process cancels it first: our cancel meets a payment that is no longer PENDING.
        await engine.payments.cancel(payment.id, actor=OPERATOR)
        board._cancel(payment.id, "too late")
        await quiet(pilot)
        messages = [n.message for n in app._notifications]
        assert any("only a PENDING payment can be cancelled" in m for m in messages)
        assert app.is_running


async def test_alerts_reach_the_status_bar(engine: Engine, clock: ManualClock) -> None:
    from engine import events as ev
    from engine.db import journal

    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await quiet(pilot, engine)
        async with engine.storage.transaction() as tx:
            await journal.append_event(tx, ev.ALERT_BAKONG_UNREACHABLE, "bakong", "api", {"message": "connection timed out"})
        await wait_until(pilot, lambda: "bakong" in app.state.alerts, what="the alert")
        assert app.state.alerts["bakong"].message == "Bakong: connection timed out"
        async with engine.storage.transaction() as tx:
            await journal.append_event(tx, ev.ALERT_BAKONG_RECOVERED, "bakong", "api", {"message": "Bakong answers again"})
        await wait_until(pilot, lambda: "bakong" not in app.state.alerts, what="the alert to clear")


async def test_daemon_heartbeat_missing(engine: Engine, clock: ManualClock) -> None:
    from engine.db import leases

    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await quiet(pilot, engine)
        # This console's workers stop (their leases released); a daemon takes the poller lease...
        for runner in engine.runners.values():
            runner.stop()
        await quiet(pilot)
        async with engine.storage.transaction() as tx:
            assert await leases.acquire(tx, "poller", "daemon-host:4242:abc", ttl=30)
        app.refresh_status()
        await quiet(pilot)
        assert app.state.status.workers == "daemon"
        assert "daemon" not in app.state.alerts
        # ...and stops renewing it.
        clock.advance(31)
        app.refresh_status()
        await quiet(pilot)
        assert app.state.status.workers == "nobody"
        assert "daemon-host:4242:abc" in app.state.alerts["daemon"].message


async def test_the_console_records_its_terminal_on_each_payment(engine_settings, clock: ManualClock) -> None:
    from dataclasses import replace

    from tests.tui.conftest import open_console_engine

    settings = replace(engine_settings, console=replace(engine_settings.console, terminal="counter-1"))
    async with open_console_engine(settings, clock) as engine:
        app = console_app(engine)
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.press("n", *"4000", "enter")
            cashier = app.screen
            assert isinstance(cashier, CashierScreen)
            await wait_until(pilot, lambda: cashier.payment is not None, what="the payment")
            assert cashier.payment is not None
            assert (await engine.payments.get(cashier.payment.id)).terminal == "counter-1"
