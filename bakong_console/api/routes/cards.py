"""``/api/payments/{id}/qr.svg`` and ``qr.png``: a payment's KHQR card (``engine.services.cards``).

A card never changes for a payment (its KHQR and expiry are fixed), so answers carry a strong
ETag (the SHA-256 of the bytes), ``Cache-Control: private, max-age=86400`` (the key-holder's cache
may keep it; a shared cache may not, the request being authenticated) and a matching
``If-None-Match`` answers 304 without a body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from bakong_console.api.problems import rate_headers
from bakong_console.api.routes.payments import PaymentId, PaymentsReader
from bakong_console.api.routing import ApiRoute
from bakong_console.api.security import keyed_problems
from engine.services.cards import render_payment_card

__all__ = ["router"]

router = APIRouter(prefix="/api/payments", tags=["payments"], route_class=ApiRoute)

CACHE_CONTROL = "private, max-age=86400"

Size = Annotated[int | None, Query(ge=1, le=4000, description="Width in pixels (PNG: default 600; SVG: the width it asks for, else its container's).")]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=2000, description="An ETag from an earlier answer: 304 when unchanged.")]


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` (a list, or ``*``) with our strong ETag."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


async def _card(request: Request, payment_id: str, fmt: str, size: int | None, if_none_match: str | None) -> Response:
    payment = await request.app.state.api.engine.payments.get(payment_id)
    card = await render_payment_card(payment, fmt, size=size)
    headers = {"ETag": card.etag, "Cache-Control": CACHE_CONTROL, "Vary": "X-API-Key, Authorization", **rate_headers(request)}
    if _matches(if_none_match, card.etag):
        return Response(status_code=304, headers=headers)
    headers["Content-Disposition"] = f'inline; filename="{payment.id}.{fmt}"'
    return Response(card.data, media_type=card.media_type, headers=headers)


_CARD_RESPONSES = {
    304: {"description": "Not modified: `If-None-Match` holds the card's ETag."},
    **keyed_problems(404, 422),
}


@router.get(
    "/{payment_id}/qr.svg",
    summary="The payment's KHQR card as SVG",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "The card (ETag, cacheable)."}, **_CARD_RESPONSES},
)
async def card_svg(request: Request, payment_id: PaymentId, principal: PaymentsReader, size: Size = None, if_none_match: IfNoneMatch = None) -> Response:
    """The NBC card layout: KHQR header, merchant, amount, the code, expiry. Fonts are the viewer's."""
    return await _card(request, payment_id, "svg", size, if_none_match)


@router.get(
    "/{payment_id}/qr.png",
    summary="The payment's KHQR card as PNG",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The card (ETag, cacheable)."}, **_CARD_RESPONSES},
)
async def card_png(request: Request, payment_id: PaymentId, principal: PaymentsReader, size: Size = None, if_none_match: IfNoneMatch = None) -> Response:
    """The NBC card layout, drawn by the engine (each QR module a whole number of pixels)."""
    return await _card(request, payment_id, "png", size, if_none_match)
