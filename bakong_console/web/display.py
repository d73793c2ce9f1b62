"""The customer display at ``/display/{terminal}``: the screen at the counter that shows the payer
what the terminal's cashier just asked for, and what its script talks to.

- ``GET /display/{terminal}``: a paired display (its device token in the ``bk_display`` cookie)
  gets the terminal's screen: idle (the shop's name), the pending payment's card, amount and
  countdown, or a large PAID with the amount; anything else gets the pairing form.
- ``POST /display/{terminal}/pair``: the pairing code from the console; a right one sets the
  cookie (HttpOnly, SameSite=Strict, this terminal's path only, Secure over https) and sends
  the display to its screen; a wrong one is the form again with the reason next to the field
  (422, or 429 within a second of the last wrong one).
- ``GET /display/{terminal}/events``: server-sent events: a ``screen`` event now and whenever the
  screen changes (the engine's event bus, so a payment made by another process arrives too;
  a timer for the KHQR's expiry and the end of PAID), ``unpaired`` once the display is revoked.
- ``GET /display/{terminal}/state``: the same as JSON, for the script's polling fallback.

A device token opens its own terminal's display and nothing else: what it reaches is that
terminal's newest payment as the payer sees it (amount, card, countdown), never an id, MD5,
account, or anything of another terminal. The stream and the state say only which screen is up
(``DisplayScreen.key``, a digest); the page itself is rendered by the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bakong_console.web.app import WebContext
from bakong_console.web.streams import PING_SECONDS, RESYNC_SECONDS, next_change
from engine.db.displays import Display
from engine.errors import InvalidInput, RateLimitExceeded, Unauthorized
from engine.khqr import decode
from engine.records import Event
from engine.services.cards import render_payment_card
from engine.services.displays import DisplayScreen, ScreenState, check_terminal

__all__ = ["DISPLAY_COOKIE", "display_routes", "screen_of"]

PAGE_ACTOR = "customer display"
DISPLAY_COOKIE = "bk_display"
#: Browsers keep a cookie at most 400 days; the token itself lasts until it is revoked.
COOKIE_SECONDS = 400 * 24 * 3600
#: A screen that changes by itself (expiry, the end of PAID) is re-read just after it does.
CHANGE_MARGIN_SECONDS = 0.05
#: The pairing form is one short field.
MAX_FORM_BYTES = 1024


def screen_of(screen: DisplayScreen) -> dict[str, Any]:
    """What the display's script is told: which screen is up, and for how long."""
    return {"state": screen.state, "key": screen.key, "seconds_left": screen.seconds_left}


def _context(request: Request) -> WebContext:
    return request.app.state.web  # type: ignore[no-any-return]


def _terminal(request: Request) -> str:
    return check_terminal(str(request.path_params["terminal"]))  # NotFound: a plain 404 page


def _root(request: Request, terminal: str) -> str:
    return f"{request.scope.get('root_path', '')}/{terminal}"


async def _paired(request: Request, terminal: str) -> Display:
    """The display this request's cookie pairs with ``terminal`` (``Unauthorized`` otherwise)."""
    return await _context(request).engine.displays.authenticate(terminal, request.cookies.get(DISPLAY_COOKIE))


def _merchant_names(ctx: WebContext, lang: str, khqr: str | None) -> tuple[str, str | None]:
    """(leading, other) merchant name: the Khmer one leads in Khmer when there is one."""
    if khqr:
        fields = decode(khqr)
        latin = (fields.get("merchant_name") or "").strip()
        alternate = (fields.get("merchant_name_alternate_language") or "").strip() or None
    else:
        latin = ctx.settings.merchant.name.strip()
        alternate = ctx.settings.merchant.name_alternate.strip() or None
    return (alternate, latin) if lang == "km" and alternate else (latin, alternate)


def _pairing_form(request: Request, terminal: str, *, status: int = 200, error: str | None = None, headers: dict[str, str] | None = None) -> Response:
    ctx = _context(request)
    lang, _ = ctx.language(request)
    merchant, _ = _merchant_names(ctx, lang, None)
    response = ctx.render(
        request, "display_pair.html", status=status, headers=headers,
        terminal=terminal, root=_root(request, terminal), merchant=merchant, error=error,
    )  # fmt: skip
    # A token that no longer works is forgotten, so the display asks for a code from now on.
    if DISPLAY_COOKIE in request.cookies:
        response.delete_cookie(DISPLAY_COOKIE, path=_root(request, terminal))
    return response


async def display_page(request: Request) -> Response:
    ctx = _context(request)
    terminal = _terminal(request)
    try:
        await _paired(request, terminal)
    except Unauthorized:
        return _pairing_form(request, terminal)
    screen = await ctx.engine.displays.screen(terminal)
    lang, _ = ctx.language(request)
    payment = screen.payment
    merchant, merchant_other = _merchant_names(ctx, lang, payment.khqr if payment else None)
    card_svg = None
    if screen.state == ScreenState.PENDING and payment is not None:
        svg = (await render_payment_card(payment, "svg")).data.decode("utf-8")
        card_svg = svg.split("?>", 1)[1].strip() if svg.startswith("<?xml") else svg
    state = screen_of(screen)
    minutes, seconds = divmod(screen.seconds_left, 60)
    return ctx.render(
        request,
        "display.html",
        screen=screen,
        state=state,
        state_json=json.dumps(state, separators=(",", ":")),
        merchant=merchant,
        merchant_other=merchant_other,
        amount=payment.display_amount if payment else None,
        card_svg=card_svg,
        countdown=f"{minutes}:{seconds:02d}",
        root=_root(request, terminal),
        ScreenState=ScreenState,
    )


async def _posted_code(request: Request) -> str:
    """The ``code`` field of the pairing form (urlencoded, a few bytes: anything longer is no code)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return ""
    values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4).get("code", [""])
    return values[0]


async def pair(request: Request) -> Response:
    ctx = _context(request)
    terminal = _terminal(request)
    code = await _posted_code(request)
    try:
        paired = await ctx.engine.displays.pair(terminal, code, actor=ctx.actor(request, PAGE_ACTOR))
    except InvalidInput as exc:
        return _pairing_form(request, terminal, status=422, error=exc.message)
    except RateLimitExceeded as exc:
        wait = max(1, int(exc.retry_after + 0.999))
        return _pairing_form(request, terminal, status=429, error=exc.message, headers={"Retry-After": str(wait)})
    root = _root(request, terminal)
    response = RedirectResponse(root, status_code=303)
    response.set_cookie(
        DISPLAY_COOKIE, paired.token, max_age=COOKIE_SECONDS, path=root, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


def _unpaired() -> Response:
    return JSONResponse({"error": 401, "message": "this display is not paired"}, status_code=401)


async def display_state(request: Request) -> Response:
    ctx = _context(request)
    terminal = _terminal(request)
    try:
        await _paired(request, terminal)
    except Unauthorized:
        return _unpaired()
    return JSONResponse(screen_of(await ctx.engine.displays.screen(terminal)))


async def display_events(request: Request) -> Response:
    ctx = _context(request)
    terminal = _terminal(request)
    token = request.cookies.get(DISPLAY_COOKIE)
    try:
        display = await _paired(request, terminal)
    except Unauthorized:
        return _unpaired()

    async def stream() -> AsyncIterator[dict[str, str]]:
        def concerns(event: Event) -> bool:
            # Any payment's event may be this terminal's (re-read: one indexed query); the
            # display's own events say it was revoked.
            return event.subject_type == "payment" or (event.subject_type == "display" and event.subject_id == display.id)

        async with ctx.engine.bus.subscription(concerns) as changes:
            while True:
                # Read after subscribing: a change committed meanwhile is in the queue, not lost.
                try:
                    await ctx.engine.displays.authenticate(terminal, token)
                except Unauthorized:
                    yield {"event": "unpaired", "data": "{}"}
                    return
                screen = await ctx.engine.displays.screen(terminal)
                yield {"event": "screen", "data": json.dumps(screen_of(screen), separators=(",", ":"))}
                wait = RESYNC_SECONDS
                if screen.changes_at is not None:
                    wait = min(wait, (screen.changes_at - screen.now).total_seconds() + CHANGE_MARGIN_SECONDS)
                if not await next_change(changes, ctx.closing, timeout=wait):
                    return

    return EventSourceResponse(stream(), ping=PING_SECONDS, headers={"X-Accel-Buffering": "no"})


def display_routes() -> list[BaseRoute]:
    return [
        Route("/{terminal}", display_page, methods=["GET"], name="display"),
        Route("/{terminal}/pair", pair, methods=["POST"]),
        Route("/{terminal}/state", display_state, methods=["GET"]),
        Route("/{terminal}/events", display_events, methods=["GET"]),
    ]
