"""Plan changes a customer asks for: upgrade (prorated, with a preview), downgrade, withdraw a
pending change, cancel and resume.

- **upgrade**: prorated (``engine.services.proration``) and applied only when that payment is
  PAID; an upgrade that costs 0 (equal price, a trial, the last second) applies at once. Plans
  must share currency and cycle length. An unpaid upgrade lapses at period end.
- **downgrade**: scheduled for the next period start; replaces any pending change; withdrawable.
- **cancel**: at period end (default; undone by ``resume`` before then) or now.

A change made while the next period's renewal invoice is open reprices it (a fresh KHQR replaces
the old one, issued once the change is committed); once the next period is paid, a downgrade or
cancellation waits for the end of that period and an upgrade is refused until it starts. Each
change applies to the subscription as this request read it: ``Conflict`` when another request
changed it meanwhile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine import events as ev
from engine.clock import PHNOM_PENH
from engine.db import journal
from engine.db import payments as payment_repo
from engine.db import subscriptions as repo
from engine.db.models import SubscriptionRow
from engine.db.storage import Storage, Tx
from engine.db.subscriptions import (
    INVOICE_OPEN,
    INVOICE_PAID,
    INVOICE_VOID,
    KIND_UPGRADE,
    NO_PENDING,
)
from engine.errors import Conflict, InvalidInput, InvalidTransition
from engine.records import (
    Actor,
    PaymentStatus,
    Plan,
    PlanChange,
    ProrationQuote,
    Subscription,
    SubscriptionInvoice,
    SubscriptionStatus,
    SubscriptionView,
)
from engine.services.proration import SECONDS_PER_DAY, prorate, remaining_seconds
from engine.services.subscriptions.invoicing import InvoiceBilling
from engine.services.subscriptions.plans import PlanCatalogue
from engine.services.subscriptions.queries import SubscriptionQueries

__all__ = ["PlanChanges"]

S = SubscriptionStatus


class PlanChanges:
    """Upgrade, downgrade, withdraw, cancel and resume a user's live subscription."""

    def __init__(self, storage: Storage, *, plans: PlanCatalogue, queries: SubscriptionQueries, billing: InvoiceBilling) -> None:
        self.storage = storage
        self.plans = plans
        self.queries = queries
        self.billing = billing

    # --- upgrade ----------------------------------------------------------------------------------

    async def _quote(self, tx: Tx, sub: Subscription, plan_code: str) -> tuple[ProrationQuote, Plan]:
        if sub.status not in (S.ACTIVE, S.TRIALING):
            raise InvalidTransition(f"subscription {sub.id} is {sub.status.value}: only an ACTIVE or TRIALING subscription can be upgraded")
        new = await self._other_plan(tx, sub, plan_code)
        if new.cycle_days != sub.cycle_days:
            raise InvalidInput(
                f"plan {new.code!r} has a {new.cycle_days}-day cycle, the subscription a {sub.cycle_days}-day one: "
                "change to it with a downgrade at period end",
                field="plan",
            )
        if new.price_minor < sub.price_minor:
            raise InvalidInput(f"plan {new.code!r} costs less than the current price: use downgrade", field="plan")
        assert sub.current_period_end is not None
        if await repo.prepaid_next_period(tx, sub) is not None:
            raise Conflict(
                f"the next period (from {_local(sub.current_period_end)}) is already paid on the current plan: "
                "upgrade once it has started"
            )
        cycle = sub.cycle_days * SECONDS_PER_DAY
        left = remaining_seconds(tx.now, sub.current_period_end, cycle)
        # a trial is free: moving to a dearer plan during it costs nothing until the first paid period
        amount = 0 if sub.status is S.TRIALING else prorate(new.price_minor, sub.price_minor, left, cycle, sub.currency)
        quote = ProrationQuote(
            from_plan=await repo.plan_code(tx, sub.plan_id) or "",
            to_plan=new.code,
            currency=sub.currency,
            old_price_minor=sub.price_minor,
            new_price_minor=new.price_minor,
            remaining_seconds=left,
            cycle_seconds=cycle,
            period_end=sub.current_period_end,
            amount_minor=amount,
        )
        return quote, new

    async def preview_upgrade(self, user_id: str, plan_code: str) -> ProrationQuote:
        """What upgrading now would cost (nothing is created)."""
        async with self.storage.read() as tx:
            quote, _ = await self._quote(tx, await self.queries.live(tx, user_id), plan_code)
            return quote

    async def upgrade(self, user_id: str, plan_code: str, actor: Actor) -> PlanChange:
        """Upgrade now: a prorated invoice and KHQR; the plan changes when it is PAID (at once when
        the amount is 0). Replaces any pending change."""
        invoice: SubscriptionInvoice | None = None
        async with self.storage.transaction() as tx:
            sub = await self.queries.live(tx, user_id)
            quote, new = await self._quote(tx, sub, plan_code)
            await self.billing.drop_pending_upgrade(tx, sub, actor=actor, reason=f"replaced by an upgrade to {new.code}")
            if quote.immediate:
                changed = await self._transition(
                    tx, sub, actor=actor, reason=f"upgraded to {new.code}",
                    event_type=ev.SUBSCRIPTION_UPGRADED, action="subscription.upgrade",
                    changes=dict(plan_id=new.id, price_minor=new.price_minor, **NO_PENDING),
                    event_extra={"from_plan": quote.from_plan, "amount_minor": 0},
                )  # fmt: skip
            else:
                invoice = await repo.invoice_for_period(tx, sub.id, KIND_UPGRADE, tx.now)
                if invoice is None:
                    invoice = await repo.insert_invoice(
                        tx,
                        subscription_id=sub.id,
                        kind=KIND_UPGRADE,
                        period_start=tx.now,
                        period_end=quote.period_end,
                        plan_id=new.id,
                        amount_minor=quote.amount_minor,
                        currency=sub.currency,
                    )
                else:
                    # an upgrade replaced in the same instant: the invoice of that instant takes the
                    # new terms (its KHQR was cancelled above; the next one is issued below)
                    await repo.update_invoice(
                        tx, invoice.id, status=INVOICE_OPEN, plan_id=new.id, amount_minor=quote.amount_minor,
                        period_end=quote.period_end,
                    )  # fmt: skip
                    invoice = await repo.get_invoice(tx, invoice.id)
                changed = await self._transition(
                    tx, sub, actor=actor, reason=f"upgrade to {new.code} waits for {quote.display_amount}",
                    event_type=None, action="subscription.upgrade_requested",
                    changes=dict(pending_change="upgrade", pending_plan_id=new.id, pending_change_at=None, pending_invoice_id=invoice.id),
                )  # fmt: skip
            # either way the next period's plan may have changed (a pending downgrade it replaced
            # may have priced the next period lower)
            reissue = await self.billing.reprice_renewal(tx, changed, actor=actor)
        await self.billing.issue_payments(reissue, actor=actor)
        payment = None
        if invoice is not None:
            issued = await self.billing.issue_payment(invoice.id, actor=actor)
            payment = issued.payment if issued else None
        async with self.storage.read() as tx:
            view = await self.queries.view(tx, await repo.get(tx, sub.id))
            if invoice is not None:
                invoice = await repo.get_invoice(tx, invoice.id)
        return PlanChange(view=view, quote=quote, applied=invoice is None, invoice=invoice, payment=payment)

    # --- downgrade, withdraw ----------------------------------------------------------------------

    async def downgrade(self, user_id: str, plan_code: str, actor: Actor) -> SubscriptionView:
        """Schedule a move to a cheaper (or equal) plan at the next period start; replaces any
        pending change. If the next period is already paid, it applies at the end of that one."""
        async with self.storage.transaction() as tx:
            sub = await self.queries.live(tx, user_id)
            if sub.status not in (S.ACTIVE, S.TRIALING, S.PAST_DUE):
                raise InvalidTransition(f"subscription {sub.id} is {sub.status.value}: it has no period to change after")
            if sub.cancel_at_period_end:
                raise InvalidTransition(f"subscription {sub.id} is cancelling at period end: resume it first")
            new = await self._other_plan(tx, sub, plan_code)
            if new.price_minor > sub.price_minor:
                raise InvalidInput(f"plan {new.code!r} costs more than the current price: use upgrade", field="plan")
            assert sub.current_period_end is not None
            prepaid = await repo.prepaid_next_period(tx, sub)
            effective = prepaid.period_end if prepaid is not None else sub.current_period_end
            await self.billing.drop_pending_upgrade(tx, sub, actor=actor, reason=f"replaced by a downgrade to {new.code}")
            changed = await self._transition(
                tx, sub, actor=actor, reason=f"downgrade to {new.code} at {_local(effective)}",
                event_type=ev.SUBSCRIPTION_DOWNGRADE_SCHEDULED, action="subscription.downgrade",
                changes=dict(pending_change="downgrade", pending_plan_id=new.id, pending_change_at=effective, pending_invoice_id=None),
                event_extra={"effective_at": repo.iso(effective)},
            )  # fmt: skip
            reissue = await self.billing.reprice_renewal(tx, changed, actor=actor)
        await self.billing.issue_payments(reissue, actor=actor)
        return await self.queries.get(sub.id)

    async def withdraw_change(self, user_id: str, actor: Actor) -> SubscriptionView:
        """Withdraw the pending upgrade or downgrade."""
        async with self.storage.transaction() as tx:
            sub = await self.queries.live(tx, user_id)
            if sub.pending_change is None:
                raise InvalidTransition(f"subscription {sub.id} has no pending change")
            if sub.pending_change == "upgrade":
                await self.billing.drop_pending_upgrade(tx, sub, actor=actor, reason="upgrade withdrawn")
                event = ev.SUBSCRIPTION_UPGRADE_WITHDRAWN
            else:
                prepaid = await repo.prepaid_next_period(tx, sub)
                if prepaid is not None and prepaid.plan_id == sub.pending_plan_id:
                    raise Conflict(
                        f"the next period is already paid on plan {await repo.plan_code(tx, prepaid.plan_id)!r}: "
                        "the downgrade can no longer be withdrawn"
                    )
                event = ev.SUBSCRIPTION_DOWNGRADE_WITHDRAWN
            changed = await self._transition(
                tx, sub, actor=actor, reason=f"{sub.pending_change} withdrawn",
                event_type=event, action=f"subscription.{sub.pending_change}_withdraw", changes=dict(NO_PENDING),
            )  # fmt: skip
            reissue = await self.billing.reprice_renewal(tx, changed, actor=actor)
        await self.billing.issue_payments(reissue, actor=actor)
        return await self.queries.get(sub.id)

    # --- cancel, resume ---------------------------------------------------------------------------

    async def cancel(
        self, user_id: str, actor: Actor, at_period_end: bool = True, reason: str | None = None
    ) -> SubscriptionView:
        """Cancel at the end of the paid period (default; ``resume`` undoes it until then) or now.

        INCOMPLETE and PAST_DUE subscriptions have no paid period left to run out: they end now."""
        why = _reason(reason, "cancelled by request")
        async with self.storage.transaction() as tx:
            sub = await self.queries.live(tx, user_id)
            scheduled = at_period_end and sub.status in (S.ACTIVE, S.TRIALING)
            if scheduled:
                if sub.cancel_at_period_end:
                    return await self.queries.view(tx, sub)
                assert sub.current_period_end is not None
                effective = sub.current_period_end
                nxt = await repo.next_renewal_invoice(tx, sub)
                if nxt is not None:
                    nxt = await repo.lock_invoice(tx, nxt.id)
                    paid = nxt.payment_id is not None and (await payment_repo.get(tx, nxt.payment_id)).status is PaymentStatus.PAID
                    if nxt.status == INVOICE_PAID or (nxt.status == INVOICE_OPEN and paid):
                        # the next period is paid (perhaps not yet settled): it runs out first
                        effective = nxt.period_end
                    elif nxt.status == INVOICE_OPEN:
                        await self.billing.void_invoice(tx, nxt.id, actor=actor, reason="cancelled at period end")
                await self.billing.drop_pending_upgrade(tx, sub, actor=actor, reason="replaced by a cancellation")
                changed = await self._transition(
                    tx, sub, actor=actor, reason=why,
                    event_type=ev.SUBSCRIPTION_CANCEL_SCHEDULED, action="subscription.cancel_scheduled",
                    changes=dict(cancel_at_period_end=True, cancel_reason=why, **NO_PENDING),
                    event_extra={"effective_at": repo.iso(effective)},
                )  # fmt: skip
            else:
                for item in (await repo.open_invoices_of(tx, [sub.id], lock=True)).get(sub.id, []):
                    await self.billing.void_invoice(tx, item.invoice.id, actor=actor, reason="subscription cancelled")
                changed = await self._transition(
                    tx, sub, to=S.CANCELLED, actor=actor, reason=why,
                    event_type=ev.SUBSCRIPTION_CANCELLED, action="subscription.cancel",
                    changes=dict(cancelled_at=tx.now, cancel_reason=why, cancel_at_period_end=False, **NO_PENDING),
                )  # fmt: skip
            return await self.queries.view(tx, changed)

    async def resume(self, user_id: str, actor: Actor) -> SubscriptionView:
        """Undo a cancellation at period end (before the period ends). The renewal invoice it
        voided is reopened with a fresh KHQR."""
        reissue: list[str] = []
        async with self.storage.transaction() as tx:
            sub = await self.queries.live(tx, user_id)
            if not sub.cancel_at_period_end:
                raise InvalidTransition(f"subscription {sub.id} is not cancelling: there is nothing to resume")
            changed = await self._transition(
                tx, sub, actor=actor, reason="resumed",
                event_type=ev.SUBSCRIPTION_RESUMED, action="subscription.resume",
                changes=dict(cancel_at_period_end=False, cancel_reason=None),
            )  # fmt: skip
            voided = await repo.next_renewal_invoice(tx, changed)
            if voided is not None and voided.status == INVOICE_VOID:
                await repo.set_invoice_status(tx, voided.id, expected=INVOICE_VOID, to=INVOICE_OPEN)
                await journal.audit(
                    tx, actor, "subscription.invoice_reopened", "subscription", sub.id, after=repo.invoice_event_data(voided)
                )
                reissue += await self.billing.reprice_renewal(tx, changed, actor=actor)
                reissue.append(voided.id)
        await self.billing.issue_payments(reissue, actor=actor)
        return await self.queries.get(sub.id)

    # --- shared steps -----------------------------------------------------------------------------

    async def _other_plan(self, tx: Tx, sub: Subscription, plan_code: str) -> Plan:
        """The plan ``sub`` is asked to move to: usable, not its own, billed in its currency."""
        new = await self.plans.usable(tx, plan_code)
        if new.id == sub.plan_id:
            raise InvalidInput(f"the subscription is already on plan {new.code!r}", field="plan")
        if new.currency != sub.currency:
            raise InvalidInput(f"plan {new.code!r} is billed in {new.currency}, the subscription in {sub.currency}", field="plan")
        return new

    async def _transition(
        self,
        tx: Tx,
        sub: Subscription,
        *,
        actor: Actor,
        reason: str,
        event_type: str | None,
        action: str,
        changes: dict[str, Any],
        to: SubscriptionStatus | None = None,
        event_extra: dict[str, Any] | None = None,
    ) -> Subscription:
        """Change ``sub`` as this request read it (same status, same ``updated_at``); ``Conflict``
        when another request changed it meanwhile."""
        changed = await repo.transition(
            tx, sub.id, expected=[sub.status], to=to, actor=actor, reason=reason, event_type=event_type, action=action,
            changes=changes, guard=[SubscriptionRow.updated_at == sub.updated_at], event_extra=event_extra,
        )  # fmt: skip
        if changed is None:
            raise Conflict(f"subscription {sub.id} changed meanwhile; try again")
        return changed


def _reason(reason: str | None, default: str) -> str:
    text = (reason or "").strip()
    if len(text) > 500:
        raise InvalidInput("reason is longer than 500 characters", field="reason")
    if any(ord(c) < 32 and c not in "\t" for c in text):
        raise InvalidInput("reason contains control characters", field="reason")
    return text or default


def _local(dt: datetime) -> str:
    return dt.astimezone(PHNOM_PENH).strftime("%Y-%m-%d %H:%M")
