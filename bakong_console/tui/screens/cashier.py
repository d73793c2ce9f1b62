"""The cashier's screen: type an amount, show the customer a KHQR, watch it turn PAID.

Two faces in one screen. The form: amount (KHR in whole riel, USD in cents), a KHR/USD toggle,
an optional reference and note. The QR: a large scannable KHQR with the amount and merchant name,
a countdown to expiry and the payment's live status; PAID turns the panel green and rings the
terminal bell; ``n`` starts the next customer. Toasts keep beside the QR, never over it. On a
terminal too short for the whole code (80×24) the QR's place says so, and v saves the card.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Button, ContentSwitcher, Digits, Footer, Input, Label, Static

from bakong_console.tui.context import ConsoleContext
from bakong_console.tui.formatting import amount_number, countdown, status_badge
from bakong_console.tui.screens.actions import PaymentActions
from bakong_console.tui.widgets.alerts import AlertBar
from bakong_console.tui.widgets.form import Form
from bakong_console.tui.widgets.header import EngineHeader
from bakong_console.tui.widgets.khqr_code import KHQRCode, keep_toasts_off
from bakong_console.tui.work import engine_work
from engine.errors import InvalidInput
from engine.money import parse_amount
from engine.records import Event, Payment, PaymentStatus
from engine.terminals import terminal_name

__all__ = ["CashierScreen"]

CURRENCIES = ("KHR", "USD")

#: What the cashier reads under the QR for each status.
STATUS_LINES: dict[PaymentStatus, str] = {
    PaymentStatus.PENDING: "Waiting for the customer to pay…",
    PaymentStatus.PAID: "PAID — thank you!",
    PaymentStatus.PAID_LATE: "Paid after the QR expired: an operator decides (board, r).",
    PaymentStatus.NEEDS_REVIEW: "Paid, but the amount or account differs: call an operator.",
    PaymentStatus.TIMEOUT: "Expired without payment. Make a new QR if the customer still wants to pay.",
    PaymentStatus.CANCELLED: "Cancelled: the customer must not pay this QR.",
    PaymentStatus.FAILED: "Failed: not paid.",
    PaymentStatus.UNTRACKABLE: "Bakong cannot track this QR: check the bank app.",
}


class CashierScreen(PaymentActions):
    """New payment → KHQR → PAID → next customer."""

    app: ConsoleContext  # type: ignore[assignment]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "toggle_currency", "KHR/USD", priority=True, id="cashier.toggle_currency"),
        Binding("n", "next_customer", "Next customer", id="cashier.next_customer"),
        Binding("escape", "back", "Back", show=False, id="cashier.back"),
        *PaymentActions.PAYMENT_BINDINGS,
    ]

    currency: reactive[str] = reactive("KHR")

    def __init__(self) -> None:
        super().__init__(id="cashier")
        self.payment: Payment | None = None
        self._idempotency_key = ""
        self._customers = itertools.count(1)
        self._opened_at = 0
        self._paid_rung = False

    def compose(self) -> ComposeResult:
        yield EngineHeader()
        with ContentSwitcher(initial="cashier-form", id="cashier-switcher"):
            with Form(id="cashier-form"):
                yield Label("New payment", classes="cashier-title")
                with Horizontal(classes="form-row"):
                    yield Label("Amount", classes="form-label")
                    yield Input(placeholder="0", id="cashier-amount", restrict=r"[0-9.,]*", max_length=20, compact=True)
                    yield Button("KHR", id="cashier-currency", compact=True)
                yield Static("", id="cashier-amount-error", classes="field-error")
                with Horizontal(classes="form-row"):
                    yield Label("Reference", classes="form-label")
                    yield Input(placeholder="optional: order or table number", id="cashier-reference", max_length=100, compact=True)
                yield Static("", id="cashier-reference-error", classes="field-error")
                with Horizontal(classes="form-row"):
                    yield Label("Note", classes="form-label")
                    yield Input(placeholder="optional", id="cashier-note", max_length=500, compact=True)
                yield Static("", id="cashier-note-error", classes="field-error")
                yield Static(
                    "Enter shows the KHQR · ctrl+t switches KHR/USD · Esc leaves the form · KHR in whole riel, USD in cents",
                    classes="form-hint",
                )
            with Horizontal(id="cashier-qr"):
                yield KHQRCode(id="cashier-code", too_small="Enlarge the terminal, or press v for the card.")
                with Vertical(id="cashier-side"):
                    yield Digits("", id="cashier-amount-digits")
                    yield Static(id="cashier-currency-line")
                    yield Static(id="cashier-merchant")
                    yield Static(id="cashier-reference-line")
                    yield Static(id="cashier-countdown")
                    yield Static(id="cashier-status")
                    yield Static(id="cashier-status-line")
                    yield Static(id="cashier-keys", classes="form-hint")
        yield AlertBar()
        yield Footer()

    def on_mount(self) -> None:
        self._opened_at = int(self.app.engine.clock.now().timestamp())
        self._idempotency_key = self._new_key()
        self.currency = self.app.engine.settings.payments.currency
        self.query_one("#cashier-amount", Input).focus()
        self.app.payments_signal.subscribe(self, self.apply_changes, immediate=True)
        self.set_interval(self.app.tick_seconds, self._tick, name="cashier-tick")

    # --- form -------------------------------------------------------------------------------------

    def watch_currency(self, currency: str) -> None:
        self.query_one("#cashier-currency", Button).label = currency
        self.query_one("#cashier-amount", Input).placeholder = "0" if currency == "KHR" else "0.00"

    def action_toggle_currency(self) -> None:
        if self.payment is None:
            self.currency = CURRENCIES[(CURRENCIES.index(self.currency) + 1) % len(CURRENCIES)]

    @on(Button.Pressed, "#cashier-currency")
    def currency_pressed(self) -> None:
        self.action_toggle_currency()

    @on(Input.Submitted, "#cashier-amount, #cashier-reference, #cashier-note")
    def submitted(self) -> None:
        self.create_payment()

    def show_field_error(self, field: str, message: str) -> bool:
        """Put an engine's complaint about a field under that field (the error handler asks)."""
        target = {"amount": "amount", "currency": "amount", "reference": "reference", "description": "note"}.get(field)
        if target is None or self.payment is not None:
            return False
        self.query_one(f"#cashier-{target}-error", Static).update(message)
        self.query_one(f"#cashier-{target}", Input).focus()
        return True

    def _clear_errors(self) -> None:
        for name in ("amount", "reference", "note"):
            self.query_one(f"#cashier-{name}-error", Static).update("")

    def create_payment(self) -> None:
        """Check the form and ask the engine for the payment (shows the QR when it answers)."""
        self._clear_errors()
        amount = self.query_one("#cashier-amount", Input).value
        try:
            parse_amount(amount, self.currency)
        except InvalidInput as exc:
            self.show_field_error("amount", exc.message)
            return
        self._create(
            amount,
            self.currency,
            self.query_one("#cashier-reference", Input).value,
            self.query_one("#cashier-note", Input).value,
        )

    @engine_work(exclusive=True, group="cashier-create", what="create the payment")
    async def _create(self, amount: str, currency: str, reference: str, note: str) -> None:
        created = await self.app.engine.payments.initiate(
            amount,
            currency,
            actor=self.app.actor,
            reference=reference or None,
            description=note or None,
            idempotency_key=self._idempotency_key,
            idempotency_scope="console",
            terminal=terminal_name(self.app.engine.settings.console.terminal),
        )
        self.show_payment(created.payment)

    def _new_key(self) -> str:
        # One key per customer: pressing Enter twice shows the same payment, never two.
        return f"{self.app.engine.holder}/cashier/{self._opened_at}/{next(self._customers)}"

    # --- QR ---------------------------------------------------------------------------------------

    def show_payment(self, payment: Payment) -> None:
        """Switch to the QR face for ``payment``; the next form submitted is the next customer's."""
        self.payment = payment
        self._idempotency_key = self._new_key()
        self._paid_rung = payment.status is not PaymentStatus.PENDING
        merchant = self.app.engine.settings.merchant.name
        self.query_one(KHQRCode).qr = payment.khqr
        self.query_one("#cashier-amount-digits", Digits).update(amount_number(payment.amount_minor, payment.currency))
        self.query_one("#cashier-currency-line", Static).update(Text(payment.currency, style="bold"))
        self.query_one("#cashier-merchant", Static).update(Text(f"to {merchant}"))
        ref = payment.reference or ""
        self.query_one("#cashier-reference-line", Static).update(Text(f"ref {ref}" if ref else "", style="dim"))
        self.query_one(ContentSwitcher).current = "cashier-qr"
        self.add_class("-showing-qr")
        self.set_focus(None)
        self._show_status()
        self.refresh_bindings()
        self.call_after_refresh(self._keep_toasts_off_the_qr)

    def _show_status(self) -> None:
        payment = self.payment
        if payment is None:
            return
        status = payment.status
        self.query_one("#cashier-status", Static).update(status_badge(status.value, 14))
        self.query_one("#cashier-status-line", Static).update(STATUS_LINES.get(status, status.value))
        qr_panel = self.query_one("#cashier-qr")
        for name in ("paid", "pending", "problem", "over"):
            qr_panel.remove_class(f"-{name}")
        if status is PaymentStatus.PAID:
            qr_panel.add_class("-paid")
        elif status is PaymentStatus.PENDING:
            qr_panel.add_class("-pending")
        elif status.needs_operator or status is PaymentStatus.FAILED:
            qr_panel.add_class("-problem")
        else:
            qr_panel.add_class("-over")
        keys = "n next customer"
        if status is PaymentStatus.PENDING:
            keys = "c customer says paid · x cancel · n next customer"
            if self.app.sandbox:
                keys += " · p sandbox pay"
        self.query_one("#cashier-keys", Static).update(keys)
        self._tick()

    def _tick(self) -> None:
        payment = self.payment
        if payment is None:
            return
        line = self.query_one("#cashier-countdown", Static)
        if payment.status is PaymentStatus.PENDING:
            line.update(f"expires in {countdown(payment.expires_at, self.app.engine.clock.now())}")
        else:
            line.update("")

    def apply_changes(self, changes: dict[str, Event]) -> None:
        """Follow our payment's events (the bridge's signal)."""
        payment = self.payment
        if payment is None or payment.id not in changes:
            return
        status = changes[payment.id].payload.get("status")
        try:
            new = PaymentStatus(status)
        except ValueError:
            return
        if new is payment.status:
            return
        self.payment = _with_status(payment, new)
        self._show_status()
        self.refresh_bindings()
        if new is PaymentStatus.PAID and not self._paid_rung:
            self._paid_rung = True
            if self.app.bell_on_paid:
                self.app.bell()

    def action_back(self) -> None:
        """Escape: from the QR, the next customer; in the form, leave it (letters are shortcuts
        again, Tab goes back in)."""
        if self.payment is not None:
            self.action_next_customer()
        else:
            self.set_focus(None)

    def action_next_customer(self) -> None:
        """Clear the form for the next customer (the last payment stays on the board)."""
        if self.payment is None and self.query_one(ContentSwitcher).current == "cashier-form":
            return
        self.payment = None
        for name in ("amount", "reference", "note"):
            self.query_one(f"#cashier-{name}", Input).value = ""
        self._clear_errors()
        self.query_one(KHQRCode).qr = None
        self.query_one(ContentSwitcher).current = "cashier-form"
        self.remove_class("-showing-qr")
        self.query_one("#cashier-amount", Input).focus()
        self.refresh_bindings()
        self.call_after_refresh(self._keep_toasts_off_the_qr)

    def on_resize(self) -> None:
        self.call_after_refresh(self._keep_toasts_off_the_qr)

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self._keep_toasts_off_the_qr)

    def _keep_toasts_off_the_qr(self) -> None:
        keep_toasts_off(self.query_one(KHQRCode))

    # --- PaymentActions ---------------------------------------------------------------------------

    def current_payment_id(self) -> str | None:
        return self.payment.id if self.payment else None

    def current_status(self) -> PaymentStatus | None:
        return self.payment.status if self.payment else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_currency":
            return self.payment is None
        if action == "next_customer":
            return self.payment is not None
        return super().check_action(action, parameters)


def _with_status(payment: Payment, status: PaymentStatus) -> Payment:
    from dataclasses import replace

    return replace(payment, status=status)
