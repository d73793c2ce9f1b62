"""Reading subscriptions: one, a user's current one, a page of the list, history and invoices.

A subscription is shown as a ``SubscriptionView``: the row with its plan, the plan it is moving
to, and its OPEN invoices with their current KHQRs. Nothing here writes.
"""

from __future__ import annotations

from datetime import datetime

from engine.db import payments as payment_repo
from engine.db import subscriptions as repo
from engine.db.storage import Storage, Tx
from engine.db.subscriptions import SubscriptionFilter
from engine.errors import InvalidInput, NotFound
from engine.records import InvoicePayment, StatusChange, Subscription, SubscriptionStatus, SubscriptionView

__all__ = ["SubscriptionQueries", "clean_user_id"]

_USER_ID_LIMIT = 100


def clean_user_id(user_id: str) -> str:
    """The main backend's id of a customer, checked: 1-100 characters, no control characters."""
    text = str(user_id or "").strip()
    if not text:
        raise InvalidInput("user_id is required", field="user_id")
    if len(text) > _USER_ID_LIMIT:
        raise InvalidInput(f"user_id is longer than {_USER_ID_LIMIT} characters", field="user_id")
    if any(ord(c) < 32 for c in text):
        raise InvalidInput("user_id contains control characters", field="user_id")
    return text


class SubscriptionQueries:
    """Subscriptions as the faces show them."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def _views(self, tx: Tx, subs: list[Subscription]) -> list[SubscriptionView]:
        plans = await repo.plans_by_id(tx, [p for s in subs for p in (s.plan_id, s.pending_plan_id)])
        opened = await repo.open_invoices_of(tx, [s.id for s in subs])
        payment_ids = [o.invoice.payment_id for items in opened.values() for o in items if o.invoice.payment_id]
        payments = {}
        for pid in payment_ids:
            payments[pid] = await payment_repo.get(tx, pid)
        views = []
        for s in subs:
            items = tuple(
                InvoicePayment(o.invoice, payments.get(o.invoice.payment_id) if o.invoice.payment_id else None)
                for o in opened.get(s.id, [])
            )
            views.append(
                SubscriptionView(
                    subscription=s,
                    plan=plans[s.plan_id],
                    pending_plan=plans.get(s.pending_plan_id) if s.pending_plan_id else None,
                    open_invoices=items,
                )
            )
        return views

    async def view(self, tx: Tx, sub: Subscription) -> SubscriptionView:
        """One subscription as shown, read in the caller's transaction."""
        return (await self._views(tx, [sub]))[0]

    async def live(self, tx: Tx, user_id: str) -> Subscription:
        """The user's live subscription (``NotFound`` when the user has none)."""
        user = clean_user_id(user_id)
        sub = await repo.live_for_user(tx, user)
        if sub is None:
            raise NotFound(f"user {user!r} has no live subscription")
        return sub

    async def get(self, subscription_id: str) -> SubscriptionView:
        async with self.storage.read() as tx:
            return await self.view(tx, await repo.get(tx, subscription_id))

    async def status(self, user_id: str) -> SubscriptionView:
        """The user's current subscription (the live one, else the most recent ended one)."""
        user = clean_user_id(user_id)
        async with self.storage.read() as tx:
            sub = await repo.live_for_user(tx, user) or await repo.latest_for_user(tx, user)
            if sub is None:
                raise NotFound(f"user {user!r} has no subscription")
            return await self.view(tx, sub)

    async def history(self, subscription_id: str) -> list[StatusChange]:
        async with self.storage.read() as tx:
            await repo.get(tx, subscription_id)
            return await repo.history(tx, subscription_id)

    async def invoices(self, subscription_id: str) -> list[InvoicePayment]:
        """Every invoice of a subscription, oldest first, with its current payment."""
        async with self.storage.read() as tx:
            await repo.get(tx, subscription_id)
            out = []
            for inv in await repo.invoices_of(tx, subscription_id):
                out.append(InvoicePayment(inv, await payment_repo.get(tx, inv.payment_id) if inv.payment_id else None))
            return out

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
        """Subscriptions newest first, one page; the cursor of the next page (None at the end)."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        statuses: tuple[SubscriptionStatus, ...] = ()
        if status is not None:
            try:
                statuses = (SubscriptionStatus(str(status).upper()),)
            except ValueError:
                known = ", ".join(s.value for s in SubscriptionStatus)
                raise InvalidInput(f"status {status!r} is not one of {known}", field="status") from None
        async with self.storage.read() as tx:
            plan_id = (await repo.get_plan_by_code(tx, plan.strip())).id if plan else None
            page, nxt = await repo.search(
                tx,
                SubscriptionFilter(
                    statuses=statuses,
                    plan_id=plan_id,
                    period_end_before=period_end_before,
                    user_id=clean_user_id(user_id) if user_id else None,
                ),
                limit=limit,
                cursor=cursor,
            )
            return await self._views(tx, page), nxt
