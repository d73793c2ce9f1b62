"""The request edge: request ids, the body size limit and per-route metrics, as one pure ASGI
middleware (cheaper than ``BaseHTTPMiddleware``, and it sees streamed bodies).

A body announced larger than ``api.max_body_bytes`` is refused with 413 before the app reads
it; a chunked body that grows past the limit stops the read with the same 413.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bakong_console.api.metrics import ApiMetrics
from bakong_console.api.problems import internal_error_response, problem_response

__all__ = ["ApiEdge"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class ApiEdge:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: ApiMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        length: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                length = value.decode("latin-1")
        rid = incoming if incoming and _REQUEST_ID.match(incoming) else secrets.token_hex(8)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        status = 500
        responding = False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status = message["status"]
                responding = True
                message = {**message, "headers": [*message.get("headers", ()), rid_header]}
            await send(message)

        try:
            refusal = self._refuse_length(scope, length)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
                return
            await self.app(scope, self._limited(receive), send_with_id)
        except Exception as exc:
            if responding:
                raise
            # Logged here with the request id; the client learns only that it failed.
            await internal_error_response(Request(scope), exc)(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            self.metrics.observe(scope.get("method", "GET"), template, status, time.perf_counter() - started)

    def _refuse_length(self, scope: Scope, length: str | None) -> Any:
        if length is None:
            return None
        request = Request(scope)
        if not length.isdigit():
            return problem_response(request, "bad-request", "Content-Length is not a number")
        if int(length) > self.max_body_bytes:
            return problem_response(
                request, "payload-too-large", f"the body is {int(length)} bytes; at most {self.max_body_bytes} are accepted"
            )
        return None

    def _limited(self, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"the body is larger than {limit} bytes")
            return message

        return limited_receive
