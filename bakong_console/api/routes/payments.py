"""``/api/payments``: create (idempotent), status by MD5, long-poll monitor, bulk check, history
with cursor pagination, cancel. Every change is audited with the calling key and its IP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response

from bakong_console.api.responses import ok, payment_data
from bakong_console.api.schemas import (
    MD5,
    TEXT_PATTERN,
    AmountQuery,
    BulkCheckRequest,
    BulkCheckResult,
    CancelPaymentRequest,
    Envelope,
    MonitorOut,
    MonitorRequest,
    Page,
    PaymentCreate,
    PaymentOut,
)
from bakong_console.api.routing import ApiRoute
from bakong_console.api.security import Principal, keyed_problems, require
from engine.clock import utc
from engine.services.payments import PaymentFilter
from engine.errors import IdempotencyConflict, InvalidInput, InvalidTransition
from engine.money import to_minor
from engine.records import PaymentStatus
from engine.services.checkout import check_redirect_url

__all__ = ["router"]

router = APIRouter(prefix="/api/payments", tags=["payments"], route_class=ApiRoute)

# The caller, admitted with the scope a route needs (and documented with ``keyed_problems``).
PaymentsReader = Annotated[Principal, Depends(require("payments:read"))]
PaymentsWriter = Annotated[Principal, Depends(require("payments:write"))]

PaymentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The payment id (pay_...).")]


@router.post(
    "/create",
    status_code=201,
    response_model=Envelope[PaymentOut],
    summary="Create a payment and its KHQR",
    responses={
        200: {"model": Envelope[PaymentOut], "description": "The payment this idempotency key already created (a replay)."},
        201: {"description": "A new payment."},
        **keyed_problems(409, 413, 422),
    },
)
async def create_payment(
    request: Request,
    body: PaymentCreate,
    principal: PaymentsWriter,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[!-~]+$",
            description="Retry-safe creation (visible ASCII, e.g. a UUID): the same key with the same body returns the same payment; with a different body, 409. Defaults to the body's reference.",
        ),
    ] = None,
) -> Response:
    """A new PENDING payment with its dynamic KHQR. Idempotent per API key: the `Idempotency-Key`
    header (or, without it, the `reference`) names the request; repeating it returns the payment
    it created (200), and reusing it for a different request is a 409 `idempotency-conflict`.

    With `checkout` (or `success_url` / `cancel_url`) the answer carries `checkout_url`, the
    payer's page: the card to scan, the amount, a countdown and a bank-app button on phones; it
    turns PAID by itself, then sends the payer to `success_url` (expired or cancelled: to
    `cancel_url`). A URL that is not absolute http(s) is a 422 naming the field."""
    engine = request.app.state.api.engine
    key = principal.key
    checkout = body.wants_checkout
    if checkout:  # refused before anything is created
        check_redirect_url(body.success_url, "success_url")
        check_redirect_url(body.cancel_url, "cancel_url")
    created = await engine.payments.initiate(
        body.amount,
        body.currency,
        actor=principal.actor,
        reference=body.reference,
        idempotency_key=idempotency_key or body.reference,
        idempotency_scope=key.id,
        bill_number=body.bill_number,
        customer_id=body.customer_id,
        description=body.description,
        timeout_minutes=body.timeout_minutes,
        # A checkout's phone button needs the deep link: asked for once, here, and stored.
        deep_link=body.deep_link or (checkout and engine.settings.web.deep_links),
        api_key_id=key.id,
    )
    data = payment_data(created.payment)
    if checkout:
        link = await engine.checkout.open(
            created.payment.id, success_url=body.success_url, cancel_url=body.cancel_url, actor=principal.actor,
            replay=not created.created,
        )  # fmt: skip
        data["checkout_url"] = engine.checkout.checkout_url(link)
    elif not created.created and await engine.checkout.of_payment(created.payment.id) is not None:
        raise IdempotencyConflict(
            f"idempotency key {idempotency_key or body.reference!r} was already used for a payment with a checkout"
        )
    headers = None if created.created else {"Idempotent-Replayed": "true"}
    return ok(request, data, status=201 if created.created else 200, headers=headers)


@router.get(
    "/status/{md5}",
    response_model=Envelope[PaymentOut],
    summary="A payment's current state, by the MD5 of its KHQR",
    responses=keyed_problems(404, 422),
)
async def payment_status(
    request: Request,
    md5: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{32}$", description="The MD5 of the KHQR string.")],
    principal: PaymentsReader,
) -> Response:
    """As stored: the poller keeps it current. Use `monitor` to wait for a change."""
    payment = await request.app.state.api.engine.payments.get_by_md5(md5)
    return ok(request, payment_data(payment))


@router.post(
    "/monitor",
    response_model=Envelope[MonitorOut],
    summary="Wait for a payment to leave PENDING (long-poll)",
    responses=keyed_problems(404, 409, 413, 422),
)
async def monitor_payment(
    request: Request,
    body: MonitorRequest,
    principal: PaymentsReader,
) -> Response:
    """Answers as soon as the payment is final, or after `timeout_seconds` (at most
    `api.monitor_max_seconds`) with its state then and `timed_out: true`. Name the payment by
    `payment_id` or `md5`.
    `customer_says_paid` asks the poller to check it first (audited with this key)."""
    ctx = request.app.state.api
    payments = ctx.engine.payments
    if (body.payment_id is None) == (body.md5 is None):
        raise InvalidInput("name the payment by exactly one of payment_id or md5", field="payment_id")
    payment = await payments.get(body.payment_id) if body.payment_id else await payments.get_by_md5(body.md5)
    limit = ctx.settings.monitor_max_seconds
    timeout = limit if body.timeout_seconds is None else min(body.timeout_seconds, limit)
    if body.customer_says_paid and payment.status is PaymentStatus.PENDING:
        try:
            await payments.request_check(payment.id, actor=principal.actor)
        except InvalidTransition:
            pass  # no longer checked: monitor answers its state
    payment = await payments.monitor(payment.id, timeout=timeout)
    # monitor returns a PENDING payment only when its wait ran out.
    return ok(request, {**payment_data(payment), "timed_out": payment.status is PaymentStatus.PENDING})


@router.post(
    "/bulk-check",
    response_model=Envelope[list[BulkCheckResult]],
    summary="The state of up to 50 payments by MD5, checked with Bakong first",
    responses=keyed_problems(413, 422, 502),
)
async def bulk_check(
    request: Request,
    body: BulkCheckRequest,
    principal: PaymentsReader,
) -> Response:
    """Payments still being watched are checked with Bakong (one batched request); the others
    answer as stored. An MD5 no payment has answers `payment: null`."""
    results = await request.app.state.api.engine.payments.bulk_check(body.md5s, actor=principal.actor)
    data = [{"md5": md5, "payment": payment_data(p) if p else None} for md5, p in results.items()]
    return ok(request, data)


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return utc(value)
    except (OverflowError, ValueError):
        raise InvalidInput(f"{name} is out of range", field=name) from None


@router.get(
    "/history",
    response_model=Page[PaymentOut],
    summary="Search payments, newest first, with cursor pagination",
    responses=keyed_problems(422),
)
async def payment_history(
    request: Request,
    principal: PaymentsReader,
    status: Annotated[list[PaymentStatus] | None, Query(description="Repeat for several statuses.")] = None,
    created_from: Annotated[datetime | None, Query(alias="from", description="Created at or after (RFC 3339).")] = None,
    created_to: Annotated[datetime | None, Query(alias="to", description="Created before (RFC 3339).")] = None,
    reference: Annotated[str | None, Query(min_length=1, max_length=100, pattern=TEXT_PATTERN)] = None,
    md5: Annotated[MD5 | None, Query()] = None,
    bakong_hash: Annotated[str | None, Query(alias="hash", min_length=1, max_length=64, pattern=r"^[0-9A-Za-z]+$", description="The Bakong transaction hash.")] = None,
    amount: Annotated[AmountQuery | None, Query(description="Exact amount in major units; needs `currency`.")] = None,
    currency: Annotated[str | None, Query(pattern=r"^(KHR|USD)$")] = None,
    customer: Annotated[str | None, Query(min_length=1, max_length=100, pattern=TEXT_PATTERN, description="customer_id")] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_-]+$", description="`meta.next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    if amount is not None and currency is None:
        raise InvalidInput("filtering by amount needs a currency", field="currency")
    flt = PaymentFilter(
        statuses=tuple(dict.fromkeys(status or ())),
        created_from=_utc(created_from, "from"),
        created_to=_utc(created_to, "to"),
        reference=reference,
        md5=md5,
        bakong_hash=bakong_hash,
        amount_minor=to_minor(amount, currency) if amount is not None and currency else None,
        currency=currency,
        customer_id=customer,
    )
    page, next_cursor = await request.app.state.api.engine.payments.search(flt, limit=limit, cursor=cursor)
    return ok(request, [payment_data(p) for p in page], meta={"next_cursor": next_cursor})


@router.post(
    "/{payment_id}/cancel",
    response_model=Envelope[PaymentOut],
    summary="Cancel a PENDING payment",
    responses=keyed_problems(404, 409, 413, 422),
)
async def cancel_payment(
    request: Request,
    payment_id: PaymentId,
    principal: PaymentsWriter,
    body: Annotated[CancelPaymentRequest | None, Body()] = None,
) -> Response:
    """Only a PENDING payment can be cancelled (409 `invalid-transition` otherwise); the reason
    is kept in its history and the audit log."""
    reason = (body.reason if body else None) or "cancelled through the API"
    payment = await request.app.state.api.engine.payments.cancel(payment_id, actor=principal.actor, reason=reason)
    return ok(request, payment_data(payment))
