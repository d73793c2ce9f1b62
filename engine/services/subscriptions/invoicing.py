"""Invoices and the KHQRs that pay them: issue, create, record, void, and reprice the next period.

KHQR cannot debit anyone, so every charge is an invoice the customer pays by scanning a KHQR made
by ``engine.payments.initiate``. An invoice's KHQR is created AFTER the invoice was committed,
under an idempotency key derived from the invoice (so repeating a step after a crash gets the
same payment back), and then recorded on the invoice by a conditional update (so a twin renewer
records it once). A KHQR is issued so that it expires by the deadline of what it pays for, and
one no longer wanted is cancelled. A renewal invoice follows the plan the next period runs on
(``reprice_renewal``) until it is paid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from engine import events as ev
from engine.clock import PHNOM_PENH, Clock
from engine.config import SubscriptionSettings
from engine.db import journal
from engine.db import payments as payment_repo
from engine.db import subscriptions as repo
from engine.db.storage import Storage, Tx
from engine.db.subscriptions import INVOICE_OPEN, INVOICE_VOID, KIND_INITIAL, KIND_RENEWAL, KIND_UPGRADE
from engine.errors import IdempotencyConflict
from engine.money import to_major
from engine.records import (
    Actor,
    Event,
    InvoicePayment,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionInvoice,
    SubscriptionStatus,
)
from engine.services.payments import MAX_TIMEOUT_MINUTES, PaymentService

__all__ = ["IDEMPOTENCY_SCOPE", "InvoiceBilling", "invoice_idempotency_key", "subscription_payment_listener"]

#: Payments of subscription invoices are created under this idempotency scope.
IDEMPOTENCY_SCOPE = "subscriptions"


def invoice_idempotency_key(invoice_id: str, previous_payment_id: str | None) -> str:
    """The idempotency key of an invoice's payment: the first one, then one per replaced payment.

    Deterministic, so an invoice whose payment was created but not recorded (a crash between the
    two) gets the same payment back instead of a second one."""
    if previous_payment_id is None:
        return f"invoice:{invoice_id}"
    return f"invoice:{invoice_id}:after:{previous_payment_id}"


def subscription_payment_listener(poke: Callable[[], None]) -> Callable[[Event], None]:
    """A bus listener that calls ``poke`` when a subscription's KHQR is paid (``payment.completed``
    with a ``subscription_id``), so the renewer acts at once instead of at its next tick."""

    def on_event(event: Event) -> None:
        if event.type == ev.PAYMENT_COMPLETED and event.payload.get("subscription_id"):
            poke()

    return on_event


class InvoiceBilling:
    """The KHQR payments of subscription invoices, for the other use cases and the renewer."""

    def __init__(
        self,
        storage: Storage,
        terms: SubscriptionSettings,
        *,
        clock: Clock,
        payments: PaymentService,
        poke_renewer: Callable[[], None],
    ) -> None:
        self.storage = storage
        self.terms = terms
        self.clock = clock
        self.payments = payments
        self.poke_renewer = poke_renewer

    def payment_timeout_minutes(self, inv: SubscriptionInvoice, sub: Subscription, now: datetime) -> int:
        """How long an invoice's KHQR stays valid: at most ``payment_timeout_minutes``, and never
        past the deadline of what it pays for (first-payment window, grace end, period end)."""
        cap = min(self.terms.payment_timeout_minutes, MAX_TIMEOUT_MINUTES)
        if inv.kind == KIND_INITIAL:
            # the first KHQR lasts the whole first-payment window
            return _minutes_until(now, sub.incomplete_until, MAX_TIMEOUT_MINUTES)
        if inv.kind == KIND_UPGRADE:
            return _minutes_until(now, inv.period_end, cap)
        if sub.status is SubscriptionStatus.PAST_DUE:
            return _minutes_until(now, sub.grace_until, cap)
        return max(1, cap)

    async def issue_payment(
        self,
        invoice_id: str,
        *,
        actor: Actor,
        event_type: str | None = None,
        event_extra: dict[str, Any] | None = None,
    ) -> InvoicePayment | None:
        """Make sure an OPEN invoice has a live KHQR: keep a PENDING one, else create the next one.

        Created through ``payments.initiate`` with a deterministic idempotency key, AFTER the
        invoice was committed; then recorded on the invoice (conditionally: a twin renewer in
        another process gets the same payment and records it once) with the invoice's event (by
        kind: the renewal's ``renewal_due``, the upgrade's ``upgrade_pending``; ``event_type``
        overrides). Returns None when the invoice is no longer OPEN or already paid."""
        async with self.storage.read() as tx:
            inv = await repo.get_invoice(tx, invoice_id)
            if inv.status != INVOICE_OPEN:
                return None
            sub = await repo.get(tx, inv.subscription_id)
            previous = await payment_repo.get(tx, inv.payment_id) if inv.payment_id else None
            code = await repo.plan_code(tx, inv.plan_id)
        if previous is not None:
            if previous.status is PaymentStatus.PAID:
                self.poke_renewer()
                return None
            if _live(previous, inv, self.clock.now()):
                return InvoicePayment(inv, previous)
        payment = await self.create_payment(inv, sub, code or "", previous_id=inv.payment_id, actor=actor)
        async with self.storage.transaction() as tx:
            return await self.attach_payment(
                tx, inv.id, payment, previous=inv.payment_id, actor=actor, event_type=event_type, event_extra=event_extra
            )

    async def issue_payments(self, invoice_ids: Iterable[str], *, actor: Actor) -> None:
        """A fresh KHQR for each invoice a committed change repriced, reopened or replaced (once each)."""
        for invoice_id in dict.fromkeys(invoice_ids):
            await self.issue_payment(invoice_id, actor=actor)

    async def create_payment(
        self, inv: SubscriptionInvoice, sub: Subscription, plan_code: str, *, previous_id: str | None, actor: Actor
    ) -> Payment:
        key = invoice_idempotency_key(inv.id, previous_id)
        start = inv.period_start.astimezone(PHNOM_PENH)
        end = inv.period_end.astimezone(PHNOM_PENH)
        try:
            created = await self.payments.initiate(
                to_major(inv.amount_minor, inv.currency),
                inv.currency,
                actor=actor,
                reference=inv.id,
                idempotency_key=key,
                idempotency_scope=IDEMPOTENCY_SCOPE,
                # the bill number is printed in the payer's bank app and keeps each invoice's KHQR distinct
                bill_number=inv.id[-24:],
                customer_id=sub.user_id,
                description=f"{plan_code} {inv.kind} {start:%Y-%m-%d}..{end:%Y-%m-%d}",
                timeout_minutes=self.payment_timeout_minutes(inv, sub, self.clock.now()),
                deep_link=self.terms.deep_links,
                subscription_id=sub.id,
                invoice_id=inv.id,
            )
            return created.payment
        except IdempotencyConflict:
            # the key was used for this invoice with other terms (a different timeout computed at
            # another moment): that payment is the one for this key
            async with self.storage.read() as tx:
                found = await payment_repo.get_by_idempotency_key(tx, IDEMPOTENCY_SCOPE, key)
            if found is None:
                raise
            return found[0]

    async def attach_payment(
        self,
        tx: Tx,
        invoice_id: str,
        payment: Payment,
        *,
        previous: str | None,
        actor: Actor,
        event_type: str | None = None,
        event_extra: dict[str, Any] | None = None,
        sub: Subscription | None = None,
        quiet: bool = False,
    ) -> InvoicePayment | None:
        """Record ``payment`` as the invoice's current KHQR (if it still has ``previous``) and write
        the invoice's event (none when ``quiet``: the caller's own event carries the KHQR). A
        payment no longer wanted (invoice repriced, voided or paid) is cancelled instead. Returns
        None when the payment was not recorded."""
        # the common case in one statement: OPEN, still on ``previous``, same amount -> recorded
        recorded = await repo.record_invoice_payment(tx, invoice_id, payment.id, previous=previous, amount_minor=payment.amount_minor)
        if recorded is None:
            # the row lock orders two processes recording the same KHQR: the second sees the first's
            inv = await repo.lock_invoice(tx, invoice_id)
            if inv.payment_id == payment.id:
                return InvoicePayment(inv, payment)  # a twin recorded it already
            if inv.status != INVOICE_OPEN or inv.payment_id != previous:
                await self.cancel_payment(tx, payment.id, actor=actor, reason="superseded before it was shown")
                return None
            # repriced between creating the payment and recording it: park it cancelled on the
            # invoice, which makes the next pass issue one at the new price
            await self.cancel_payment(tx, payment.id, actor=actor, reason="the invoice was repriced")
            await repo.set_invoice_payment(tx, inv.id, payment.id, previous=previous)
            return None
        inv = recorded
        sub = sub or await repo.get(tx, inv.subscription_id)
        data = {**await repo.subscription_event_data(tx, sub), "invoice": repo.invoice_event_data(inv, payment), **(event_extra or {})}
        await journal.audit(
            tx, actor, "subscription.invoice_issued", "subscription", sub.id, after=repo.invoice_event_data(inv, payment)
        )
        kind_event = {KIND_RENEWAL: ev.SUBSCRIPTION_RENEWAL_DUE, KIND_UPGRADE: ev.SUBSCRIPTION_UPGRADE_PENDING}
        etype = event_type or kind_event.get(inv.kind)
        if etype is not None and not quiet:
            await journal.append_event(tx, etype, "subscription", sub.id, data)
        return InvoicePayment(inv, payment)

    async def live_payment(self, inv: SubscriptionInvoice, sub: Subscription, *, actor: Actor) -> tuple[Payment, bool]:
        """The invoice's KHQR to show now: its PENDING one (or the PAID one: the caller stops), else
        a new one, not yet recorded on the invoice (the caller records it with ``attach_payment``)."""
        if inv.payment_id:
            async with self.storage.read() as tx:
                current = await payment_repo.get(tx, inv.payment_id)
            if current.status is PaymentStatus.PAID or _live(current, inv, self.clock.now()):
                return current, False
        async with self.storage.read() as tx:
            code = await repo.plan_code(tx, inv.plan_id)
        return await self.create_payment(inv, sub, code or "", previous_id=inv.payment_id, actor=actor), True

    # --- invoices no longer wanted ----------------------------------------------------------------

    async def void_invoice(self, tx: Tx, invoice_id: str, *, actor: Actor, reason: str) -> bool:
        inv = await repo.get_invoice(tx, invoice_id)
        if not await repo.set_invoice_status(tx, invoice_id, expected=INVOICE_OPEN, to=INVOICE_VOID):
            return False
        if inv.payment_id:
            await self.cancel_payment(tx, inv.payment_id, actor=actor, reason=reason)
        await journal.audit(
            tx, actor, "subscription.invoice_void", "subscription", inv.subscription_id,
            before=repo.invoice_event_data(inv), reason=reason,
        )  # fmt: skip
        return True

    async def drop_pending_upgrade(self, tx: Tx, sub: Subscription, *, actor: Actor, reason: str) -> bool:
        """Void a pending upgrade's invoice and cancel its KHQR (the caller clears the pending fields)."""
        if sub.pending_change != "upgrade" or not sub.pending_invoice_id:
            return False
        await self.void_invoice(tx, sub.pending_invoice_id, actor=actor, reason=reason)
        return True

    async def cancel_payment(self, tx: Tx, payment_id: str, *, actor: Actor, reason: str) -> Payment | None:
        """Stop collecting a KHQR that is no longer wanted (only a PENDING one can be cancelled;
        it stays watched while it can still be paid, see ``PaymentService.cancel_in``)."""
        return await self.payments.cancel_in(tx, await payment_repo.get(tx, payment_id), actor=actor, reason=reason)

    # --- the next period's price ------------------------------------------------------------------

    @staticmethod
    def next_period_plan_id(sub: Subscription) -> str:
        """The plan the period after the current one runs on."""
        if (
            sub.pending_change == "downgrade"
            and sub.pending_plan_id
            and sub.pending_change_at is not None
            and sub.current_period_end is not None
            and sub.pending_change_at <= sub.current_period_end
        ):
            return sub.pending_plan_id
        return sub.plan_id

    async def reprice_renewal(self, tx: Tx, sub: Subscription, *, actor: Actor) -> list[str]:
        """After a change to the next period's plan, bring its OPEN renewal invoice in line; the old
        KHQR is cancelled and the invoice id returned for a fresh one. A KHQR already PAID stands."""
        if sub.current_period_end is None:
            return []
        inv = await repo.next_renewal_invoice(tx, sub)
        if inv is None:
            return []
        inv = await repo.lock_invoice(tx, inv.id)
        if inv.status != INVOICE_OPEN:
            return []
        plan = await repo.get_plan(tx, self.next_period_plan_id(sub))
        if inv.plan_id == plan.id and inv.amount_minor == plan.price_minor:
            return []
        if inv.payment_id:
            current = await payment_repo.get(tx, inv.payment_id)
            if current.status is PaymentStatus.PAID:
                return []  # paid at the old price: the renewer settles it as it is
            if current.status is PaymentStatus.PENDING:
                await self.cancel_payment(tx, current.id, actor=actor, reason="the renewal was repriced")
        await repo.update_invoice(
            tx, inv.id, plan_id=plan.id, amount_minor=plan.price_minor,
            period_end=inv.period_start + timedelta(days=plan.cycle_days),
        )  # fmt: skip
        await journal.audit(
            tx, actor, "subscription.invoice_repriced", "subscription", sub.id,
            before=repo.invoice_event_data(inv), after={"plan_id": plan.id, "amount_minor": plan.price_minor},
        )  # fmt: skip
        return [inv.id]


def _minutes_until(now: datetime, deadline: datetime | None, cap: int) -> int:
    if deadline is None:
        return cap
    minutes = math.ceil((deadline - now).total_seconds() / 60)
    return max(1, min(cap, minutes))


def _live(payment: Payment, inv: SubscriptionInvoice, now: datetime) -> bool:
    """A KHQR the customer can still pay for this invoice."""
    return payment.status is PaymentStatus.PENDING and payment.amount_minor == inv.amount_minor and payment.expires_at > now
