"""The payer's pages as ASGI apps: ``web_mounts(engine)`` for the API app (``serve``) and
``create_web_app(engine)`` for the console's own server.

Each mount is a Starlette app of its own with the security headers (``web.security``), its own
plain error pages (a payer never sees a traceback or a problem document) and the shared
``WebContext``: the engine, the Jinja2 templates (``web/templates``, autoescaped), the client
address rule (`serve` hands in the API's, so ``api.trusted_proxies`` applies) and the ``closing`` event that ends
every open event stream when the server stops (uvicorn waits for open responses to finish).

Static files (``web/static``: a script and a style sheet per page kind) are served under each
mount's ``static/`` (``/pay/static/``, ``/display/static/``) with a content hash in their URL, so
they can be cached for a year.

Mounts: ``/pay`` (the hosted checkout, ``web.checkout``) and ``/display`` (the customer display,
``web.display``), sharing the context, the base template, the headers and the static files.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from bakong_console.web.i18n import LANGUAGE_COOKIE, LANGUAGES, TEXTS, language_of
from bakong_console.web.security import SecurityHeaders
from engine import errors as E
from engine.records import Actor, ActorType
from engine.runtime import Engine

__all__ = ["WebContext", "create_web_app", "web_mounts"]

log = logging.getLogger("bakong_console.web")

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
#: How long the ``bk_lang`` cookie keeps the payer's language.
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600
#: The kinds of payer's pages, each a mount of its own: the hosted checkout and the customer display.
PAGES = ("pay", "display")


def _static_versions() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in STATIC_DIR.iterdir() if p.is_file()}


@dataclass
class WebContext:
    """What every payer's page needs, shared by the mounts of one server."""

    engine: Engine
    #: The payer's address for the audit log (the API's rule, trusted proxies included, in `serve`).
    client_address: Callable[[Request], str]
    templates: Environment
    static_versions: dict[str, str]
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    #: The mount whose static files a page outside every mount (a plain 404) links to.
    home: str = "pay"

    @property
    def settings(self) -> Any:
        return self.engine.settings

    def close(self) -> None:
        """End every open event stream (call before the server stops)."""
        self.closing.set()

    def actor(self, request: Request, name: str) -> Actor:
        """The payer at ``request``'s address, acting through the page ``name``."""
        return Actor(ActorType.PAYER, name, source_ip=self.client_address(request))

    def language(self, request: Request) -> tuple[str, bool]:
        return language_of(request.query_params, request.cookies, self.settings.display.language)

    def render(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **values: Any,
    ) -> HTMLResponse:
        """A page in the payer's language (remembered when they just chose it)."""
        lang, chosen = self.language(request)
        page = self.templates.get_template(template).render(
            lang=lang,
            t=TEXTS[lang],
            languages=LANGUAGES,
            static=lambda name: f"{_mount_root(request, self.home)}/static/{name}?v={self.static_versions.get(name, '0')}",
            sandbox=self.engine.info.sandbox,
            **values,
        )
        response = HTMLResponse(page, status_code=status, headers=headers)
        if chosen:
            response.set_cookie(LANGUAGE_COOKIE, lang, max_age=LANGUAGE_COOKIE_SECONDS, path="/", samesite="lax", httponly=True)
        return response


def _mount_root(request: Request, home: str) -> str:
    """The path of the mount the request is under (``/pay`` or ``/display``, behind a proxy's
    root_path too); ``home``'s for a request outside every mount."""
    root = request.scope.get("root_path", "")
    if root.endswith(tuple(f"/{name}" for name in PAGES)):
        return str(root)
    return f"{root.rstrip('/')}/{home}"


def _pay_root(request: Request) -> str:
    """The path the /pay mount answers under (behind a proxy's root_path too)."""
    root = request.scope.get("root_path", "")
    return root if root.endswith("/pay") else f"{root.rstrip('/')}/pay"


def _wants_json(request: Request) -> bool:
    return request.url.path.endswith("/state") or "application/json" in request.headers.get("accept", "")


#: Error kind -> (status, title key, text key) of the plain page a payer sees.
_PAGES = {
    404: ("not_found_title", "not_found_text"),
    409: ("conflict_title", "conflict_text"),
    410: ("ended_title", "ended_text"),
    429: ("rate_title", "wait_before_asking"),
}


def error_page(request: Request, status: int, *, detail: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """The plain page (or, for the page's script, JSON) for an error ``status``."""
    ctx: WebContext = request.app.state.web
    if _wants_json(request):
        body: dict[str, Any] = {"error": status, "message": detail or ""}
        if headers and "Retry-After" in headers:
            body["retry_after"] = int(headers["Retry-After"])
        return JSONResponse(body, status_code=status, headers=headers)
    title, text = _PAGES.get(status, ("error_title", "error_text"))
    if status == 404 and str(request.scope.get("root_path", "")).endswith("/display"):
        title, text = "display_not_found_title", "display_not_found_text"
    back = None
    token = request.path_params.get("token") if hasattr(request, "path_params") else None
    if status in (409, 429) and token:
        back = f"{_pay_root(request)}/{token}"
    return ctx.render(request, "problem.html", status=status, headers=headers, title_key=title, text_key=text, back=back)


async def _engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, E.BakongConsoleError)
    if isinstance(exc, E.RateLimitExceeded):
        wait = max(1, int(exc.retry_after + 0.999))
        return error_page(request, 429, detail=exc.message, headers={"Retry-After": str(wait)})
    if isinstance(exc, (E.StorageError, E.ConfigError, E.DataKeyError)):
        log.error("payer page: %s: %s", exc.kind, exc.message)  # never the path: it holds the token
        return error_page(request, 503)
    status = exc.http_status if exc.http_status in (404, 409, 410) else 400
    return error_page(request, status, detail=exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_page(request, exc.status_code, headers=dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Logged without the path: it holds the token.
    log.error("payer page failed", exc_info=exc)
    return error_page(request, 500)


class _Assets(StaticFiles):
    """The static files, cacheable for a year: their URLs change with their content."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def _sub_app(ctx: WebContext, routes: list[BaseRoute]) -> Starlette:
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={E.BakongConsoleError: _engine_error, HTTPException: _http_error, Exception: _unexpected},
    )
    app.state.web = ctx
    return app


def peer_address(request: Request) -> str:
    """The connection's own address: the console's server believes no proxy."""
    return request.client.host if request.client else "unknown"


def make_context(engine: Engine, *, client_address: Callable[[Request], str] = peer_address, home: str = "pay") -> WebContext:
    """The pages' context; ``client_address`` tells who a request comes from (`serve` passes the
    API's, which believes ``X-Forwarded-For`` from ``api.trusted_proxies`` only)."""
    templates = Environment(
        loader=FileSystemLoader(WEB_DIR / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return WebContext(
        engine=engine,
        client_address=client_address,
        templates=templates,
        static_versions=_static_versions(),
        home=home,
    )


def web_mounts(ctx: WebContext, pages: tuple[str, ...] = PAGES) -> list[BaseRoute]:
    """The payer's pages, to add to an app's routes: ``/pay`` (checkout) and ``/display`` (the
    customer display), each with the static files."""
    from bakong_console.web.checkout import checkout_routes
    from bakong_console.web.display import display_routes

    routes = {"pay": checkout_routes, "display": display_routes}
    return [
        Mount(f"/{name}", app=_sub_app(ctx, [Mount("/static", app=_Assets(directory=STATIC_DIR), name="static"), *routes[name]()]))
        for name in pages
    ]


def create_web_app(engine: Engine, pages: tuple[str, ...] = ("pay",)) -> Starlette:
    """Some of the payer's pages alone (a console's own servers: ``[web]`` serves the checkout,
    ``[display]`` the customer display); anything else is a plain 404 page."""
    ctx = make_context(engine, home=pages[0])
    app = _sub_app(ctx, web_mounts(ctx, pages))
    return app
