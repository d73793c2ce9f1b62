"""Dialogs about one payment: confirm a cancel, resolve a review with a reason, show its QR.

Each returns the operator's decision through ``dismiss``; the screen that opened it makes the
engine call (dialogs never call the engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from bakong_console.tui.formatting import amount_text, status_badge
from bakong_console.tui.widgets.khqr_code import KHQRCode, keep_toasts_off
from engine.khqr import caption_for
from engine.records import Payment

__all__ = ["CancelPaymentDialog", "PaymentQRDialog", "Resolution", "ResolveDialog"]

REASON_LIMIT = 500


def _summary(payment: Payment) -> str:
    ref = f" · ref {payment.reference}" if payment.reference else ""
    return f"{amount_text(payment.amount_minor, payment.currency)}{ref} · {payment.id}"


class CancelPaymentDialog(ModalScreen[str | None]):
    """Cancel a pending payment (the customer must not pay its QR any more); returns the reason."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Keep it", id="dialog.close")]

    def __init__(self, payment: Payment) -> None:
        super().__init__(classes="dialog")
        self.payment = payment

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label("Cancel this payment?", classes="dialog-title")
            yield Static(_summary(self.payment), classes="dialog-body", markup=False)
            yield Static("Its QR stops being valid here; tell the customer not to pay it.", classes="dialog-hint")
            yield Input(placeholder="reason (optional)", id="cancel-reason", max_length=REASON_LIMIT, compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel payment", id="cancel-confirm", variant="error", compact=True)
                yield Button("Keep it", id="cancel-keep", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel-reason", Input).focus()

    @on(Button.Pressed, "#cancel-confirm")
    @on(Input.Submitted, "#cancel-reason")
    def confirm(self) -> None:
        self.dismiss(self.query_one("#cancel-reason", Input).value.strip() or "cancelled at the console")

    @on(Button.Pressed, "#cancel-keep")
    def keep(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class Resolution:
    """An operator's decision on a NEEDS_REVIEW or PAID_LATE payment."""

    accept: bool
    reason: str


class ResolveDialog(ModalScreen[Resolution | None]):
    """Accept (PAID) or reject (FAILED, refund outside) with a reason, which is required."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back", id="dialog.close")]

    def __init__(self, payment: Payment, problem: str | None = None) -> None:
        super().__init__(classes="dialog")
        self.payment = payment
        self.problem = problem

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label("Resolve payment", classes="dialog-title")
            with Horizontal(classes="dialog-row"):
                yield Static(status_badge(self.payment.status.value), classes="dialog-badge")
                yield Static(_summary(self.payment), classes="dialog-body", markup=False)
            if self.problem:
                yield Static(self.problem, classes="dialog-hint", markup=False)
            yield Input(placeholder="reason (required, goes to the audit log)", id="resolve-reason", max_length=REASON_LIMIT, compact=True)
            yield Static("", id="resolve-reason-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Accept: PAID", id="resolve-accept", variant="success", compact=True)
                yield Button("Reject: FAILED", id="resolve-reject", variant="error", compact=True)
                yield Button("Back", id="resolve-back", compact=True)

    def on_mount(self) -> None:
        self.query_one("#resolve-reason", Input).focus()

    def _reason(self) -> str | None:
        reason = self.query_one("#resolve-reason", Input).value.strip()
        error = self.query_one("#resolve-reason-error", Static)
        if not reason:
            error.update("A reason is required.")
            self.query_one("#resolve-reason", Input).focus()
            return None
        error.update("")
        return reason

    @on(Button.Pressed, "#resolve-accept")
    def accept(self) -> None:
        reason = self._reason()
        if reason is not None:
            self.dismiss(Resolution(True, reason))

    @on(Button.Pressed, "#resolve-reject")
    def reject(self) -> None:
        reason = self._reason()
        if reason is not None:
            self.dismiss(Resolution(False, reason))

    @on(Input.Submitted, "#resolve-reason")
    def reason_entered(self) -> None:
        if self._reason() is not None:
            self.query_one("#resolve-accept", Button).focus()

    @on(Button.Pressed, "#resolve-back")
    def back(self) -> None:
        self.dismiss(None)


class PaymentQRDialog(ModalScreen[None]):
    """The payment's KHQR, large, for the customer to scan again (toasts beside it, never over
    it); the line under it says where its card image was saved (``card_saved``)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,v", "dismiss", "Close", id="dialog.close")]

    def __init__(self, payment: Payment) -> None:
        super().__init__(classes="dialog")
        self.payment = payment

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box -qr"):
            with Center():
                yield KHQRCode(
                    self.payment.khqr,
                    caption=caption_for(self.payment.khqr),
                    too_small="Enlarge the terminal, or use the card image saved below.",
                )
            with Horizontal(classes="dialog-row"):
                yield Static(status_badge(self.payment.status.value), classes="dialog-badge")
                yield Static(_summary(self.payment), classes="dialog-body", markup=False)
            yield Static("", id="qr-card-path", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.call_after_refresh(self._keep_toasts_off_the_qr)

    def on_resize(self) -> None:
        self.call_after_refresh(self._keep_toasts_off_the_qr)

    def _keep_toasts_off_the_qr(self) -> None:
        keep_toasts_off(self.query_one(KHQRCode))

    def card_saved(self, path: object) -> None:
        """Show where the payment's card image was written."""
        self.query_one("#qr-card-path", Static).update(f"Card saved: {path}")

    def on_click(self) -> None:
        self.dismiss(None)
