"""What an operator can do to "the payment in hand", shared by the board, the cashier and the
detail screen: show its QR (and save its card image), "the customer says paid", cancel, resolve, and (SANDBOX only) pay it
through the built-in sandbox in full, with a wrong amount, or late.

A screen mixes ``PaymentActions`` in and says which payment is in hand (``current_payment_id``).
Each action runs the engine call in an ``engine_work`` worker and reports through toasts.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.screen import Screen

from bakong_console.tui.context import ConsoleContext
from bakong_console.tui.dialogs.payment_dialogs import CancelPaymentDialog, PaymentQRDialog, Resolution, ResolveDialog
from bakong_console.tui.formatting import amount_text
from bakong_console.tui.work import engine_work
from engine.errors import InvalidInput, InvalidTransition
from engine.records import Payment, PaymentStatus
from engine.services.cards import cards_directory, save_payment_card

__all__ = ["PAYMENT_ACTION_BINDINGS", "SANDBOX_BINDINGS", "PaymentActions"]

#: Sandbox keys: the same ids on every screen that has them, so one remap moves them all.
SANDBOX_BINDINGS: list[BindingType] = [
    Binding("p", "sandbox_pay('full')", "Sandbox: pay", id="sandbox.pay"),
    Binding("P", "sandbox_pay('wrong_amount')", "Sandbox: pay a wrong amount", show=False, id="sandbox.pay_wrong_amount"),
    Binding("L", "sandbox_pay('late')", "Sandbox: pay after expiry", show=False, id="sandbox.pay_late"),
]

PAYMENT_ACTION_BINDINGS: list[BindingType] = [
    Binding("v", "show_qr", "QR", id="payment.show_qr"),
    Binding("c", "check_now", "Says paid", id="payment.check_now"),
    Binding("x", "cancel_payment", "Cancel", id="payment.cancel"),
    Binding("R", "resolve", "Resolve", id="payment.resolve"),
]

_NEEDS_PAYMENT = {"show_qr", "check_now", "cancel_payment", "resolve", "sandbox_pay"}
_SANDBOX_PAYS: dict[str, dict[str, Any]] = {"full": {}, "wrong_amount": {"wrong_amount": True}, "late": {"late_seconds": 30}}


class PaymentActions(Screen[Any]):
    """Actions on the payment this screen has in hand."""

    app: ConsoleContext  # type: ignore[assignment]

    PAYMENT_BINDINGS: ClassVar[list[BindingType]] = PAYMENT_ACTION_BINDINGS + SANDBOX_BINDINGS

    def current_payment_id(self) -> str | None:
        """The payment the actions apply to (the board's cursor, the cashier's QR...)."""
        raise NotImplementedError

    def current_status(self) -> PaymentStatus | None:
        """Its status as this screen shows it (used to grey out actions that cannot apply)."""
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "sandbox_pay" and not self.app.sandbox:
            return None
        if action in _NEEDS_PAYMENT:
            if self.current_payment_id() is None:
                return False
            status = self.current_status()
            if status is not None:
                if action in ("check_now", "cancel_payment", "sandbox_pay") and status is not PaymentStatus.PENDING:
                    return False
                if action == "resolve" and not status.needs_operator:
                    return False
        return True

    # --- actions ----------------------------------------------------------------------------------

    def action_show_qr(self) -> None:
        if (payment_id := self.current_payment_id()) is not None:
            self._show_qr(payment_id)

    def action_check_now(self) -> None:
        if (payment_id := self.current_payment_id()) is not None:
            self._check_now(payment_id)

    def action_cancel_payment(self) -> None:
        if (payment_id := self.current_payment_id()) is not None:
            self._ask_cancel(payment_id)

    def action_resolve(self) -> None:
        if (payment_id := self.current_payment_id()) is not None:
            self._ask_resolve(payment_id)

    def action_sandbox_pay(self, how: str = "full") -> None:
        if (payment_id := self.current_payment_id()) is not None:
            self._sandbox_pay(payment_id, how)

    # --- workers ----------------------------------------------------------------------------------

    @engine_work(group="payment-action", what="show the QR")
    async def _show_qr(self, payment_id: str) -> None:
        payment = await self.app.engine.payments.get(payment_id)
        dialog = PaymentQRDialog(payment)
        self.app.push_screen(dialog)
        # The card image (for printing, a chat, a second screen) is saved as the QR is shown;
        # drawing a PNG is CPU work, off the event loop.
        path = await asyncio.to_thread(save_payment_card, payment, cards_directory(self.app.engine.settings))
        if dialog.is_attached:
            dialog.card_saved(path)
        else:
            # The dialog says it under the QR; a toast only once the QR is closed.
            self.notify(f"{_name(payment)}: card saved to {path}", title="KHQR card")

    @engine_work(group="payment-action", what="check the payment now")
    async def _check_now(self, payment_id: str) -> None:
        payment = await self.app.engine.payments.request_check(payment_id, actor=self.app.actor)
        self.notify(f"{_name(payment)}: checking with Bakong now, ahead of the schedule.", title="Customer says paid")

    @engine_work(group="payment-action", what="cancel the payment")
    async def _ask_cancel(self, payment_id: str) -> None:
        payment = await self.app.engine.payments.get(payment_id)
        if payment.status is not PaymentStatus.PENDING:
            raise InvalidTransition(f"{_name(payment)} is {payment.status.value}: only a PENDING payment can be cancelled")

        def decided(reason: str | None) -> None:
            if reason is not None:
                self._cancel(payment_id, reason)

        self.app.push_screen(CancelPaymentDialog(payment), decided)

    @engine_work(group="payment-action", what="cancel the payment")
    async def _cancel(self, payment_id: str, reason: str) -> None:
        payment = await self.app.engine.payments.cancel(payment_id, actor=self.app.actor, reason=reason)
        self.notify(f"{_name(payment)} cancelled.", title="Cancelled")

    @engine_work(group="payment-action", what="resolve the payment")
    async def _ask_resolve(self, payment_id: str) -> None:
        engine = self.app.engine
        payment = await engine.payments.get(payment_id)
        if not payment.status.needs_operator:
            raise InvalidTransition(f"{_name(payment)} is {payment.status.value}: only NEEDS_REVIEW or PAID_LATE can be resolved")
        history = await engine.payments.history(payment_id)
        problem = history[-1].reason if history else None

        def decided(resolution: Resolution | None) -> None:
            if resolution is not None:
                self._resolve(payment_id, resolution)

        self.app.push_screen(ResolveDialog(payment, problem), decided)

    @engine_work(group="payment-action", what="resolve the payment")
    async def _resolve(self, payment_id: str, resolution: Resolution) -> None:
        payment = await self.app.engine.payments.resolve(
            payment_id, accept=resolution.accept, actor=self.app.actor, reason=resolution.reason
        )
        self.notify(f"{_name(payment)} is now {payment.status.value}.", title="Resolved")

    @engine_work(group="payment-action", what="pay through the sandbox")
    async def _sandbox_pay(self, payment_id: str, how: str) -> None:
        engine = self.app.engine
        if engine.sandbox is None:
            raise InvalidInput("sandbox payments exist only in SANDBOX", field="sandbox")
        payment = await engine.payments.get(payment_id)
        if payment.status is not PaymentStatus.PENDING:
            raise InvalidTransition(f"{_name(payment)} is {payment.status.value}: there is nothing to pay")
        transfer = await engine.sandbox.pay(qr=payment.khqr, **_SANDBOX_PAYS[how])
        if how == "late":
            self.notify(
                f"The sandbox will show {_name(payment)} paid 30 s after its QR expires (PAID_LATE).", title="Sandbox"
            )
            return
        try:
            # A customer who just paid says so: check now rather than at the next scheduled check.
            await engine.payments.request_check(payment_id, actor=self.app.actor)
        except InvalidTransition:
            pass
        what = f"{transfer.amount} {transfer.currency}" + (" (a wrong amount)" if how == "wrong_amount" else "")
        self.notify(f"Sandbox paid {what} for {_name(payment)}.", title="Sandbox")


def _name(payment: Payment) -> str:
    ref = f" ({payment.reference})" if payment.reference else ""
    return f"{amount_text(payment.amount_minor, payment.currency)}{ref}"
