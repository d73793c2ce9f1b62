"""The hosted checkout page at ``/pay/{token}`` and what its script talks to.

- ``GET /pay/{token}``: the page (card, amount, merchant, countdown, bank-app button on phones,
  "I have paid", "Cancel payment"), rendered in the payer's language, in its current state.
- ``GET /pay/{token}/events``: server-sent events, one ``state`` event now and one whenever the
  payment changes (fed by the engine's event bus, which tails the events table, so a change
  made by another process arrives too); ends once the payment has ended.
- ``GET /pay/{token}/state``: the same state as JSON, for the script's polling fallback when
  event streams are blocked.
- ``POST /pay/{token}/paid``: "I have paid" (JSON for the script, a redirect back otherwise;
  429 within ``web.paid_check_interval_seconds`` of the last one for this payment).
- ``POST /pay/{token}/cancel``: cancels a PENDING payment and sends the payer to cancel_url.

Everything a token reaches is its own payment's state as the payer sees it (``PayerState``):
never an id, MD5, account, hash or anything of another payment. Errors are plain pages
(``web.app.error_page``): 404 unknown token, 410 ended, 409 cannot cancel, 429 wait.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bakong_console.web.app import WebContext, _pay_root
from bakong_console.web.security import content_security_policy
from bakong_console.web.streams import PING_SECONDS, next_change
from engine.errors import CheckoutEnded, NotFound
from engine.khqr import decode
from engine.records import Event
from engine.services.cards import render_payment_card
from engine.services.checkout import CheckoutView, PayerState, url_origin

__all__ = ["checkout_routes", "state_of"]

PAGE_ACTOR = "checkout page"


def state_of(view: CheckoutView, redirect_seconds: float) -> dict[str, Any]:
    """What the page's script is told: the payer's state, the countdown, where to go next."""
    return {
        "state": view.state,
        "seconds_left": view.seconds_left,
        "redirect_url": view.redirect_url,
        "redirect_seconds": redirect_seconds,
    }


def _clock_text(seconds: int) -> str:
    minutes, secs = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _context(request: Request) -> WebContext:
    return request.app.state.web  # type: ignore[no-any-return]


def _token(request: Request) -> str:
    return str(request.path_params["token"])


def _form_origins(view: CheckoutView) -> list[str]:
    return [url_origin(url) for url in (view.checkout.success_url, view.checkout.cancel_url) if url]


async def checkout_page(request: Request) -> Response:
    ctx = _context(request)
    token = _token(request)
    view = await ctx.engine.checkout.view(token)
    payment = view.payment
    fields = decode(payment.khqr)
    lang, _ = ctx.language(request)
    latin = (fields.get("merchant_name") or "").strip()
    alternate = (fields.get("merchant_name_alternate_language") or "").strip() or None
    # In Khmer the Khmer name leads (when the KHQR has one); in English the Latin one.
    primary, secondary = (alternate, latin) if lang == "km" and alternate else (latin, alternate)
    svg = (await render_payment_card(payment, "svg")).data.decode("utf-8")
    svg = svg.split("?>", 1)[1].strip() if svg.startswith("<?xml") else svg
    root = f"{_pay_root(request)}/{token}"
    redirect_seconds = ctx.settings.web.redirect_seconds
    state = state_of(view, redirect_seconds)
    headers = {"Content-Security-Policy": content_security_policy(_form_origins(view))}
    return ctx.render(
        request,
        "checkout.html",
        headers=headers,
        view=view,
        state=state,
        state_json=json.dumps(state, separators=(",", ":")),
        card_svg=svg,
        merchant=primary,
        merchant_other=secondary,
        amount=payment.display_amount,
        countdown=_clock_text(view.seconds_left),
        deep_link=payment.deep_link if view.state == PayerState.PENDING else None,
        root=root,
        PayerState=PayerState,
    )


async def checkout_state(request: Request) -> Response:
    ctx = _context(request)
    view = await ctx.engine.checkout.view(_token(request))
    return JSONResponse(state_of(view, ctx.settings.web.redirect_seconds))


async def checkout_events(request: Request) -> Response:
    ctx = _context(request)
    token = _token(request)
    view = await ctx.engine.checkout.view(token)  # 404 / 410 before the stream starts
    payment_id = view.payment.id
    redirect_seconds = ctx.settings.web.redirect_seconds

    async def stream() -> AsyncIterator[dict[str, str]]:
        def concerns(event: Event) -> bool:
            return event.subject_id == payment_id

        async with ctx.engine.bus.subscription(concerns) as changes:
            current = view
            while True:
                # Read after subscribing: a change committed meanwhile is in the queue, not lost.
                try:
                    current = await ctx.engine.checkout.view(token)
                except (CheckoutEnded, NotFound):
                    yield {"event": "ended", "data": "{}"}
                    return
                yield {"event": "state", "data": json.dumps(state_of(current, redirect_seconds), separators=(",", ":"))}
                if current.state != PayerState.PENDING:
                    return
                if not await next_change(changes, ctx.closing):
                    return

    return EventSourceResponse(stream(), ping=PING_SECONDS, headers={"X-Accel-Buffering": "no"})


async def claim_paid(request: Request) -> Response:
    ctx = _context(request)
    token = _token(request)
    view = await ctx.engine.checkout.claim_paid(token, actor=ctx.actor(request, PAGE_ACTOR))
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({**state_of(view, ctx.settings.web.redirect_seconds), "checking": view.state == PayerState.PENDING})
    return RedirectResponse(f"{_pay_root(request)}/{token}", status_code=303)


async def cancel(request: Request) -> Response:
    ctx = _context(request)
    token = _token(request)
    view = await ctx.engine.checkout.cancel(token, actor=ctx.actor(request, PAGE_ACTOR))
    target = view.checkout.cancel_url or f"{_pay_root(request)}/{token}"
    return RedirectResponse(target, status_code=303)


def checkout_routes() -> list[BaseRoute]:
    return [
        Route("/{token}", checkout_page, methods=["GET"], name="checkout"),
        Route("/{token}/state", checkout_state, methods=["GET"]),
        Route("/{token}/events", checkout_events, methods=["GET"]),
        Route("/{token}/paid", claim_paid, methods=["POST"]),
        Route("/{token}/cancel", cancel, methods=["POST"]),
    ]
