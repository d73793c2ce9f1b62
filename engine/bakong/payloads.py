"""The data of Bakong's successful answers: amounts, timestamps, transactions, bulk list items,
account checks, deep links and renewed tokens (the envelope around them is ``parsing``'s).

Amounts become ``Decimal`` (JSON numbers or strings); millisecond timestamps arrive as integers or
floats; a bulk list item holds its transaction under ``data``, under ``transaction``, or inline;
unknown fields are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.bakong.environments import Endpoint
from engine.bakong.models import AccountInfo, CheckOutcome, CheckStatus, DeepLink, Transaction
from engine.bakong.parsing import MESSAGE_LIMIT, Envelope, as_int, short_message
from engine.errors import MalformedResponse, UnknownRefusal

__all__ = ["parse_account", "parse_amount", "parse_deeplink", "parse_list", "parse_ms", "parse_token", "parse_transaction"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
    if message.__class__ is str and len(message) <= MESSAGE_LIMIT:
        return message
    return short_message(message)


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
        code = as_int(item.get("errorCode"))
        if code is None and as_int(item.get("responseCode")) == 0:
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
