"""``SubscriptionService``: the one object the faces and the renewer call for plans and subscriptions.

It owns no rule of its own. It builds the collaborators that do — the plan catalogue
(``plans``), the reads (``queries``), invoices and their KHQRs (``billing``), the changes a
customer asks for (``changes``) and the life along payments and the calendar (``lifecycle``) —
and hands each call to the one that owns it, keeping the names and signatures the CLI, the
console, the HTTP API and the renewer call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.clock import Clock
from engine.config import PlanSeed, Settings
from engine.db import subscriptions as repo
from engine.db.storage import Storage, Tx
from engine.records import (
    Actor,
    InvoicePayment,
    Payment,
    Plan,
    PlanChange,
    ProrationQuote,
    StatusChange,
    Subscription,
    SubscriptionInvoice,
    SubscriptionStatus,
    SubscriptionView,
)
from engine.services.payments import PaymentService
from engine.services.subscriptions.changes import PlanChanges
from engine.services.subscriptions.invoicing import InvoiceBilling
from engine.services.subscriptions.lifecycle import SubscriptionLifecycle
from engine.services.subscriptions.plans import PlanCatalogue
from engine.services.subscriptions.queries import SubscriptionQueries

__all__ = ["SubscriptionService"]


class SubscriptionService:
    """Plans and subscriptions for the faces (CLI, console, HTTP API) and the renewer."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Clock,
        payments: PaymentService,
        poke_renewer: Callable[[], None] = lambda: None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.payments = payments
        self.poke_renewer = poke_renewer
        terms = settings.subscriptions
        self.plans = PlanCatalogue(storage, terms)
        self.queries = SubscriptionQueries(storage)
        self.billing = InvoiceBilling(storage, terms, clock=clock, payments=payments, poke_renewer=poke_renewer)
        self.changes = PlanChanges(storage, plans=self.plans, queries=self.queries, billing=self.billing)
        self.lifecycle = SubscriptionLifecycle(storage, terms, plans=self.plans, queries=self.queries, billing=self.billing)

    # --- plans (PlanCatalogue) --------------------------------------------------------------------

    async def add_plan(
        self,
        code: str,
        name: str,
        price: Decimal | int | str,
        currency: str,
        cycle_days: int | None = None,
        trial_days: int = 0,
        *,
        actor: Actor,
    ) -> Plan:
        return await self.plans.add(code, name, price, currency, cycle_days, trial_days, actor=actor)

    async def sync_plans(self, seeds: Sequence[PlanSeed], *, actor: Actor) -> dict[str, str]:
        return await self.plans.sync(seeds, actor=actor)

    async def list_plans(self, *, include_archived: bool = False) -> list[Plan]:
        return await self.plans.list(include_archived=include_archived)

    async def get_plan(self, code: str) -> Plan:
        return await self.plans.get(code)

    async def update_plan(
        self,
        code: str,
        *,
        actor: Actor,
        name: str | None = None,
        price: Decimal | int | str | None = None,
        cycle_days: int | None = None,
        trial_days: int | None = None,
    ) -> Plan:
        return await self.plans.update(code, actor=actor, name=name, price=price, cycle_days=cycle_days, trial_days=trial_days)

    async def archive_plan(self, code: str, *, actor: Actor) -> Plan:
        return await self.plans.archive(code, actor=actor)

    # --- reading (SubscriptionQueries) ------------------------------------------------------------

    async def get(self, subscription_id: str) -> SubscriptionView:
        return await self.queries.get(subscription_id)

    async def status(self, user_id: str) -> SubscriptionView:
        return await self.queries.status(user_id)

    async def history(self, subscription_id: str) -> list[StatusChange]:
        return await self.queries.history(subscription_id)

    async def invoices(self, subscription_id: str) -> list[InvoicePayment]:
        return await self.queries.invoices(subscription_id)

    async def list(
        self,
        *,
        status: SubscriptionStatus | str | None = None,
        plan: str | None = None,
        period_end_before: datetime | None = None,
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[SubscriptionView], str | None]:
        return await self.queries.list(
            status=status, plan=plan, period_end_before=period_end_before, user_id=user_id, limit=limit, cursor=cursor
        )

    # --- what a customer asks for (SubscriptionLifecycle.create, PlanChanges) ---------------------

    async def create(self, user_id: str, plan_code: str, actor: Actor) -> SubscriptionView:
        return await self.lifecycle.create(user_id, plan_code, actor)

    async def preview_upgrade(self, user_id: str, plan_code: str) -> ProrationQuote:
        return await self.changes.preview_upgrade(user_id, plan_code)

    async def upgrade(self, user_id: str, plan_code: str, actor: Actor) -> PlanChange:
        return await self.changes.upgrade(user_id, plan_code, actor)

    async def downgrade(self, user_id: str, plan_code: str, actor: Actor) -> SubscriptionView:
        return await self.changes.downgrade(user_id, plan_code, actor)

    async def withdraw_change(self, user_id: str, actor: Actor) -> SubscriptionView:
        return await self.changes.withdraw_change(user_id, actor)

    async def cancel(
        self, user_id: str, actor: Actor, at_period_end: bool = True, reason: str | None = None
    ) -> SubscriptionView:
        return await self.changes.cancel(user_id, actor, at_period_end, reason)

    async def resume(self, user_id: str, actor: Actor) -> SubscriptionView:
        return await self.changes.resume(user_id, actor)

    # --- KHQRs of invoices, for the renewer (InvoiceBilling) ---------------------------------------

    async def issue_payment(
        self, invoice_id: str, *, actor: Actor, event_type: str | None = None, event_extra: dict[str, Any] | None = None
    ) -> InvoicePayment | None:
        return await self.billing.issue_payment(invoice_id, actor=actor, event_type=event_type, event_extra=event_extra)

    async def create_payment(
        self, inv: SubscriptionInvoice, sub: Subscription, plan_code: str, *, previous_id: str | None, actor: Actor
    ) -> Payment:
        return await self.billing.create_payment(inv, sub, plan_code, previous_id=previous_id, actor=actor)

    async def attach_payment(
        self, tx: Tx, invoice_id: str, payment: Payment, *, previous: str | None, actor: Actor,
        event_type: str | None = None, event_extra: dict[str, Any] | None = None,
        sub: Subscription | None = None, quiet: bool = False,
    ) -> InvoicePayment | None:  # fmt: skip
        return await self.billing.attach_payment(
            tx, invoice_id, payment, previous=previous, actor=actor,
            event_type=event_type, event_extra=event_extra, sub=sub, quiet=quiet,
        )  # fmt: skip

    next_period_plan_id = staticmethod(InvoiceBilling.next_period_plan_id)

    # --- along payments and the calendar, run by the renewer (SubscriptionLifecycle) --------------

    async def settle_paid_invoice(self, paid: repo.PaidInvoice, *, actor: Actor) -> bool:
        return await self.lifecycle.settle_paid_invoice(paid, actor=actor)

    async def start_paid_period(self, sub: Subscription, inv: SubscriptionInvoice, *, actor: Actor) -> bool:
        return await self.lifecycle.start_paid_period(sub, inv, actor=actor)

    async def end_at_period_end(self, sub_id: str, *, actor: Actor) -> bool:
        return await self.lifecycle.end_at_period_end(sub_id, actor=actor)

    async def mark_past_due(self, sub: Subscription, inv: SubscriptionInvoice, *, actor: Actor) -> bool:
        return await self.lifecycle.mark_past_due(sub, inv, actor=actor)

    async def remind(self, sub: Subscription, inv: SubscriptionInvoice, *, actor: Actor) -> bool:
        return await self.lifecycle.remind(sub, inv, actor=actor)

    async def expire(self, sub_id: str, *, actor: Actor) -> bool:
        return await self.lifecycle.expire(sub_id, actor=actor)
