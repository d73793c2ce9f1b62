"""``/api/subscriptions``: status, create, upgrade (with a preview), downgrade, cancel.

Thin over ``engine.subscriptions`` (SubscriptionService), which holds the billing rules: every
charge is an invoice paid by scanning its KHQR (the `payment.khqr` of an open invoice); upgrades
are prorated and apply once paid; downgrades and cancellations take effect at period end.
Every change is audited with the calling key and its IP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.encoders import jsonable_encoder

from bakong_console.api.responses import iso, ok, payment_data
from bakong_console.api.schemas import (
    TEXT_PATTERN,
    Envelope,
    SubscriptionCancel,
    SubscriptionCreate,
    SubscriptionDowngrade,
    SubscriptionOut,
    SubscriptionUpgrade,
    UpgradeOut,
)
from bakong_console.api.routing import ApiRoute
from bakong_console.api.security import Principal, keyed_problems, require
from engine.money import to_major
from engine.records import Payment, Plan, ProrationQuote, SubscriptionInvoice, SubscriptionView

__all__ = ["router"]

router = APIRouter(prefix="/api/subscriptions", tags=["subscriptions"], route_class=ApiRoute)

# The caller, admitted with the scope a route needs (and documented with ``keyed_problems``).
SubscriptionsReader = Annotated[Principal, Depends(require("subscriptions:read"))]
SubscriptionsWriter = Annotated[Principal, Depends(require("subscriptions:write"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description="Retry-safe change (visible ASCII, e.g. a UUID): the same key with the same body returns the first answer and changes nothing more; with a different body, 409.",
    ),
]


def _plan(p: Plan) -> dict[str, Any]:
    return {
        "code": p.code,
        "name": p.name,
        "price": str(to_major(p.price_minor, p.currency)),
        "price_minor": p.price_minor,
        "currency": p.currency,
        "cycle_days": p.cycle_days,
        "trial_days": p.trial_days,
    }


def _invoice(inv: SubscriptionInvoice, payment: Payment | None, codes: dict[str, str]) -> dict[str, Any]:
    return {
        "id": inv.id,
        "kind": inv.kind,
        "status": inv.status,
        "amount": str(to_major(inv.amount_minor, inv.currency)),
        "amount_minor": inv.amount_minor,
        "currency": inv.currency,
        "period_start": iso(inv.period_start),
        "period_end": iso(inv.period_end),
        "plan": codes.get(inv.plan_id, inv.plan_id),
        "payment": payment_data(payment) if payment else None,
    }


async def _plan_codes(request: Request, view: SubscriptionView, invoices: list[SubscriptionInvoice]) -> dict[str, str]:
    codes = {view.plan.id: view.plan.code}
    if view.pending_plan is not None:
        codes[view.pending_plan.id] = view.pending_plan.code
    if any(inv.plan_id not in codes for inv in invoices):
        plans = await request.app.state.api.engine.subscriptions.list_plans(include_archived=True)
        codes.update({p.id: p.code for p in plans})
    return codes


async def _subscription(request: Request, view: SubscriptionView) -> dict[str, Any]:
    s = view.subscription
    codes = await _plan_codes(request, view, [item.invoice for item in view.open_invoices])
    return {
        "id": s.id,
        "user_id": s.user_id,
        "status": s.status.value,
        "has_access": view.has_access,
        "plan": _plan(view.plan),
        "price": str(to_major(s.price_minor, s.currency)),
        "price_minor": s.price_minor,
        "currency": s.currency,
        "cycle_days": s.cycle_days,
        "current_period_start": iso(s.current_period_start),
        "current_period_end": iso(s.current_period_end),
        "trial_end": iso(s.trial_end),
        "pending_change": s.pending_change,
        "pending_plan": _plan(view.pending_plan) if view.pending_plan else None,
        "pending_change_at": iso(s.pending_change_at),
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancelled_at": iso(s.cancelled_at),
        "cancel_reason": s.cancel_reason,
        "grace_until": iso(s.grace_until),
        "incomplete_until": iso(s.incomplete_until),
        "created_at": iso(s.created_at),
        "open_invoices": [_invoice(item.invoice, item.payment, codes) for item in view.open_invoices],
    }


def _quote(q: ProrationQuote) -> dict[str, Any]:
    return {
        "from_plan": q.from_plan,
        "to_plan": q.to_plan,
        "currency": q.currency,
        "old_price": str(to_major(q.old_price_minor, q.currency)),
        "new_price": str(to_major(q.new_price_minor, q.currency)),
        "amount": str(to_major(q.amount_minor, q.currency)),
        "amount_minor": q.amount_minor,
        "remaining_seconds": q.remaining_seconds,
        "cycle_seconds": q.cycle_seconds,
        "period_end": iso(q.period_end),
        "immediate": q.immediate,
    }


@router.get(
    "/status/{user_id}",
    response_model=Envelope[SubscriptionOut],
    summary="A user's subscription: the live one, else the most recent",
    responses=keyed_problems(404, 422),
)
async def subscription_status(
    request: Request,
    user_id: Annotated[str, Path(min_length=1, max_length=100, pattern=TEXT_PATTERN)],
    principal: SubscriptionsReader,
) -> Response:
    """`has_access` says whether the user may use what the plan sells; `open_invoices` lists
    what is owed now, each with the KHQR to show."""
    view = await request.app.state.api.engine.subscriptions.status(user_id)
    return ok(request, await _subscription(request, view))


@router.post(
    "",
    status_code=201,
    response_model=Envelope[SubscriptionOut],
    summary="Subscribe a user to a plan",
    responses=keyed_problems(404, 409, 413, 422),
)
async def create_subscription(
    request: Request,
    body: SubscriptionCreate,
    principal: SubscriptionsWriter,
) -> Response:
    """TRIALING on a plan with trial days; otherwise INCOMPLETE with its first invoice, whose
    `payment.khqr` the customer pays (ACTIVE once paid). A user has at most one live
    subscription: a second is a 409."""
    view = await request.app.state.api.engine.subscriptions.create(body.user_id, body.plan, principal.actor)
    return ok(request, await _subscription(request, view), status=201)


@router.post(
    "/upgrade",
    response_model=Envelope[UpgradeOut],
    summary="Upgrade now, prorated (or preview the amount)",
    responses=keyed_problems(404, 409, 413, 422),
)
async def upgrade_subscription(
    request: Request,
    body: SubscriptionUpgrade,
    principal: SubscriptionsWriter,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The prorated amount is `(new - old) x remaining / cycle`, exact, rounded half up. With
    `preview: true` only the quote is returned. Otherwise an invoice with its KHQR is issued and
    the plan changes when it is PAID (at once when the amount is 0)."""
    service = request.app.state.api.engine.subscriptions
    if body.preview:
        quote = await service.preview_upgrade(body.user_id, body.plan)
        data = {"preview": True, "quote": _quote(quote), "applied": False, "subscription": None, "invoice": None}
        return ok(request, data)

    async def upgrade() -> dict[str, Any]:
        change = await service.upgrade(body.user_id, body.plan, principal.actor)
        invoice = None
        if change.invoice is not None:
            codes = await _plan_codes(request, change.view, [change.invoice])
            invoice = _invoice(change.invoice, change.payment, codes)
        return {
            "preview": False,
            "quote": _quote(change.quote),
            "applied": change.applied,
            "subscription": await _subscription(request, change.view),
            "invoice": invoice,
        }

    return await _once(request, principal, "subscriptions.upgrade", idempotency_key, body, upgrade)


@router.post(
    "/downgrade",
    response_model=Envelope[SubscriptionOut],
    summary="Move to a cheaper plan at period end",
    responses=keyed_problems(404, 409, 413, 422),
)
async def downgrade_subscription(
    request: Request,
    body: SubscriptionDowngrade,
    principal: SubscriptionsWriter,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Scheduled for the next period start (`pending_change_at`); replaces any pending change."""

    async def downgrade() -> dict[str, Any]:
        view = await request.app.state.api.engine.subscriptions.downgrade(body.user_id, body.plan, principal.actor)
        return await _subscription(request, view)

    return await _once(request, principal, "subscriptions.downgrade", idempotency_key, body, downgrade)


@router.post(
    "/cancel",
    response_model=Envelope[SubscriptionOut],
    summary="Cancel at period end (default) or now",
    responses=keyed_problems(404, 409, 413, 422),
)
async def cancel_subscription(
    request: Request,
    body: SubscriptionCancel,
    principal: SubscriptionsWriter,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """At period end the user keeps access until `current_period_end`; INCOMPLETE and PAST_DUE
    subscriptions end now either way."""

    async def cancel() -> dict[str, Any]:
        view = await request.app.state.api.engine.subscriptions.cancel(
            body.user_id, principal.actor, at_period_end=body.at_period_end, reason=body.reason
        )
        return await _subscription(request, view)

    return await _once(request, principal, "subscriptions.cancel", idempotency_key, body, cancel)


async def _once(
    request: Request,
    principal: Principal,
    operation: str,
    key: str | None,
    body: Any,
    change: Callable[[], Awaitable[dict[str, Any]]],
) -> Response:
    """Make the change, once per ``Idempotency-Key`` of this API key: a retry with the same key and
    body gets the first answer (with ``Idempotent-Replayed: true``), another body a 409."""
    if key is None:
        return ok(request, await change())

    async def answer() -> dict[str, Any]:
        return jsonable_encoder(await change())

    data, replayed = await request.app.state.api.engine.idempotency.run(
        principal.key.id, operation, key, body.model_dump(mode="json"), answer
    )
    return ok(request, data, headers={"Idempotent-Replayed": "true"} if replayed else None)
