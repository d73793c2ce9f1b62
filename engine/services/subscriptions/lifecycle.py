"""A subscription's life along payments and the calendar: created, activated, renewed, past due,
reminded, expired, ended at period end; and what a paid invoice sets in motion.

- **create**: a plan with trial days starts TRIALING (free until the trial ends; the first paid
  period is billed like a renewal); otherwise INCOMPLETE with its first invoice and KHQR, ACTIVE
  once paid (the period starts when it was paid) and EXPIRED if unpaid after
  ``first_payment_window_hours``.
- **renewal**: the next period is billed ``renewal_lead_days`` before the period ends (by the
  renewer), at the price the next period's plan has then (price changes never touch a period
  already running). The new period starts where the last one ended, not when it was paid;
  unpaid at period end, the subscription is PAST_DUE (access kept, with reminders) until the end
  of grace, then EXPIRED.
- A subscription never expires while a KHQR issued for it is still PENDING; those KHQRs are issued
  so that they expire by the deadline (window, grace end, period end).

Everything but ``create`` is run by the renewer (``engine/workers/renewer.py``). Each step is a
conditional transition guarded on what it read (the period end, the last reminder), so a second
renewer doing the same step at the same time changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from engine import events as ev
from engine.config import SubscriptionSettings
from engine.db import journal
from engine.db import payments as payment_repo
from engine.db import subscriptions as repo
from engine.db.models import SubscriptionRow
from engine.db.storage import Storage, Tx
from engine.db.subscriptions import (
    INVOICE_OPEN,
    INVOICE_PAID,
    KIND_INITIAL,
    KIND_RENEWAL,
    KIND_UPGRADE,
    NO_PENDING,
)
from engine.errors import Conflict
from engine.records import (
    Actor,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionInvoice,
    SubscriptionStatus,
    SubscriptionView,
)
from engine.services.proration import SECONDS_PER_DAY
from engine.services.subscriptions.invoicing import InvoiceBilling
from engine.services.subscriptions.plans import PlanCatalogue
from engine.services.subscriptions.queries import SubscriptionQueries, clean_user_id

__all__ = ["SubscriptionLifecycle"]

log = logging.getLogger("engine.subscriptions")

S = SubscriptionStatus


class SubscriptionLifecycle:
    """Create subscriptions and move them along as invoices are paid and periods end."""

    def __init__(
        self,
        storage: Storage,
        terms: SubscriptionSettings,
        *,
        plans: PlanCatalogue,
        queries: SubscriptionQueries,
        billing: InvoiceBilling,
    ) -> None:
        self.storage = storage
        self.terms = terms
        self.plans = plans
        self.queries = queries
        self.billing = billing

    async def create(self, user_id: str, plan_code: str, actor: Actor) -> SubscriptionView:
        """A subscription for a user: TRIALING on a plan with trial days, otherwise INCOMPLETE with
        its first invoice and KHQR. A user has at most one live subscription (``Conflict``)."""
        user = clean_user_id(user_id)
        first: SubscriptionInvoice | None = None
        async with self.storage.transaction() as tx:
            plan = await self.plans.usable(tx, plan_code)
            await repo.lock_user(tx, user)
            live = await repo.live_for_user(tx, user)
            if live is not None:
                raise Conflict(f"user {user!r} already has a live subscription ({live.id}, {live.status.value})")
            now = tx.now
            common: dict[str, Any] = dict(
                user_id=user, plan_id=plan.id, price_minor=plan.price_minor, currency=plan.currency, cycle_days=plan.cycle_days
            )
            if plan.trial_days > 0:
                trial_end = now + timedelta(days=plan.trial_days)
                sub = await repo.insert(
                    tx,
                    actor=actor,
                    values=dict(
                        status=S.TRIALING.value, current_period_start=now, current_period_end=trial_end, trial_end=trial_end, **common
                    ),
                    event_type=ev.SUBSCRIPTION_TRIAL_STARTED,
                    reason=f"{plan.trial_days}-day trial of {plan.code}",
                )
            else:
                sub_id = tx.ids.new("sub")
                window = now + timedelta(hours=self.terms.first_payment_window_hours)
                sub = await repo.insert(
                    tx,
                    actor=actor,
                    values=dict(id=sub_id, status=S.INCOMPLETE.value, incomplete_until=window, **common),
                    event_type=ev.SUBSCRIPTION_CREATED,
                    reason=f"created on {plan.code}; first payment due",
                )
                first = await repo.insert_invoice(
                    tx,
                    subscription_id=sub.id,
                    kind=KIND_INITIAL,
                    period_start=now,
                    period_end=now + timedelta(days=plan.cycle_days),
                    plan_id=plan.id,
                    amount_minor=plan.price_minor,
                    currency=plan.currency,
                )
        if first is not None:
            await self.billing.issue_payment(first.id, actor=actor)
        return await self.queries.get(sub.id)

    # --- a paid invoice -----------------------------------------------------------------------------

    async def settle_paid_invoice(self, paid: repo.PaidInvoice, *, actor: Actor) -> bool:
        """An OPEN invoice one of whose KHQRs was paid: mark it PAID and do what it paid for —
        activate an INCOMPLETE subscription (its period starts when it was paid), start the new
        period of a PAST_DUE one, apply a pending upgrade. A renewal paid ahead of period end is
        applied when the period ends. Returns False if another process settled it first."""
        reissue: list[str] = []
        async with self.storage.transaction() as tx:
            paid_at = min(paid.paid_at or tx.now, tx.now)
            settled = await repo.settle_invoice(tx, paid.invoice.id, payment_id=paid.payment_id, paid_at=paid_at)
            if settled is None:
                return False
            inv = settled
            if paid.invoice.payment_id and paid.invoice.payment_id != paid.payment_id:
                await self.billing.cancel_payment(
                    tx, paid.invoice.payment_id, actor=actor, reason="an earlier KHQR of this invoice was paid"
                )
            await journal.audit(
                tx, actor, "subscription.invoice_paid", "subscription", inv.subscription_id, after=repo.invoice_event_data(inv)
            )
            sub = await repo.get(tx, inv.subscription_id)
            if inv.kind == KIND_INITIAL and sub.status is S.INCOMPLETE:
                payment = await payment_repo.get(tx, paid.payment_id)
                start, end = paid_at, paid_at + timedelta(days=sub.cycle_days)
                await repo.update_invoice(tx, inv.id, period_start=start, period_end=end)
                inv = replace(inv, period_start=start, period_end=end)
                await repo.transition(
                    tx, sub.id, expected=[S.INCOMPLETE], to=S.ACTIVE, actor=actor, reason="first payment received",
                    event_type=ev.SUBSCRIPTION_ACTIVATED, action="subscription.activate",
                    changes=dict(current_period_start=start, current_period_end=end, incomplete_until=None),
                    event_extra={"invoice": repo.invoice_event_data(inv, payment)},
                )  # fmt: skip
            elif inv.kind == KIND_RENEWAL and sub.status is S.PAST_DUE and sub.current_period_end == inv.period_start:
                payment = await payment_repo.get(tx, paid.payment_id)
                await self._start_period(tx, sub, inv, payment, actor=actor, reason="renewal paid during grace")
            elif inv.kind == KIND_UPGRADE and sub.pending_invoice_id == inv.id and sub.status in (S.ACTIVE, S.TRIALING):
                payment = await payment_repo.get(tx, paid.payment_id)
                reissue += await self._apply_upgrade(tx, sub, inv, payment, actor=actor)
            elif inv.kind != KIND_RENEWAL or not sub.status.is_live:
                log.warning("subscription %s: invoice %s paid while %s: nothing to apply", sub.id, inv.id, sub.status.value)
        await self.billing.issue_payments(reissue, actor=actor)
        return True

    async def _apply_upgrade(
        self, tx: Tx, sub: Subscription, inv: SubscriptionInvoice, payment: Payment, *, actor: Actor
    ) -> list[str]:
        new = await repo.get_plan(tx, inv.plan_id)
        from_code = await repo.plan_code(tx, sub.plan_id)
        changed = await repo.transition(
            tx, sub.id, expected=[sub.status], to=None, actor=actor, reason=f"upgrade to {new.code} paid",
            event_type=ev.SUBSCRIPTION_UPGRADED, action="subscription.upgrade",
            changes=dict(plan_id=new.id, price_minor=new.price_minor, **NO_PENDING),
            guard=[SubscriptionRow.pending_invoice_id == inv.id],
            event_extra={"from_plan": from_code, "invoice": repo.invoice_event_data(inv, payment)},
        )  # fmt: skip
        if changed is None or changed.current_period_end is None:
            return []
        prepaid = await repo.prepaid_next_period(tx, changed)
        if prepaid is not None and prepaid.plan_id == sub.plan_id:
            # the next period was paid (at the old price) while the upgrade waited: it runs on the
            # new plan all the same; the renewal after it is billed at the new price
            await repo.update_invoice(tx, prepaid.id, plan_id=new.id)
            return []
        return await self.billing.reprice_renewal(tx, changed, actor=actor)

    async def _start_period(
        self, tx: Tx, sub: Subscription, inv: SubscriptionInvoice, payment: Payment | None, *, actor: Actor, reason: str
    ) -> Subscription | None:
        """Start the period a PAID renewal invoice paid for, where the last one ended; apply a
        downgrade scheduled for it and let an unpaid upgrade lapse."""
        changes: dict[str, Any] = dict(
            plan_id=inv.plan_id,
            price_minor=inv.amount_minor,
            currency=inv.currency,
            cycle_days=max(1, round((inv.period_end - inv.period_start).total_seconds() / SECONDS_PER_DAY)),
            current_period_start=inv.period_start,
            current_period_end=inv.period_end,
            grace_until=None,
            last_reminder_at=None,
        )
        extra: list[tuple[str, dict[str, Any]]] = []
        if sub.pending_change == "downgrade" and sub.pending_change_at is not None and sub.pending_change_at <= inv.period_start:
            changes.update(NO_PENDING)
            extra.append((ev.SUBSCRIPTION_DOWNGRADED, {"from_plan": await repo.plan_code(tx, sub.plan_id)}))
        elif sub.pending_change == "upgrade":
            await self._lapse_upgrade(tx, sub, changes, extra, actor=actor)
        event = ev.SUBSCRIPTION_ACTIVATED if sub.status is S.TRIALING else ev.SUBSCRIPTION_RENEWED
        return await repo.transition(
            tx, sub.id, expected=[sub.status], to=S.ACTIVE, actor=actor, reason=reason,
            event_type=event, action="subscription.renew", changes=changes,
            guard=[SubscriptionRow.current_period_end == inv.period_start],
            event_extra={"invoice": repo.invoice_event_data(inv, payment)}, extra_events=extra,
        )  # fmt: skip

    async def _lapse_upgrade(
        self, tx: Tx, sub: Subscription, changes: dict[str, Any], extra: list[tuple[str, dict[str, Any]]], *, actor: Actor
    ) -> None:
        """An upgrade still unpaid at period end lapses: its invoice is voided, and the transition
        being built (``changes``, ``extra`` events) clears the pending change and says so."""
        await self.billing.drop_pending_upgrade(tx, sub, actor=actor, reason="upgrade unpaid at period end")
        changes.update(NO_PENDING)
        extra.append((ev.SUBSCRIPTION_UPGRADE_WITHDRAWN, {"lapsed": "unpaid at period end"}))

    # --- the calendar -------------------------------------------------------------------------------

    async def start_paid_period(self, sub: Subscription, inv: SubscriptionInvoice, *, actor: Actor) -> bool:
        """At period end with the next period paid (``inv``, PAID: that never changes): start it.
        The guard on the period end makes a second renewer's attempt match nothing."""
        async with self.storage.transaction() as tx:
            sub = await repo.get(tx, sub.id)  # its pending change as it is now, not as the batch read it
            if inv.status != INVOICE_PAID or sub.status not in (S.ACTIVE, S.TRIALING) or sub.current_period_end != inv.period_start:
                return False
            reason = "trial ended; first period paid" if sub.status is S.TRIALING else "period ended; next period paid"
            return await self._start_period(tx, sub, inv, None, actor=actor, reason=reason) is not None

    async def end_at_period_end(self, sub_id: str, *, actor: Actor) -> bool:
        """A cancellation scheduled for the period end takes effect (at the period end)."""
        async with self.storage.transaction() as tx:
            sub = await repo.get(tx, sub_id)
            end = sub.current_period_end
            if sub.status not in (S.ACTIVE, S.TRIALING) or not sub.cancel_at_period_end or end is None or end > tx.now:
                return False
            opened = (await repo.open_invoices_of(tx, [sub.id], lock=True)).get(sub.id, [])
            if any(item.payment_status == PaymentStatus.PAID.value for item in opened):
                return False  # paid after all: the renewer settles it and starts the period
            for item in opened:
                await self.billing.void_invoice(tx, item.invoice.id, actor=actor, reason="subscription cancelled at period end")
            changed = await repo.transition(
                tx, sub.id, expected=[sub.status], to=S.CANCELLED, actor=actor,
                reason=sub.cancel_reason or "cancelled at period end",
                event_type=ev.SUBSCRIPTION_CANCELLED, action="subscription.cancel",
                changes=dict(cancelled_at=end, **NO_PENDING), guard=[SubscriptionRow.current_period_end == end],
                event_extra={"at_period_end": True},
            )  # fmt: skip
            return changed is not None

    async def mark_past_due(self, sub: Subscription, inv: SubscriptionInvoice, *, actor: Actor) -> bool:
        """The period ended with its renewal unpaid: PAST_DUE until the end of grace (access kept),
        with a KHQR valid no later than then in the event."""
        assert sub.current_period_end is not None
        grace_until = sub.current_period_end + timedelta(days=self.terms.grace_days)
        payment, new = await self.billing.live_payment(inv, replace(sub, status=S.PAST_DUE, grace_until=grace_until), actor=actor)
        if payment.status is PaymentStatus.PAID:
            return False  # paid: the renewer settles it and starts the period on its next pass
        changed: Subscription | None = None
        async with self.storage.transaction() as tx:
            locked = await repo.lock_invoice(tx, inv.id)
            if locked.status != INVOICE_OPEN or locked.payment_id != inv.payment_id:
                # paid, voided or given another KHQR meanwhile: decide again on the next pass
                if new and locked.payment_id != payment.id:  # (a twin renewer recorded this very KHQR)
                    await self.billing.cancel_payment(tx, payment.id, actor=actor, reason="superseded before it was shown")
                return False
            extra: list[tuple[str, dict[str, Any]]] = []
            changes: dict[str, Any] = dict(grace_until=grace_until, last_reminder_at=tx.now)
            if sub.pending_change == "upgrade" and sub.pending_invoice_id:
                await self._lapse_upgrade(tx, sub, changes, extra, actor=actor)
            changed = await repo.transition(
                tx, sub.id, expected=[S.ACTIVE, S.TRIALING], to=S.PAST_DUE, actor=actor,
                reason="renewal unpaid at period end", event_type=ev.SUBSCRIPTION_PAST_DUE, action="subscription.past_due",
                changes=changes, guard=[SubscriptionRow.current_period_end == sub.current_period_end],
                event_extra={"invoice": repo.invoice_event_data(inv, payment)}, extra_events=extra,
            )  # fmt: skip
            if changed is not None and new:
                await self._record_quietly(tx, inv, payment, actor=actor, sub=changed)
        if changed is None and new:  # nothing changed, but the KHQR exists: record it all the same
            async with self.storage.transaction() as tx:
                await self._record_quietly(tx, inv, payment, actor=actor)
        return changed is not None

    async def remind(self, sub: Subscription, inv: SubscriptionInvoice, *, actor: Actor) -> bool:
        """A reminder during grace, with a KHQR that can still be paid (a fresh one if needed)."""
        payment, new = await self.billing.live_payment(inv, sub, actor=actor)
        if payment.status is PaymentStatus.PAID:
            return False
        guard = (
            SubscriptionRow.last_reminder_at.is_(None)
            if sub.last_reminder_at is None
            else SubscriptionRow.last_reminder_at == sub.last_reminder_at
        )
        async with self.storage.transaction() as tx:
            changed = await repo.transition(
                tx, sub.id, expected=[S.PAST_DUE], to=None, actor=actor, reason="renewal still unpaid",
                event_type=ev.SUBSCRIPTION_REMINDER, action="subscription.payment_reminder",
                changes=dict(last_reminder_at=tx.now), guard=[guard],
                event_extra={"invoice": repo.invoice_event_data(inv, payment)},
            )  # fmt: skip
            if changed is not None and new:
                await self._record_quietly(tx, inv, payment, actor=actor, sub=changed)
        if changed is None and new:  # nothing changed, but the KHQR exists: record it all the same
            async with self.storage.transaction() as tx:
                await self._record_quietly(tx, inv, payment, actor=actor)
        return changed is not None

    async def _record_quietly(
        self, tx: Tx, inv: SubscriptionInvoice, payment: Payment, *, actor: Actor, sub: Subscription | None = None
    ) -> None:
        """Record a KHQR created for a past-due or reminder transition on its invoice, without an
        event of its own: the transition's event carries it."""
        await self.billing.attach_payment(tx, inv.id, payment, previous=inv.payment_id, actor=actor, quiet=True, sub=sub)

    async def expire(self, sub_id: str, *, actor: Actor) -> bool:
        """End a PAST_DUE subscription at the end of grace, or an INCOMPLETE one at the end of its
        first-payment window — unless a KHQR for it is still PENDING (it expires by then) or PAID
        (the renewer settles it first)."""
        async with self.storage.transaction() as tx:
            sub = await repo.get(tx, sub_id)
            if sub.status is S.PAST_DUE and sub.grace_until is not None and sub.grace_until <= tx.now:
                reason = "renewal unpaid at the end of grace"
            elif sub.status is S.INCOMPLETE and sub.incomplete_until is not None and sub.incomplete_until <= tx.now:
                reason = "first payment not made in time"
            else:
                return False
            opened = (await repo.open_invoices_of(tx, [sub.id], lock=True)).get(sub.id, [])
            if any(item.collecting(tx.now) for item in opened):
                return False
            for item in opened:
                await self.billing.void_invoice(tx, item.invoice.id, actor=actor, reason=reason)
            changed = await repo.transition(
                tx, sub.id, expected=[sub.status], to=S.EXPIRED, actor=actor, reason=reason,
                event_type=ev.SUBSCRIPTION_EXPIRED, action="subscription.expire", changes=dict(NO_PENDING),
            )  # fmt: skip
            return changed is not None
