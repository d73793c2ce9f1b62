"""Defensive reading of Bakong's answers: the envelope, transactions and bulk list items.

Rules (from the spec, where real answers disagree between clients):

- Only a JSON envelope with HTTP 200 and errorCode 1 means "not found" (not paid yet). Any other
  answer that is not a success is an exception from ``engine.errors``: an HTML or empty body is an
  edge refusal and says nothing about payment state.
- Amounts arrive as JSON numbers or strings; both become ``Decimal`` (JSON is read with
  ``parse_float=Decimal`` so no float ever touches an amount).
- Millisecond timestamps arrive as integers or floats (``1605774370608.0``).
- A bulk list item holds its transaction under ``data``, under ``transaction``, or inline.
- Unknown fields are ignored everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from engine.bakong.environments import Endpoint
from engine.bakong.models import AccountInfo, CheckOutcome, CheckStatus, DeepLink, Transaction
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

__all__ = [
    "Envelope",
    "interpret_response",
    "is_quota_message",
    "parse_account",
    "parse_amount",
    "parse_deeplink",
    "parse_list",
    "parse_ms",
    "parse_retry_after",
    "parse_token",
    "parse_transaction",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUOTA_PHRASES = ("daily request limit", "request limit", "quota", "too many request", "try again tomorrow")
_MESSAGE_LIMIT = 200


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


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _as_int(value: Any) -> int | None:
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
            if endpoint is Endpoint.MD5_LIST:
                raise BulkEndpointBlocked(
                    f"Bakong answered {what} with HTTP 403 on the bulk MD5 endpoint; single checks still work",
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

    response_code = _as_int(payload.get("responseCode"))
    error_code = _as_int(payload.get("errorCode"))
    message = _short(payload.get("responseMessage") or "")
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


# --- values ---------------------------------------------------------------------------------------


def parse_amount(value: Any) -> Decimal:
    """A JSON amount (number or string, e.g. 1.25, "1.25", "4,000") as an exact Decimal."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise ValueError(f"not an amount: {value!r}") from None
    else:
        raise ValueError(f"not an amount: {value!r}")
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return amount


def parse_ms(value: Any) -> datetime | None:
    """Epoch milliseconds (int, float, Decimal or digit string) as an aware UTC datetime."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        ms = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not ms.is_finite():
        return None
    try:
        return _EPOCH + timedelta(microseconds=int(ms * 1000))
    except OverflowError:
        return None


_CONTAINERS_AND_DECIMALS = frozenset({dict, list, Decimal})


def _plain(value: Any) -> Any:
    """JSON as the standard library would have read it (Decimal numbers back to float), so ``raw``
    values can be stored as JSON by anyone; the typed fields keep the exact Decimal."""
    cls = value.__class__
    if cls is dict:
        for item in value.values():
            if item.__class__ in _CONTAINERS_AND_DECIMALS:
                return {k: _plain(v) for k, v in value.items()}
        return value  # already plain (the common "not found" item): no copy
    if cls is list:
        return [_plain(v) for v in value]
    if cls is Decimal:
        return float(value)
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    return None


def _currency(value: Any) -> str:
    code = (_text(value) or "").strip().upper()
    return {"116": "KHR", "840": "USD"}.get(code, code)


def parse_transaction(data: Any, *, endpoint: str | None = None) -> Transaction:
    """A transaction object; MalformedResponse when it lacks a hash, an amount or a currency."""
    if not isinstance(data, Mapping):
        raise MalformedResponse("Bakong's answer has no transaction object", endpoint=endpoint)
    tx_hash = _text(data.get("hash"))
    if not tx_hash:
        raise MalformedResponse("Bakong's transaction has no hash", endpoint=endpoint)
    try:
        amount = parse_amount(data.get("amount"))
    except ValueError:
        raise MalformedResponse(f"Bakong's transaction has no usable amount ({data.get('amount')!r})", endpoint=endpoint) from None
    currency = _currency(data.get("currency"))
    if not currency:
        raise MalformedResponse("Bakong's transaction has no currency", endpoint=endpoint)
    return Transaction(
        hash=tx_hash.strip().lower(),
        amount=amount,
        currency=currency,
        from_account_id=_text(data.get("fromAccountId")),
        to_account_id=_text(data.get("toAccountId")),
        created_at=parse_ms(data.get("createdDateMs")),
        acknowledged_at=parse_ms(data.get("acknowledgedDateMs")),
        description=_text(data.get("description")),
        external_ref=_text(data.get("externalRef")),
        instruction_ref=_text(data.get("instructionRef")),
        tracking_status=_text(data.get("trackingStatus")),
        receiver_bank=_text(data.get("receiverBank")),
        receiver_bank_account=_text(data.get("receiverBankAccount")),
        raw=_plain(dict(data)),
    )


_ITEM_STATUS = {
    "SUCCESS": CheckStatus.PAID,
    "SUCCESSFUL": CheckStatus.PAID,
    "FOUND": CheckStatus.PAID,
    "PAID": CheckStatus.PAID,
    "NOT_FOUND": CheckStatus.NOT_FOUND,
    "NOTFOUND": CheckStatus.NOT_FOUND,
    "STATIC_QR": CheckStatus.STATIC_QR,
    "FAILED": CheckStatus.FAILED,
    "FAIL": CheckStatus.FAILED,
}
_ITEM_CODE = {0: CheckStatus.PAID, 1: CheckStatus.NOT_FOUND, 2: CheckStatus.STATIC_QR, 3: CheckStatus.FAILED}


def _item_transaction(item: Mapping[str, Any]) -> Any:
    for key in ("data", "transaction"):
        inner = item.get(key)
        if isinstance(inner, Mapping):
            return inner
    if "amount" in item and ("hash" in item or "currency" in item):
        return item
    return None


def _item_message(item: Mapping[str, Any]) -> str:
    message = item.get("message") or item.get("responseMessage") or ""
    if message.__class__ is str and len(message) <= _MESSAGE_LIMIT:
        return message
    return _short(message)


def _item_outcome(key: str, item: Any, label: str) -> CheckOutcome:
    if item.__class__ is not dict and not isinstance(item, Mapping):
        err = MalformedResponse(f"Bakong's list item for {key} is not an object", endpoint=label)
        return CheckOutcome(key, CheckStatus.REFUSED, message=err.message, error=err, raw=_plain(item))
    raw = item.get("status")
    status = _ITEM_STATUS.get(raw) if raw.__class__ is str else None
    if status is not None and status is not CheckStatus.PAID:
        return CheckOutcome(key, status, message=_item_message(item), raw=_plain(item))  # the common case
    message = _item_message(item)
    raw_status = _text(raw)
    if status is None and raw_status:
        status = _ITEM_STATUS.get(raw_status.strip().upper())
    if status is not None and status is not CheckStatus.PAID:
        return CheckOutcome(key, status, message=message, raw=_plain(item))
    tx_data = _item_transaction(item)
    if status is None and raw_status is None:
        code = _as_int(item.get("errorCode"))
        if code is None and _as_int(item.get("responseCode")) == 0:
            code = 0
        status = _ITEM_CODE.get(code) if code is not None else (CheckStatus.PAID if tx_data is not None else None)
    if status is None:
        shown = raw_status or "an item without a status"
        err = UnknownRefusal(f"Bakong answered {shown} for {key}" + (f": {message}" if message else ""), endpoint=label)
        return CheckOutcome(key, CheckStatus.REFUSED, message=message or shown, error=err, raw=_plain(item))
    if status is CheckStatus.PAID:
        try:
            tx = parse_transaction(tx_data, endpoint=label)
        except MalformedResponse as exc:
            return CheckOutcome(key, CheckStatus.REFUSED, message=exc.message, error=exc, raw=_plain(item))
        return CheckOutcome(key, status, transaction=tx, message=message, raw=_plain(item))
    return CheckOutcome(key, status, message=message, raw=_plain(item))


def parse_list(data: Any, keys: Sequence[str], *, key_field: str, endpoint: Endpoint) -> dict[str, CheckOutcome]:
    """The outcome for every key of a bulk request (``key_field``: "md5" or "hash").

    Items are matched by their key field; items without one are matched by position. A key the
    answer does not mention is REFUSED (no answer is not a "not found").
    """
    label = endpoint.label
    if not isinstance(data, list):
        raise MalformedResponse(f"Bakong's bulk answer on {label} has no list of items", endpoint=label)
    wanted = {k.lower(): k for k in keys}
    positional = len(data) == len(keys)
    found: dict[str, CheckOutcome] = {}
    for index, item in enumerate(data):
        item_key = item.get(key_field) if item.__class__ is dict or isinstance(item, Mapping) else None
        if item_key.__class__ is str:
            key = wanted.get(item_key) or wanted.get(item_key.strip().lower())
        elif item_key is None and positional:
            key = keys[index]
        else:
            key = None
        if key is None or key in found:
            continue
        found[key] = _item_outcome(key, item, label)
    for key in keys:
        if key not in found:
            err = MalformedResponse(f"Bakong's bulk answer says nothing about {key}", endpoint=label)
            found[key] = CheckOutcome(key, CheckStatus.REFUSED, message=err.message, error=err)
    return {key: found[key] for key in keys}


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def parse_account(account_id: str, envelope: Envelope) -> AccountInfo:
    data = envelope.data if isinstance(envelope.data, Mapping) else {}
    return AccountInfo(
        account_id=_text(data.get("bakongAccountId")) or account_id,
        message=envelope.message,
        account_status=_text(data.get("accountStatus")),
        kyc_status=_text(data.get("kycStatus")),
        can_receive=_bool(data.get("canReceive")),
        frozen=_bool(data.get("frozen")),
        full_name=_text(data.get("fullName")),
        raw=_plain(envelope.raw),
    )


def parse_deeplink(envelope: Envelope) -> DeepLink:
    data = envelope.data if isinstance(envelope.data, Mapping) else {}
    short = _text(data.get("shortLink"))
    full = _text(data.get("fullLink"))
    if not short and not full:
        raise MalformedResponse("Bakong's deep link answer has no link", endpoint=Endpoint.DEEPLINK.label)
    return DeepLink(short_link=short or full or "", full_link=full, raw=_plain(envelope.raw))


def parse_token(envelope: Envelope) -> str:
    """The fresh token of a renew_token answer (under ``data.token``, or ``data`` itself)."""
    data = envelope.data
    token = data.get("token") if isinstance(data, Mapping) else data
    if not isinstance(token, str) or not token.strip():
        raise MalformedResponse("Bakong's renew_token answer has no token", endpoint=Endpoint.RENEW_TOKEN.label)
    return token.strip()
