"""The payer's pages' security headers: a strict Content-Security-Policy and its companions.

Every answer under a payer's page gets, unless the route set its own: the CSP below (nothing
but our own one script and one style sheet, images from ourselves or ``data:``, fetches and
event streams to ourselves, forms only to ourselves, never framed), ``nosniff``, no referrer
(the token is in the path: it must never leave in a Referer), and no caching of pages.
A checkout page widens ``form-action`` by the origins of its own success and cancel URLs:
Chromium applies ``form-action`` to the redirect that follows a form, and "Cancel payment"
is a form whose answer redirects to the cancel URL.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders", "content_security_policy"]


def content_security_policy(form_origins: Iterable[str] = ()) -> str:
    forms = " ".join(["'self'", *dict.fromkeys(form_origins)])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        f"form-action {forms}; frame-ancestors 'none'; base-uri 'none'"
    )


_DEFAULTS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", content_security_policy().encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """Pure ASGI middleware: adds each default header the answer does not already carry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in _DEFAULTS if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
