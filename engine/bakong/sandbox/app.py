"""The Bakong sandbox: an ASGI app that answers like the Bakong Open API, plus its control paths.

``BakongSandbox`` is the sandbox's state, built in layers, each in its own module:

- ``gateway``: faults injected on demand (``SandboxFaults``), the one token it accepts (401 with
  errorCode 6 for another), the daily quota (errorCode 17), bare nginx HTML for 403s;
- ``bank_app``: the pretend bank app (``pay`` / ``POST /sandbox/pay``) that reads the KHQR as a
  banking app would, its transfers kept in a ``TransferStore``;
- ``endpoints``: Bakong's paths (``engine.bakong.environments.Endpoint``), request bodies and
  envelopes (``wire``);
- ``control_paths``: ``/sandbox/...``, not part of Bakong.

This module wires them: the sandbox's configuration, its routes, and ``SandboxApp``, the ASGI entry
point that keeps Bakong's paths off Starlette's router.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.bakong.environments import Endpoint
from engine.bakong.sandbox.control_paths import ControlPaths
from engine.bakong.sandbox.faults import SandboxFaults
from engine.bakong.sandbox.gateway import Auth, Handler
from engine.bakong.sandbox.store import TransferStore
from engine.bakong.sandbox.tokens import issue_token
from engine.bakong.token import token_fingerprint
from engine.clock import Clock

__all__ = ["BakongSandbox", "SandboxApp", "create_sandbox_app"]


class BakongSandbox(ControlPaths):
    """The sandbox's state and behaviour; ``app`` is its ASGI application."""

    def __init__(
        self,
        store: TransferStore,
        *,
        clock: Clock,
        token: str | None = None,
        email: str = "merchant@example.com",
        faults: SandboxFaults | None = None,
        rng: random.Random | None = None,
        secret: bytes | None = None,
        on_token_renewed: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.secret = secret or self.rng.randbytes(32)
        self.email = email
        self.faults = faults or SandboxFaults()
        self.faults.check()
        self.on_token_renewed = on_token_renewed
        self.stats = Counter()
        self._quota_used = {}
        self._token = ""
        self._authorization = ""
        self._token_exp = None
        self._set_token(token or issue_token(self.secret, now=clock.now(), rng=self.rng))
        self.app = SandboxApp(self)

    def __repr__(self) -> str:
        return f"BakongSandbox(token={token_fingerprint(self._token)!r}, faults={self.faults!r})"

    def _routes(self) -> list[Route]:
        routes = [
            Route(ep.value, self._bind(ep, handler, auth), methods=["POST"]) for ep, handler, auth in self._v1_table()
        ]
        routes += [
            Route("/sandbox/pay", self._control_pay, methods=["POST"]),
            Route("/sandbox/transfers", self._control_transfers, methods=["GET"]),
            Route("/sandbox/faults", self._control_faults, methods=["GET", "POST"]),
            Route("/sandbox/stats", self._control_stats, methods=["GET"]),
            Route("/sandbox/stats/reset", self._control_stats_reset, methods=["POST"]),
            Route("/sandbox/info", self._control_info, methods=["GET"]),
        ]
        return routes

    def _bind(self, endpoint: Endpoint, handler: Handler, auth: Auth) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await self._serve(endpoint, handler, auth, request.headers.get("authorization"), request.body)

        serve.__name__ = endpoint.label
        return serve


class SandboxApp:
    """The sandbox's ASGI entry point: Bakong's POST paths go straight to their handlers (the bulk
    path must stay cheap), everything else (control paths, 404s, 405s) through Starlette."""

    def __init__(self, sandbox: BakongSandbox) -> None:
        self.sandbox = sandbox
        self.router = Starlette(routes=sandbox._routes())
        self.router.state.sandbox = sandbox
        self.state = self.router.state
        self._v1 = {ep.value: (ep, handler, auth) for ep, handler, auth in sandbox._v1_table()}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self._v1.get(scope["path"])
            if route is not None:
                endpoint, handler, auth = route
                header = None
                for name, value in scope["headers"]:
                    if name == b"authorization":
                        header = value.decode("latin-1")
                        break

                async def read_body() -> bytes:
                    chunks = []
                    while True:
                        message = await receive()
                        if message["type"] != "http.request":
                            break
                        chunks.append(message.get("body", b""))
                        if not message.get("more_body", False):
                            break
                    return b"".join(chunks)

                response = await self.sandbox._serve(endpoint, handler, auth, header, read_body)
                await response(scope, receive, send)
                return
        await self.router(scope, receive, send)


def create_sandbox_app(
    store: TransferStore,
    *,
    clock: Clock,
    token: str | None = None,
    email: str = "merchant@example.com",
    faults: SandboxFaults | None = None,
    rng: random.Random | None = None,
    secret: bytes | None = None,
    on_token_renewed: Callable[[str], Awaitable[None]] | None = None,
) -> SandboxApp:
    """The sandbox as an ASGI app; its ``BakongSandbox`` is ``app.state.sandbox``.

    ``token``: the token it accepts (None: it issues its own 90-day HS256 JWT, read it from
    ``app.state.sandbox.token``). ``email``: the registered address ``renew_token`` accepts.
    ``on_token_renewed`` is awaited with each new token so the caller can persist it.
    """
    return BakongSandbox(
        store,
        clock=clock,
        token=token,
        email=email,
        faults=faults,
        rng=rng,
        secret=secret,
        on_token_renewed=on_token_renewed,
    ).app
