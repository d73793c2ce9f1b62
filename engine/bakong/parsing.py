"""Defensive reading of Bakong's answers: the envelope, and the error each refusal becomes.

Rules (from the spec, where real answers disagree between clients):

- Only a JSON envelope with HTTP 200 and errorCode 1 means "not found" (not paid yet). Any other
  answer that is not a success is an exception from ``engine.errors``: an HTML or empty body is an
  edge refusal and says nothing about payment state.
- Amounts arrive as JSON numbers or strings; both become ``Decimal`` (JSON is read with
  ``parse_float=Decimal`` so no float ever touches an amount).
- Millisecond timestamps arrive as integers or floats (``1605774370608.0``).
- (Read by ``engine.bakong.payloads``:) a bulk list item holds its transaction under ``data``, under ``transaction``, or inline.
- Unknown fields are ignored everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from engine.bakong.environments import Endpoint
from engine.errors import (
    AccountNotFound,
    BadRequest,
    BakongError,
    BakongServerError,
    BulkEndpointBlocked,
    GeoBlocked,
    MalformedResponse,
    QuotaExhausted,
    RateLimited,
    StaticQRNotSupported,
    TokenExpired,
    TransactionFailed,
    TransactionNotFound,
    UnknownRefusal,
)

__all__ = ["MESSAGE_LIMIT", "Envelope", "as_int", "interpret_response", "is_quota_message", "parse_retry_after", "short_message"]

_QUOTA_PHRASES = ("daily request limit", "request limit", "quota", "too many request", "try again tomorrow")
MESSAGE_LIMIT = 200


@dataclass(frozen=True)
class Envelope:
    """A successful answer: responseCode 0, no errorCode."""

    message: str
    data: Any
    raw: dict[str, Any]


def is_quota_message(message: str) -> bool:
    """Whether a refusal's text talks about a request quota (undocumented codes exist)."""
    text = message.lower()
    return any(phrase in text for phrase in _QUOTA_PHRASES)


def short_message(text: str) -> str:
    """``text`` on one line, cut to ``MESSAGE_LIMIT`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def as_int(value: Any) -> int | None:
    """An integer code from a number or numeric text (``"1"``, ``1.0``), else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def _describe_body(body: bytes) -> str:
    stripped = body.lstrip()[:64].lower()
    if not stripped:
        return "an empty body"
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<center", b"<")):
        return "an HTML page"
    return "a body that is not JSON"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from ``now``: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def interpret_response(
    endpoint: Endpoint,
    status: int,
    body: bytes,
    *,
    retry_after: str | None = None,
    now: datetime | None = None,
) -> Envelope:
    """The success envelope of an answer, or the ``engine.errors`` exception that it means."""
    label = endpoint.label
    ctx: dict[str, Any] = {"http_status_code": status, "endpoint": label}
    if status == 429:
        seconds = parse_retry_after(retry_after, now or datetime.now(UTC))
        raise RateLimited(f"Bakong is throttling requests (HTTP 429) on {label}", retry_after=seconds, **ctx)
    if status >= 500:
        raise BakongServerError(f"Bakong answered HTTP {status} on {label}", **ctx)
    try:
        payload: Any = json.loads(body, parse_float=Decimal) if body.strip() else None
        is_json = payload is not None
    except (ValueError, UnicodeDecodeError):
        payload, is_json = None, False
    if not is_json:
        what = _describe_body(body)
        if status == 403:
            if endpoint in (Endpoint.MD5_LIST, Endpoint.HASH_LIST):
                which = "MD5" if endpoint is Endpoint.MD5_LIST else "hash"
                raise BulkEndpointBlocked(
                    f"Bakong answered {what} with HTTP 403 on the bulk {which} endpoint; single checks still work",
                    **ctx,
                )
            raise GeoBlocked(
                f"Bakong answered {what} with HTTP 403: this machine's IP address is probably outside "
                "Cambodia (Bakong only accepts Cambodian IPs), or the path is closed",
                **ctx,
            )
        if status == 401:
            raise TokenExpired("Bakong refused the token (HTTP 401)", **ctx)
        raise MalformedResponse(f"Bakong answered HTTP {status} with {what} instead of its JSON envelope", **ctx)
    if not isinstance(payload, dict) or "responseCode" not in payload:
        if status == 401:
            raise TokenExpired("Bakong refused the token (HTTP 401)", **ctx)
        raise MalformedResponse(f"Bakong answered HTTP {status} with JSON that is not its envelope", **ctx)

    response_code = as_int(payload.get("responseCode"))
    error_code = as_int(payload.get("errorCode"))
    message = short_message(payload.get("responseMessage") or "")
    ctx["error_code"] = error_code
    said = f": {message}" if message else ""

    if error_code == 6 or status == 401:
        raise TokenExpired(f"Bakong refused the token (errorCode {error_code}){said}", **ctx)
    if error_code == 17 or (response_code != 0 and is_quota_message(message)):
        raise QuotaExhausted(f"Bakong's daily request quota is spent{said}", **ctx)
    if response_code == 0 and error_code is None and 200 <= status < 300:
        return Envelope(message, payload.get("data"), payload)
    if status != 200:
        if error_code == 5 or status in (400, 422):
            raise BadRequest(f"Bakong rejected our request (HTTP {status}){said}", **ctx)
        raise UnknownRefusal(f"Bakong answered HTTP {status} (errorCode {error_code}){said}", **ctx)
    raise _error_for_code(error_code, response_code, said, ctx)


def _error_for_code(error_code: int | None, response_code: int | None, said: str, ctx: dict[str, Any]) -> BakongError:
    match error_code:
        case 1:
            return TransactionNotFound(f"Transaction not found (not paid yet){said}", **ctx)
        case 2:
            return StaticQRNotSupported(f"Bakong cannot track a static KHQR{said}", **ctx)
        case 3:
            return TransactionFailed(f"Bakong reports the transaction as failed{said}", **ctx)
        case 4:
            return BakongServerError(f"Bakong's deep link provider failed; try later{said}", **ctx)
        case 5:
            return BadRequest(f"Bakong says our request had missing or invalid fields{said}", **ctx)
        case 7:
            return BakongServerError(f"Bakong's e-mail server is down; try later{said}", **ctx)
        case 8:
            return BadRequest(f"This e-mail is already registered with Bakong{said}", **ctx)
        case 9:
            return BakongServerError(f"Bakong cannot reach its upstream server; try later{said}", **ctx)
        case 10:
            return BadRequest(f"This e-mail is not registered with Bakong{said}", **ctx)
        case 11:
            return AccountNotFound(f"Bakong account not found{said}", **ctx)
        case 12:
            return AccountNotFound(f"Bakong account id is invalid{said}", **ctx)
        case None:
            return UnknownRefusal(f"Bakong answered responseCode {response_code} without an errorCode{said}", **ctx)
        case _:
            return UnknownRefusal(f"Bakong refused with unknown errorCode {error_code}{said}", **ctx)
