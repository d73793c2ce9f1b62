"""RFC 9457 problem documents: every error the API answers, with a stable ``type`` per kind.

The ``type`` is ``/api/problems/<kind>`` where ``kind`` is the engine error's ``kind``
(``engine.errors``) or one of the API's own (``client-blocked``, ``payload-too-large`` ...);
``GET /api/problems/<kind>`` describes it. Bodies are ``application/problem+json`` with
``type``, ``title``, ``status``, ``detail``, ``instance`` and the extension members
``request_id``, ``errors`` (field-level validation messages) and ``retry_after``. ``problems()``
gives the OpenAPI ``responses`` entries that document them on a route.

No stack trace or internal message ever leaves: unexpected exceptions answer a bare
``internal-error`` and are logged with the request id; storage and configuration failures
answer a fixed sentence (their messages name hosts and files).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import errors as E

__all__ = [
    "PROBLEM_TYPES",
    "ClientBlocked",
    "UnreadableForwardedFor",
    "FieldError",
    "Problem",
    "install_problem_handlers",
    "internal_error_response",
    "problem_response",
    "problem_type",
    "problems",
]

log = logging.getLogger("bakong_console.api")

_Exc = TypeVar("_Exc", bound=Exception)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ClientBlocked(E.RateLimitExceeded):
    """This address failed authentication too often and is blocked for a while."""

    kind = "client-blocked"
    http_status = 429


class UnreadableForwardedFor(E.BakongConsoleError):
    """A trusted proxy forwarded a client address (``X-Forwarded-For``) that cannot be read."""

    kind = "bad-request"
    http_status = 400


def _doc(cls: type) -> str:
    return (cls.__doc__ or cls.__name__).strip().splitlines()[0]


def _engine_kinds() -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for name in E.__all__:
        cls = getattr(E, name)
        if isinstance(cls, type) and issubclass(cls, E.BakongConsoleError):
            out[cls.kind] = (cls.http_status, _doc(cls))
    return out


#: kind -> (HTTP status, title). Titles never change for a kind (RFC 9457 §3.1.3).
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    **_engine_kinds(),
    ClientBlocked.kind: (429, _doc(ClientBlocked)),
    "bad-request": (400, "The request could not be read."),
    "payload-too-large": (413, "The request body is larger than the API accepts."),
    "method-not-allowed": (405, "This path does not accept this method."),
    "not-acceptable": (406, "The API cannot answer in a format the client accepts."),
    "unsupported-media-type": (415, "Send the body as application/json."),
    "internal-error": (500, "The server failed to handle the request."),
}

_STATUS_KINDS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "rate-limited",
    503: "storage-error",
}

#: Errors whose message may name a host, a file or a key id: answered with a fixed detail.
_PRIVATE = (E.StorageError, E.ConfigError, E.DataKeyError)


def rate_headers(request: Request) -> dict[str, str]:
    """The calling key's rate-limit state (IETF RateLimit header fields), once it is known."""
    rate = getattr(request.state, "rate", None)
    if rate is None:
        return {}
    return {
        "RateLimit-Limit": str(rate.limit),
        "RateLimit-Remaining": str(rate.remaining),
        "RateLimit-Reset": str(max(0, math.ceil(rate.reset_after))),
    }


def problem_type(kind: str) -> str:
    return f"/api/problems/{kind}"


class FieldError(BaseModel):
    field: str = Field(description="The input the message is about: amount, currency, md5, status, Idempotency-Key ...")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str = Field(description="Stable URI reference naming the kind of problem: /api/problems/<kind>.")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = None
    errors: list[FieldError] | None = Field(default=None, description="Field-level validation messages.")
    retry_after: int | None = Field(default=None, description="Seconds to wait before retrying (also the Retry-After header).")


#: How the OpenAPI document describes each problem status a route may answer.
_DESCRIPTIONS = {
    400: "The request could not be read.",
    401: "No API key, or an unknown or revoked one.",
    403: "The API key lacks the scope this route needs.",
    404: "No such record.",
    409: "Conflicts with the current state, or an idempotency key reused for a different request.",
    413: "The body is larger than api.max_body_bytes.",
    422: "The request is not valid (field-level messages in `errors`).",
    429: "Over the key's rate limit, or this address is blocked after failed authentications (see Retry-After).",
    502: "Bakong answered something unusable.",
    503: "Bakong cannot be asked right now (quota, token, unreachable) or the database is unavailable.",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these problem statuses (application/problem+json).

    A route that requires a scope declares ``security.keyed_problems``, which adds the problems
    of the key check to the route's own."""
    ref = {"$ref": "#/components/schemas/Problem"}
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"description": _DESCRIPTIONS[code], "content": {"application/problem+json": {"schema": ref}}}
        if code == 429:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 1}}
            }
        out[code] = entry
    return out


def problem_response(
    request: Request | None,
    kind: str,
    detail: str,
    *,
    status: int | None = None,
    errors: Iterable[Mapping[str, str]] | None = None,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    code, title = PROBLEM_TYPES.get(kind, (status or 500, kind.replace("-", " ").capitalize() + "."))
    code = status or code
    body: dict[str, Any] = {"type": problem_type(kind), "title": title, "status": code, "detail": detail}
    out_headers = dict(headers or {})
    if request is not None:
        body["instance"] = request.url.path
        rid = getattr(request.state, "request_id", None)
        if rid:
            body["request_id"] = rid
        out_headers.update(rate_headers(request))
    if errors:
        body["errors"] = [dict(e) for e in errors]
    if retry_after is not None:
        seconds = max(1, math.ceil(retry_after))
        body["retry_after"] = seconds
        out_headers["Retry-After"] = str(seconds)
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status_code=code,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=out_headers,
    )


def _retry_after(exc: E.BakongConsoleError, now: datetime) -> float | None:
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    until = getattr(exc, "until", None)
    if isinstance(until, datetime):
        return max(1.0, (until - now).total_seconds())
    return None


def engine_error_response(request: Request, exc: E.BakongConsoleError) -> Response:
    kind = exc.kind if exc.kind in PROBLEM_TYPES else _STATUS_KINDS.get(exc.http_status, "internal-error")
    if isinstance(exc, _PRIVATE):
        log.error("request %s: %s: %s", getattr(request.state, "request_id", "-"), exc.kind, exc.message)
        detail = {
            "storage-error": "The database is unavailable; try again shortly.",
        }.get(exc.kind, "The server is misconfigured; the operator has been told in the log.")
    else:
        detail = exc.message
    errors = None
    field = getattr(exc, "field", None)
    if isinstance(exc, E.InvalidInput):
        errors = [{"field": field or "request", "message": exc.message}]
    headers = {"WWW-Authenticate": 'Bearer realm="bakong-console"'} if isinstance(exc, E.Unauthorized) else None
    now = request.app.state.clock.now()
    return problem_response(
        request, kind, detail, status=exc.http_status, errors=errors, retry_after=_retry_after(exc, now), headers=headers
    )


def _loc(loc: Iterable[Any]) -> str:
    """("body", "amount") -> "amount"; ("query", "status", 0) -> "status.0"; ("body",) -> "body"."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "request"


def _validation_response(request: Request, exc: RequestValidationError) -> Response:
    errors = []
    for err in exc.errors()[:20]:
        message = str(err.get("msg", "invalid value"))
        field = _loc(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            field, message = "body", "the body is not valid JSON"
        errors.append({"field": field, "message": message})
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return problem_response(request, "invalid-input", f"{first['field']}: {first['message']}", status=422, errors=errors)


def _http_response(request: Request, exc: StarletteHTTPException) -> Response:
    kind = _STATUS_KINDS.get(exc.status_code, "bad-request" if exc.status_code < 500 else "internal-error")
    detail = exc.detail if isinstance(exc.detail, str) else PROBLEM_TYPES.get(kind, (0, "error"))[1]
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such path: {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers or {})
    return problem_response(request, kind, detail, status=exc.status_code, headers=headers)


def internal_error_response(request: Request, exc: Exception) -> Response:
    rid = getattr(request.state, "request_id", "-")
    log.error("request %s %s %s failed", rid, request.method, request.url.path, exc_info=exc)
    return problem_response(request, "internal-error", f"the server failed to handle request {rid}")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every exception the app lets out as a problem document."""
    _answer(app, E.BakongConsoleError, engine_error_response)
    _answer(app, RequestValidationError, _validation_response)
    _answer(app, StarletteHTTPException, _http_response)
    _answer(app, Exception, internal_error_response)


def _answer(app: FastAPI, exc_type: type[_Exc], respond: Callable[[Request, _Exc], Response]) -> None:
    # Starlette runs a plain function handler in a thread pool: these build a response without
    # I/O, so each is wrapped in a coroutine that answers on the event loop.
    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, exc_type)
        return respond(request, exc)

    app.add_exception_handler(exc_type, handler)
