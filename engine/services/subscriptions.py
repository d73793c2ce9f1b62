"""Subscription use cases: plans, create, status, upgrade (prorated), downgrade, cancel, resume, list.

KHQR cannot debit anyone, so every charge is an invoice paid by the customer scanning a KHQR
(``engine.payments.initiate``). The service creates invoices and their payments; the renewer
(``engine/workers/renewer.py``) reacts to what gets paid and to the calendar. The billing rules:

- **create**: a plan with trial days starts TRIALING (free until the trial ends; the first paid
  period is billed like a renewal); otherwise INCOMPLETE with its first invoice and KHQR, ACTIVE
  once paid (the period starts when it was paid) and EXPIRED if unpaid after
  ``first_payment_window_hours``.
- **renewal**: the next period is billed ``renewal_lead_days`` before the period ends, at the
  price the next period's plan has then (price changes never touch a period already running).
  The new period starts where the last one ended, not when it was paid.
- **upgrade**: prorated (``engine.services.proration``) and applied only when that payment is
  PAID; an upgrade that costs 0 (equal price, a trial, the last second) applies at once. Plans
  must share currency and cycle length. An unpaid upgrade lapses at period end.
- **downgrade**: scheduled for the next period start; replaces any pending change; withdrawable.
- **cancel**: at period end (default; undone by ``resume`` before then) or now. A change made
  while the next period's renewal invoice is open reprices it (a fresh KHQR replaces the old one);
  once the next period is paid, a downgrade or cancellation waits for the end of that period and
  an upgrade is refused until it starts.
- A subscription never expires while a KHQR issued for it is still PENDING; those KHQRs are issued
  so that they expire by the deadline (window, grace end, period end).

Every subscription change is one transaction with its history row (when the status changes), its
audit row and its event.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from engine import events as ev
from engine.clock import PHNOM_PENH, Clock
from engine.config import PlanSeed, Settings
from engine.db import journal
from engine.db import payments as payment_repo
from engine.db import subscriptions as repo
from engine.db.models import SubscriptionRow
from engine.db.storage import Storage, Tx
from engine.db.subscriptions import (
    INVOICE_OPEN,
    INVOICE_PAID,
    INVOICE_VOID,
    KIND_INITIAL,
    KIND_RENEWAL,
    KIND_UPGRADE,
    SubscriptionFilter,
)
from engine.errors import Conflict, IdempotencyConflict, InvalidInput, InvalidTransition, NotFound
from engine.money import check_currency, parse_amount, to_major, to_minor
from engine.records import (
    Actor,
    Event,
    InvoicePayment,
    Payment,
    PaymentStatus,
    Plan,
    PlanChange,
    ProrationQuote,
    StatusChange,
    Subscription,
    SubscriptionInvoice,
    SubscriptionStatus,
    SubscriptionView,
)
from engine.services.payments import MAX_TIMEOUT_MINUTES, PaymentService
from engine.services.proration import SECONDS_PER_DAY, prorate, remaining_seconds

__all__ = ["IDEMPOTENCY_SCOPE", "SubscriptionService", "invoice_idempotency_key", "subscription_payment_listener"]

log = logging.getLogger("engine.subscriptions")

#: Payments of subscription invoices are created under this idempotency scope.
IDEMPOTENCY_SCOPE = "subscriptions"

_PLAN_CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_CYCLE_DAYS = 3660
MAX_TRIAL_DAYS = 3660
_USER_ID_LIMIT = 100

S = SubscriptionStatus


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


def _minutes_until(now: datetime, deadline: datetime | None, cap: int) -> int:
    if deadline is None:
        return cap
    minutes = math.ceil((deadline - now).total_seconds() / 60)
    return max(1, min(cap, minutes))


def _clean_user_id(user_id: str) -> str:
    text = str(user_id or "").strip()
    if not text:
        raise InvalidInput("user_id is required", field="user_id")
    if len(text) > _USER_ID_LIMIT:
        raise InvalidInput(f"user_id is longer than {_USER_ID_LIMIT} characters", field="user_id")
    if any(ord(c) < 32 for c in text):
        raise InvalidInput("user_id contains control characters", field="user_id")
    return text


def _clean_code(code: str) -> str:
    text = str(code or "").strip()
    if not _PLAN_CODE.match(text):
        raise InvalidInput(
            f"plan code {code!r} must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="code",
        )
    return text


def _clean_name(name: str) -> str:
    text = str(name or "").strip()
    if not text:
        raise InvalidInput("plan name is required", field="name")
    if len(text) > 128 or any(ord(c) < 32 for c in text):
        raise InvalidInput("plan name must be at most 128 printable characters", field="name")
    return text


def _price_minor(price: Decimal | int | str, currency: str) -> int:
    if isinstance(price, float):
        raise InvalidInput("price must be exact (a decimal string), not a float", field="price")
    try:
        minor = parse_amount(price, currency) if isinstance(price, str) else to_minor(price, currency)
    except InvalidInput as exc:
        raise InvalidInput(exc.message.replace("amount", "price"), field="price") from None
    if minor <= 0:
        raise InvalidInput("price must be greater than zero", field="price")
    return minor


def _days(value: int, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a whole number of days", field=field)
    if not low <= value <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}", field=field)
    return value


def _reason(reason: str | None, default: str) -> str:
    text = (reason or "").strip()
    if len(text) > 500:
        raise InvalidInput("reason is longer than 500 characters", field="reason")
    if any(ord(c) < 32 and c not in "\t" for c in text):
        raise InvalidInput("reason contains control characters", field="reason")
    return text or default


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

    @property
    def _s(self) -> Any:
        return self.settings.subscriptions

    # --- plans ------------------------------------------------------------------------------------

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
        """A new plan; ``price`` in major units ("5.00" USD, "20000" KHR), per cycle."""
        code = _clean_code(code)
        name = _clean_name(name)
        currency = check_currency(currency)
        price_minor = _price_minor(price, currency)
        cycle = _days(self._s.cycle_days if cycle_days is None else cycle_days, "cycle_days", 1, MAX_CYCLE_DAYS)
        trial = _days(trial_days, "trial_days", 0, MAX_TRIAL_DAYS)
        async with self.storage.transaction() as tx:
            return await repo.insert_plan(
                tx, actor=actor, code=code, name=name, price_minor=price_minor, currency=currency, cycle_days=cycle, trial_days=trial
            )

    async def sync_plans(self, seeds: Sequence[PlanSeed], *, actor: Actor) -> dict[str, str]:
        """Bring the plans named in the config in step with it: each code is "added", "updated"
        or "unchanged". A plan whose currency differs from its seed is refused (its running
        subscriptions were billed in it); nothing is archived or deleted."""
        done: dict[str, str] = {}
        for seed in seeds:
            code = _clean_code(seed.code)
            cycle = seed.cycle_days or None
            try:
                plan = await self.get_plan(code)
            except NotFound:
                try:
                    await self.add_plan(code, seed.name, seed.price, seed.currency, cycle, seed.trial_days, actor=actor)
                    done[code] = "added"
                    continue
                except Conflict:  # another process added it first: compare with theirs
                    plan = await self.get_plan(code)
            if plan.currency != check_currency(seed.currency):
                raise InvalidInput(
                    f"plan {code} is priced in {plan.currency}; the config says {seed.currency}: "
                    "add a plan with a new code instead",
                    field="subscriptions.plans",
                )
            wanted = {
                "name": _clean_name(seed.name),
                "price_minor": _price_minor(seed.price, plan.currency),
                "cycle_days": cycle or self._s.cycle_days,
                "trial_days": seed.trial_days,
            }
            current = {"name": plan.name, "price_minor": plan.price_minor, "cycle_days": plan.cycle_days, "trial_days": plan.trial_days}
            if wanted == current:
                done[code] = "unchanged"
                continue
            await self.update_plan(
                code, actor=actor, name=wanted["name"], price=to_major(wanted["price_minor"], plan.currency),
                cycle_days=wanted["cycle_days"], trial_days=wanted["trial_days"],
            )  # fmt: skip
            done[code] = "updated"
        return done

    async def list_plans(self, *, include_archived: bool = False) -> list[Plan]:
        async with self.storage.read() as tx:
            return await repo.list_plans(tx, include_archived=include_archived)

    async def get_plan(self, code: str) -> Plan:
        async with self.storage.read() as tx:
            return await repo.get_plan_by_code(tx, str(code).strip())

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
        """Change a plan. Running periods keep their price and length; renewals billed from now on
        and new subscriptions take the new terms."""
        async with self.storage.transaction() as tx:
            plan = await repo.get_plan_by_code(tx, str(code).strip())
            changes: dict[str, Any] = {}
            if name is not None:
                changes["name"] = _clean_name(name)
            if price is not None:
                changes["price_minor"] = _price_minor(price, plan.currency)
            if cycle_days is not None:
                changes["cycle_days"] = _days(cycle_days, "cycle_days", 1, MAX_CYCLE_DAYS)
            if trial_days is not None:
                changes["trial_days"] = _days(trial_days, "trial_days", 0, MAX_TRIAL_DAYS)
            if not changes:
                raise InvalidInput("nothing to change: give a name, price, cycle_days or trial_days", field="plan")
            return await repo.update_plan(tx, plan.code, actor=actor, changes=changes)

    async def archive_plan(self, code: str, *, actor: Actor) -> Plan:
        """No new subscriptions or changes to this plan; existing subscriptions keep renewing on it."""
        async with self.storage.transaction() as tx:
            return await repo.archive_plan(tx, str(code).strip(), actor=actor)

    # --- reading ----------------------------------------------------------------------------------

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

    async def _view(self, tx: Tx, sub: Subscription) -> SubscriptionView:
        return (await self._views(tx, [sub]))[0]

    async def get(self, subscription_id: str) -> SubscriptionView:
        async with self.storage.read() as tx:
            return await self._view(tx, await repo.get(tx, subscription_id))

    async def status(self, user_id: str) -> SubscriptionView:
        """The user's current subscription (the live one, else the most recent ended one)."""
        user = _clean_user_id(user_id)
        async with self.storage.read() as tx:
            sub = await repo.live_for_user(tx, user) or await repo.latest_for_user(tx, user)
            if sub is None:
                raise NotFound(f"user {user!r} has no subscription")
            return await self._view(tx, sub)

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
                    user_id=_clean_user_id(user_id) if user_id else None,
                ),
                limit=limit,
                cursor=cursor,
            )
            return await self._views(tx, page), nxt

    # --- create -----------------------------------------------------------------------------------

    async def create(self, user_id: str, plan_code: str, actor: Actor) -> SubscriptionView:
        """A subscription for a user: TRIALING on a plan with trial days, otherwise INCOMPLETE with
        its first invoice and KHQR. A user has at most one live subscription (``Conflict``)."""
        user = _clean_user_id(user_id)
        first: SubscriptionInvoice | None = None
        async with self.storage.transaction() as tx:
            plan = await self._usable_plan(tx, plan_code)
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
                window = now + timedelta(hours=self._s.first_payment_window_hours)
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
            await self.issue_payment(first.id, actor=actor)
        return await self.get(sub.id)

    async def _usable_plan(self, tx: Tx, code: str) -> Plan:
        plan = await repo.get_plan_by_code(tx, str(code or "").strip())
        if plan.archived_at is not None:
            raise InvalidInput(f"plan {plan.code!r} is archived", field="plan")
        return plan

    async def _live(self, tx: Tx, user_id: str) -> Subscription:
        user = _clean_user_id(user_id)
        sub = await repo.live_for_user(tx, user)
        if sub is None:
            raise NotFound(f"user {user!r} has no live subscription")
        return sub

    # --- upgrade ----------------------------------------------------------------------------------

    async def _quote(self, tx: Tx, sub: Subscription, plan_code: str) -> tuple[ProrationQuote, Plan]:
        if sub.status not in (S.ACTIVE, S.TRIALING):
            raise InvalidTransition(f"subscription {sub.id} is {sub.status.value}: only an ACTIVE or TRIALING subscription can be upgraded")
        new = await self._usable_plan(tx, plan_code)
        current_code = await repo.plan_code(tx, sub.plan_id)
        if new.id == sub.plan_id:
            raise InvalidInput(f"the subscription is already on plan {new.code!r}", field="plan")
        if new.currency != sub.currency:
            raise InvalidInput(f"plan {new.code!r} is billed in {new.currency}, the subscription in {sub.currency}", field="plan")
        if new.cycle_days != sub.cycle_days:
            raise InvalidInput(
                f"plan {new.code!r} has a {new.cycle_days}-day cycle, the subscription a {sub.cycle_days}-day one: "
                "change to it with a downgrade at period end",
                field="plan",
            )
        if new.price_minor < sub.price_minor:
            raise InvalidInput(f"plan {new.code!r} costs less than the current price: use downgrade", field="plan")
        assert sub.current_period_end is not None
        prepaid = await repo.invoice_for_period(tx, sub.id, KIND_RENEWAL, sub.current_period_end)
        if prepaid is not None and prepaid.status == INVOICE_PAID:
            raise Conflict(
                f"the next period (from {_local(sub.current_period_end)}) is already paid on the current plan: "
                "upgrade once it has started"
            )
        cycle = sub.cycle_days * SECONDS_PER_DAY
        left = remaining_seconds(tx.now, sub.current_period_end, cycle)
        # a trial is free: moving to a dearer plan during it costs nothing until the first paid period
        amount = 0 if sub.status is S.TRIALING else prorate(new.price_minor, sub.price_minor, left, cycle, sub.currency)
        quote = ProrationQuote(
            from_plan=current_code or "",
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
            quote, _ = await self._quote(tx, await self._live(tx, user_id), plan_code)
            return quote

    async def upgrade(self, user_id: str, plan_code: str, actor: Actor) -> PlanChange:
        """Upgrade now: a prorated invoice and KHQR; the plan changes when it is PAID (at once when
        the amount is 0). Replaces any pending change."""
        reissue: list[str] = []
        invoice: SubscriptionInvoice | None = None
        async with self.storage.transaction() as tx:
            sub = await self._live(tx, user_id)
            quote, new = await self._quote(tx, sub, plan_code)
            await self.drop_pending_upgrade(tx, sub, actor=actor, reason=f"replaced by an upgrade to {new.code}")
            if quote.immediate:
                changed = await repo.transition(
                    tx, sub.id, expected=[sub.status], to=None, actor=actor, reason=f"upgraded to {new.code}",
                    event_type=ev.SUBSCRIPTION_UPGRADED, action="subscription.upgrade",
                    changes=dict(plan_id=new.id, price_minor=new.price_minor, **NO_PENDING),
                    guard=[SubscriptionRow.updated_at == sub.updated_at],
                    event_extra={"from_plan": quote.from_plan, "amount_minor": 0},
                )  # fmt: skip
                if changed is None:
                    raise Conflict(f"subscription {sub.id} changed meanwhile; try again")
                reissue += await self.reprice_renewal(tx, changed, actor=actor)
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
                changed = await repo.transition(
                    tx, sub.id, expected=[sub.status], to=None, actor=actor,
                    reason=f"upgrade to {new.code} waits for {quote.display_amount}",
                    event_type=None, action="subscription.upgrade_requested",
                    changes=dict(pending_change="upgrade", pending_plan_id=new.id, pending_change_at=None, pending_invoice_id=invoice.id),
                    guard=[SubscriptionRow.updated_at == sub.updated_at],
                )  # fmt: skip
                if changed is None:
                    raise Conflict(f"subscription {sub.id} changed meanwhile; try again")
                # a pending downgrade it replaced may have priced the next period lower
                reissue += await self.reprice_renewal(tx, changed, actor=actor)
        for invoice_id in reissue:
            await self.issue_payment(invoice_id, actor=actor)
        payment = None
        if invoice is not None:
            issued = await self.issue_payment(invoice.id, actor=actor)
            payment = issued.payment if issued else None
        async with self.storage.read() as tx:
            view = await self._view(tx, await repo.get(tx, sub.id))
            if invoice is not None:
                invoice = await repo.get_invoice(tx, invoice.id)
        return PlanChange(view=view, quote=quote, applied=invoice is None, invoice=invoice, payment=payment)

    async def drop_pending_upgrade(self, tx: Tx, sub: Subscription, *, actor: Actor, reason: str) -> bool:
        """Void a pending upgrade's invoice and cancel its KHQR (the caller clears the pending fields)."""
        if sub.pending_change != "upgrade" or not sub.pending_invoice_id:
            return False
        await self.void_invoice(tx, sub.pending_invoice_id, actor=actor, reason=reason)
        return True

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

    async def cancel_payment(self, tx: Tx, payment_id: str, *, actor: Actor, reason: str) -> Payment | None:
        """Stop collecting a KHQR that is no longer wanted (only a PENDING one can be cancelled)."""
        return await payment_repo.transition(
            tx,
            payment_id,
            expected=[PaymentStatus.PENDING],
            to=PaymentStatus.CANCELLED,
            actor=actor,
            reason=reason,
            changes={"next_check_at": None, "check_requested_at": None},
        )

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
        inv = await repo.invoice_for_period(tx, sub.id, KIND_RENEWAL, sub.current_period_end)
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

    # --- downgrade, withdraw ----------------------------------------------------------------------

    async def downgrade(self, user_id: str, plan_code: str, actor: Actor) -> SubscriptionView:
        """Schedule a move to a cheaper (or equal) plan at the next period start; replaces any
        pending change. If the next period is already paid, it applies at the end of that one."""
        reissue: list[str] = []
        async with self.storage.transaction() as tx:
            sub = await self._live(tx, user_id)
            if sub.status not in (S.ACTIVE, S.TRIALING, S.PAST_DUE):
                raise InvalidTransition(f"subscription {sub.id} is {sub.status.value}: it has no period to change after")
            if sub.cancel_at_period_end:
                raise InvalidTransition(f"subscription {sub.id} is cancelling at period end: resume it first")
            new = await self._usable_plan(tx, plan_code)
            if new.id == sub.plan_id:
                raise InvalidInput(f"the subscription is already on plan {new.code!r}", field="plan")
            if new.currency != sub.currency:
                raise InvalidInput(f"plan {new.code!r} is billed in {new.currency}, the subscription in {sub.currency}", field="plan")
            if new.price_minor > sub.price_minor:
                raise InvalidInput(f"plan {new.code!r} costs more than the current price: use upgrade", field="plan")
            assert sub.current_period_end is not None
            effective = sub.current_period_end
            prepaid = await repo.invoice_for_period(tx, sub.id, KIND_RENEWAL, sub.current_period_end)
            if prepaid is not None and prepaid.status == INVOICE_PAID:
                effective = prepaid.period_end
            await self.drop_pending_upgrade(tx, sub, actor=actor, reason=f"replaced by a downgrade to {new.code}")
            changed = await repo.transition(
                tx, sub.id, expected=[sub.status], to=None, actor=actor,
                reason=f"downgrade to {new.code} at {_local(effective)}",
                event_type=ev.SUBSCRIPTION_DOWNGRADE_SCHEDULED, action="subscription.downgrade",
                changes=dict(pending_change="downgrade", pending_plan_id=new.id, pending_change_at=effective, pending_invoice_id=None),
                guard=[SubscriptionRow.updated_at == sub.updated_at],
                event_extra={"effective_at": _iso(effective)},
            )  # fmt: skip
            if changed is None:
                raise Conflict(f"subscription {sub.id} changed meanwhile; try again")
            reissue += await self.reprice_renewal(tx, changed, actor=actor)
        for invoice_id in reissue:
            await self.issue_payment(invoice_id, actor=actor)
        return await self.get(sub.id)

    async def withdraw_change(self, user_id: str, actor: Actor) -> SubscriptionView:
        """Withdraw the pending upgrade or downgrade."""
        reissue: list[str] = []
        async with self.storage.transaction() as tx:
            sub = await self._live(tx, user_id)
            if sub.pending_change is None:
                raise InvalidTransition(f"subscription {sub.id} has no pending change")
            if sub.pending_change == "upgrade":
                await self.drop_pending_upgrade(tx, sub, actor=actor, reason="upgrade withdrawn")
                event = ev.SUBSCRIPTION_UPGRADE_WITHDRAWN
            else:
                assert sub.current_period_end is not None
                prepaid = await repo.invoice_for_period(tx, sub.id, KIND_RENEWAL, sub.current_period_end)
                if prepaid is not None and prepaid.status == INVOICE_PAID and prepaid.plan_id == sub.pending_plan_id:
                    raise Conflict(
                        f"the next period is already paid on plan {await repo.plan_code(tx, prepaid.plan_id)!r}: "
                        "the downgrade can no longer be withdrawn"
                    )
                event = ev.SUBSCRIPTION_DOWNGRADE_WITHDRAWN
            changed = await repo.transition(
                tx, sub.id, expected=[sub.status], to=None, actor=actor, reason=f"{sub.pending_change} withdrawn",
                event_type=event, action=f"subscription.{sub.pending_change}_withdraw", changes=dict(NO_PENDING),
                guard=[SubscriptionRow.updated_at == sub.updated_at],
            )  # fmt: skip
            if changed is None:
                raise Conflict(f"subscription {sub.id} changed meanwhile; try again")
            reissue += await self.reprice_renewal(tx, changed, actor=actor)
        for invoice_id in reissue:
            await self.issue_payment(invoice_id, actor=actor)
        return await self.get(sub.id)

    # --- cancel, resume ---------------------------------------------------------------------------

    async def cancel(
        self, user_id: str, actor: Actor, at_period_end: bool = True, reason: str | None = None
    ) -> SubscriptionView:
        """Cancel at the end of the paid period (default; ``resume`` undoes it until then) or now.

        INCOMPLETE and PAST_DUE subscriptions have no paid period left to run out: they end now."""
        why = _reason(reason, "cancelled by request")
        async with self.storage.transaction() as tx:
            sub = await self._live(tx, user_id)
            guard = [SubscriptionRow.updated_at == sub.updated_at]
            scheduled = at_period_end and sub.status in (S.ACTIVE, S.TRIALING)
            if scheduled:
                if sub.cancel_at_period_end:
                    return await self._view(tx, sub)
                assert sub.current_period_end is not None
                effective = sub.current_period_end
                nxt = await repo.invoice_for_period(tx, sub.id, KIND_RENEWAL, sub.current_period_end)
                if nxt is not None:
                    nxt = await repo.lock_invoice(tx, nxt.id)
                    paid = nxt.payment_id is not None and (await payment_repo.get(tx, nxt.payment_id)).status is PaymentStatus.PAID
                    if nxt.status == INVOICE_PAID or (nxt.status == INVOICE_OPEN and paid):
                        # the next period is paid (perhaps not yet settled): it runs out first
                        effective = nxt.period_end
                    elif nxt.status == INVOICE_OPEN:
                        await self.void_invoice(tx, nxt.id, actor=actor, reason="cancelled at period end")
                await self.drop_pending_upgrade(tx, sub, actor=actor, reason="replaced by a cancellation")
                changed = await repo.transition(
                    tx, sub.id, expected=[sub.status], to=None, actor=actor, reason=why,
                    event_type=ev.SUBSCRIPTION_CANCEL_SCHEDULED, action="subscription.cancel_scheduled",
                    changes=dict(cancel_at_period_end=True, cancel_reason=why, **NO_PENDING), guard=guard,
                    event_extra={"effective_at": _iso(effective)},
                )  # fmt: skip
            else:
                for item in (await repo.open_invoices_of(tx, [sub.id], lock=True)).get(sub.id, []):
                    await self.void_invoice(tx, item.invoice.id, actor=actor, reason="subscription cancelled")
                changed = await repo.transition(
                    tx, sub.id, expected=[sub.status], to=S.CANCELLED, actor=actor, reason=why,
                    event_type=ev.SUBSCRIPTION_CANCELLED, action="subscription.cancel",
                    changes=dict(cancelled_at=tx.now, cancel_reason=why, cancel_at_period_end=False, **NO_PENDING),
                    guard=guard,
                )  # fmt: skip
            if changed is None:
                raise Conflict(f"subscription {sub.id} changed meanwhile; try again")
            return await self._view(tx, changed)

    async def resume(self, user_id: str, actor: Actor) -> SubscriptionView:
        """Undo a cancellation at period end (before the period ends). The renewal invoice it
        voided is reopened with a fresh KHQR."""
        reissue: list[str] = []
        async with self.storage.transaction() as tx:
            sub = await self._live(tx, user_id)
            if not sub.cancel_at_period_end:
                raise InvalidTransition(f"subscription {sub.id} is not cancelling: there is nothing to resume")
            changed = await repo.transition(
                tx, sub.id, expected=[sub.status], to=None, actor=actor, reason="resumed",
                event_type=ev.SUBSCRIPTION_RESUMED, action="subscription.resume",
                changes=dict(cancel_at_period_end=False, cancel_reason=None),
                guard=[SubscriptionRow.updated_at == sub.updated_at],
            )  # fmt: skip
            if changed is None:
                raise Conflict(f"subscription {sub.id} changed meanwhile; try again")
            assert changed.current_period_end is not None
            voided = await repo.invoice_for_period(tx, sub.id, KIND_RENEWAL, changed.current_period_end)
            if voided is not None and voided.status == INVOICE_VOID:
                await repo.set_invoice_status(tx, voided.id, expected=INVOICE_VOID, to=INVOICE_OPEN)
                await journal.audit(
                    tx, actor, "subscription.invoice_reopened", "subscription", sub.id, after=repo.invoice_event_data(voided)
                )
                reissue += await self.reprice_renewal(tx, changed, actor=actor)
                reissue.append(voided.id)
        for invoice_id in dict.fromkeys(reissue):
            await self.issue_payment(invoice_id, actor=actor)
        return await self.get(sub.id)

    # --- KHQR payments of invoices ----------------------------------------------------------------

    def payment_timeout_minutes(self, inv: SubscriptionInvoice, sub: Subscription, now: datetime) -> int:
        """How long an invoice's KHQR stays valid: at most ``payment_timeout_minutes``, and never
        past the deadline of what it pays for (first-payment window, grace end, period end)."""
        cap = min(self._s.payment_timeout_minutes, MAX_TIMEOUT_MINUTES)
        if inv.kind == KIND_INITIAL:
            # the first KHQR lasts the whole first-payment window
            return _minutes_until(now, sub.incomplete_until, MAX_TIMEOUT_MINUTES)
        if inv.kind == KIND_UPGRADE:
            return _minutes_until(now, inv.period_end, cap)
        if sub.status is S.PAST_DUE:
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
            attached = await self.attach_payment(
                tx, inv.id, payment, previous=inv.payment_id, actor=actor, event_type=event_type, event_extra=event_extra
            )
            if attached is None:
                return None
            return attached

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
                deep_link=self._s.deep_links,
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

    # --- billing transitions (run by the renewer) -------------------------------------------------

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
                await self.cancel_payment(tx, paid.invoice.payment_id, actor=actor, reason="an earlier KHQR of this invoice was paid")
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
        for invoice_id in reissue:
            await self.issue_payment(invoice_id, actor=actor)
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
        prepaid = await repo.invoice_for_period(tx, sub.id, KIND_RENEWAL, changed.current_period_end)
        if prepaid is not None and prepaid.status == INVOICE_PAID and prepaid.plan_id == sub.plan_id:
            # the next period was paid (at the old price) while the upgrade waited: it runs on the
            # new plan all the same; the renewal after it is billed at the new price
            await repo.update_invoice(tx, prepaid.id, plan_id=new.id)
            return []
        return await self.reprice_renewal(tx, changed, actor=actor)

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
            await self.drop_pending_upgrade(tx, sub, actor=actor, reason="upgrade unpaid at period end")
            changes.update(NO_PENDING)
            extra.append((ev.SUBSCRIPTION_UPGRADE_WITHDRAWN, {"lapsed": "unpaid at period end"}))
        event = ev.SUBSCRIPTION_ACTIVATED if sub.status is S.TRIALING else ev.SUBSCRIPTION_RENEWED
        return await repo.transition(
            tx, sub.id, expected=[sub.status], to=S.ACTIVE, actor=actor, reason=reason,
            event_type=event, action="subscription.renew", changes=changes,
            guard=[SubscriptionRow.current_period_end == inv.period_start],
            event_extra={"invoice": repo.invoice_event_data(inv, payment)}, extra_events=extra,
        )  # fmt: skip

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
                await self.void_invoice(tx, item.invoice.id, actor=actor, reason="subscription cancelled at period end")
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
        grace_until = sub.current_period_end + timedelta(days=self._s.grace_days)
        payment, new = await self.live_payment(inv, replace(sub, status=S.PAST_DUE, grace_until=grace_until), actor=actor)
        if payment.status is PaymentStatus.PAID:
            return False  # paid: the renewer settles it and starts the period on its next pass
        changed: Subscription | None = None
        async with self.storage.transaction() as tx:
            locked = await repo.lock_invoice(tx, inv.id)
            if locked.status != INVOICE_OPEN or locked.payment_id != inv.payment_id:
                # paid, voided or given another KHQR meanwhile: decide again on the next pass
                if new and locked.payment_id != payment.id:  # (a twin renewer recorded this very KHQR)
                    await self.cancel_payment(tx, payment.id, actor=actor, reason="superseded before it was shown")
                return False
            extra: list[tuple[str, dict[str, Any]]] = []
            changes: dict[str, Any] = dict(grace_until=grace_until, last_reminder_at=tx.now)
            if await self.drop_pending_upgrade(tx, sub, actor=actor, reason="upgrade unpaid at period end"):
                changes.update(NO_PENDING)
                extra.append((ev.SUBSCRIPTION_UPGRADE_WITHDRAWN, {"lapsed": "unpaid at period end"}))
            changed = await repo.transition(
                tx, sub.id, expected=[S.ACTIVE, S.TRIALING], to=S.PAST_DUE, actor=actor,
                reason="renewal unpaid at period end", event_type=ev.SUBSCRIPTION_PAST_DUE, action="subscription.past_due",
                changes=changes, guard=[SubscriptionRow.current_period_end == sub.current_period_end],
                event_extra={"invoice": repo.invoice_event_data(inv, payment)}, extra_events=extra,
            )  # fmt: skip
            if changed is not None and new:
                await self.attach_payment(tx, inv.id, payment, previous=inv.payment_id, actor=actor, quiet=True, sub=changed)
        if changed is None and new:
            async with self.storage.transaction() as tx:
                await self.attach_payment(tx, inv.id, payment, previous=inv.payment_id, actor=actor, quiet=True)
        return changed is not None

    async def remind(self, sub: Subscription, inv: SubscriptionInvoice, *, actor: Actor) -> bool:
        """A reminder during grace, with a KHQR that can still be paid (a fresh one if needed)."""
        payment, new = await self.live_payment(inv, sub, actor=actor)
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
                await self.attach_payment(tx, inv.id, payment, previous=inv.payment_id, actor=actor, quiet=True, sub=changed)
        if changed is None and new:
            async with self.storage.transaction() as tx:
                await self.attach_payment(tx, inv.id, payment, previous=inv.payment_id, actor=actor, quiet=True)
        return changed is not None

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
                await self.void_invoice(tx, item.invoice.id, actor=actor, reason=reason)
            changed = await repo.transition(
                tx, sub.id, expected=[sub.status], to=S.EXPIRED, actor=actor, reason=reason,
                event_type=ev.SUBSCRIPTION_EXPIRED, action="subscription.expire", changes=dict(NO_PENDING),
            )  # fmt: skip
            return changed is not None


NO_PENDING: dict[str, Any] = dict(pending_change=None, pending_plan_id=None, pending_change_at=None, pending_invoice_id=None)


def _live(payment: Payment, inv: SubscriptionInvoice, now: datetime) -> bool:
    """A KHQR the customer can still pay for this invoice."""
    return payment.status is PaymentStatus.PENDING and payment.amount_minor == inv.amount_minor and payment.expires_at > now


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def _local(dt: datetime) -> str:
    return dt.astimezone(PHNOM_PENH).strftime("%Y-%m-%d %H:%M")
