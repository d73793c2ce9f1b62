"""How the subscriptions tables read as records, and as the data of audit rows and events.

Rows become the frozen records of ``engine.records`` here (nothing above ``engine.db`` sees a
row); plans, subscriptions and invoices become the JSON the main backend reads in webhooks and
the events feed, times in ISO 8601 UTC with a ``Z``. Plan ids map to codes through one
process-wide cache, filled whenever a plan row is read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine.db.models import PlanRow
from engine.db.storage import Tx
from engine.errors import NotFound
from engine.money import to_major
from engine.records import Payment, Plan, Subscription, SubscriptionInvoice, SubscriptionStatus

#: What the package exports; the ``to_*`` conversions are for its own modules.
__all__ = ["invoice_event_data", "iso", "plan_code", "plan_event_data", "subscription_event_data"]

#: Plan ids to codes. Codes never change and ids are random, so one process-wide map is safe.
_PLAN_CODES: dict[str, str] = {}


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


# --- rows into records ------------------------------------------------------------------------------


def to_plan(row: Any) -> Plan:
    _PLAN_CODES[row.id] = row.code
    return Plan(
        id=row.id,
        code=row.code,
        name=row.name,
        price_minor=row.price_minor,
        currency=row.currency,
        cycle_days=row.cycle_days,
        trial_days=row.trial_days,
        created_at=row.created_at,
        archived_at=row.archived_at,
    )


def to_subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        user_id=row.user_id,
        plan_id=row.plan_id,
        status=SubscriptionStatus(row.status),
        price_minor=row.price_minor,
        currency=row.currency,
        cycle_days=row.cycle_days,
        created_at=row.created_at,
        current_period_start=row.current_period_start,
        current_period_end=row.current_period_end,
        trial_end=row.trial_end,
        pending_plan_id=row.pending_plan_id,
        pending_change=row.pending_change,
        pending_change_at=row.pending_change_at,
        pending_invoice_id=row.pending_invoice_id,
        cancel_at_period_end=bool(row.cancel_at_period_end),
        cancelled_at=row.cancelled_at,
        cancel_reason=row.cancel_reason,
        grace_until=row.grace_until,
        last_reminder_at=row.last_reminder_at,
        incomplete_until=row.incomplete_until,
        updated_at=row.updated_at,
    )


def to_invoice(row: Any) -> SubscriptionInvoice:
    return SubscriptionInvoice(
        id=row.id,
        subscription_id=row.subscription_id,
        kind=row.kind,
        period_start=row.period_start,
        period_end=row.period_end,
        plan_id=row.plan_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        status=row.status,
        payment_id=row.payment_id,
        created_at=row.created_at,
        paid_at=row.paid_at,
    )


async def plan_code(tx: Tx, plan_id: str | None) -> str | None:
    if plan_id is None:
        return None
    code = _PLAN_CODES.get(plan_id)
    if code is None:
        code = await tx.session.scalar(select(PlanRow.code).where(PlanRow.id == plan_id))
        if code is None:
            raise NotFound(f"no plan {plan_id}")
        _PLAN_CODES[plan_id] = code
    return code


# --- records into event data ------------------------------------------------------------------------


def plan_event_data(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "code": plan.code,
        "name": plan.name,
        "price": str(to_major(plan.price_minor, plan.currency)),
        "price_minor": plan.price_minor,
        "currency": plan.currency,
        "cycle_days": plan.cycle_days,
        "trial_days": plan.trial_days,
        "archived_at": iso(plan.archived_at),
    }


async def subscription_event_data(tx: Tx, s: Subscription) -> dict[str, Any]:
    """The subscription as the main backend sees it in webhooks and the events feed."""
    return {
        "id": s.id,
        "user_id": s.user_id,
        "status": s.status.value,
        "plan": await plan_code(tx, s.plan_id),
        "plan_id": s.plan_id,
        "price": str(to_major(s.price_minor, s.currency)),
        "price_minor": s.price_minor,
        "currency": s.currency,
        "cycle_days": s.cycle_days,
        "current_period_start": iso(s.current_period_start),
        "current_period_end": iso(s.current_period_end),
        "trial_end": iso(s.trial_end),
        "pending_change": s.pending_change,
        "pending_plan": await plan_code(tx, s.pending_plan_id),
        "pending_change_at": iso(s.pending_change_at),
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancelled_at": iso(s.cancelled_at),
        "cancel_reason": s.cancel_reason,
        "grace_until": iso(s.grace_until),
        "created_at": iso(s.created_at),
    }


def invoice_event_data(inv: SubscriptionInvoice, payment: Payment | None = None) -> dict[str, Any]:
    """An invoice and (when issued) the KHQR that pays it: what the backend shows the customer."""
    data: dict[str, Any] = {
        "id": inv.id,
        "kind": inv.kind,
        "status": inv.status,
        "amount": str(to_major(inv.amount_minor, inv.currency)),
        "amount_minor": inv.amount_minor,
        "currency": inv.currency,
        "plan_id": inv.plan_id,
        "period_start": iso(inv.period_start),
        "period_end": iso(inv.period_end),
        "paid_at": iso(inv.paid_at),
        "payment_id": inv.payment_id,
        "payment": None,
    }
    if payment is not None:
        data["payment"] = {
            "id": payment.id,
            "status": payment.status.value,
            "khqr": payment.khqr,
            "md5": payment.md5,
            "deep_link": payment.deep_link,
            "expires_at": iso(payment.expires_at),
        }
    return data
