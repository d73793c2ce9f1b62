"""Checking a KHQR string: ``validate`` raises the reason it is invalid, ``verify`` answers yes/no.

The verdict is the NBC SDK's ``verify``: the string must end with ``6304`` and a CRC matching
everything before it (either hex case), be at least 12 characters, carry the required tags, and
every field must pass the SDK's rules, checked in the order the fields appear. A dynamic QR
(point of initiation ``12``) needs an amount and tag 99, whose expiration must be 13 digits, not
before the creation time and not in the past (``now_ms``, default: the engine clock).

Like the SDK, the tag order is not checked and repeated tags are each checked. Where the SDK
fails with a JavaScript ``TypeError`` (a merchant name in another language without its language
preference), ``validate`` raises code 37; where it would loop forever, reading stops there.
"""

from __future__ import annotations

from binascii import crc_hqx

from engine.khqr.crc import utf8
from engine.khqr.decode import TEMPLATE_FIELDS
from engine.khqr.errors import KHQRError
from engine.khqr.generate import current_ms
from engine.khqr.jsnum import js_number, js_number_to_string, js_parse_int
from engine.khqr.tlv import read_fields, template_fields, to_units

__all__ = ["validate", "verify"]

_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
#: Required tags in the SDK's order, with the code reported when each is missing.
#: Tags whose only rule is a length: tag -> (maximum, code when longer, code when empty).
_LENGTH_RULES = {"00": (2, 16, 23), "58": (3, 20, 26), "59": (25, 7, 2), "60": (15, 21, 27), "63": (4, 22, 24)}
_REQUIRED_CODES = {"00": 23, "29": 5, "52": 25, "53": 9, "58": 26, "59": 2, "60": 27, "63": 24}
_ADDITIONAL_RULES = (
    ("bill_number", 10),
    ("mobile_number", 34),
    ("store_label", 11),
    ("terminal_label", 12),
    ("purpose_of_transaction", 42),
)
_MAX_DATE_MS = 8.64e15
# In validation the SDK names sub-tag 01 of tag 29 and 30 alike "account information".
_ACCOUNT_FIELDS = TEMPLATE_FIELDS["29"]
_ADDITIONAL_FIELDS = TEMPLATE_FIELDS["62"]
_LANGUAGE_FIELDS = TEMPLATE_FIELDS["64"]
_TIMESTAMP_FIELDS = TEMPLATE_FIELDS["99"]


def verify(qr: str, *, now_ms: int | None = None) -> bool:
    """True when ``qr`` is a valid KHQR (the SDK's verdict). Never raises."""
    try:
        validate(qr, now_ms=now_ms)
    except KHQRError:
        return False
    return True


def validate(qr: str, *, now_ms: int | None = None) -> None:
    """Return if ``qr`` is a valid KHQR, else raise the ``KHQRError`` that makes it invalid."""
    if not isinstance(qr, str):
        raise KHQRError(8, f"a KHQR is a string, got {type(qr).__name__}")
    checksum = qr[-4:]
    if len(qr) < 8 or qr[-8:-4] != "6304" or not _HEX.issuperset(checksum):
        raise KHQRError(24, "a KHQR ends with 6304 and 4 hex digits")
    try:
        content = qr[:-4].encode()
    except UnicodeEncodeError:
        content = utf8(qr[:-4])
    expected = f"{crc_hqx(content, 0xFFFF):04X}"
    if expected != checksum.upper():
        raise KHQRError(8, f"CRC is {checksum} but the content gives {expected}")
    units, _ = to_units(qr)
    if len(units) < 12:
        raise KHQRError(8, "too short to be a KHQR")
    _check_fields(units, now_ms)


def _check_fields(units: str, now_ms: int | None) -> None:
    """The SDK's ``decodeKHQRValidation``: structure first, then each field in order.

    One pass reads and checks; the first field error is kept and raised only after the
    structural errors the SDK reports before it (47, 45, then the first missing required tag).
    """
    missing = _REQUIRED_CODES.copy()
    dynamic = has_amount = has_timestamps = False
    poi: str | None = None
    error: KHQRError | None = None
    length_rules = _LENGTH_RULES
    for tag, value in read_fields(units):
        rule = length_rules.get(tag)
        if rule is not None:  # 00, 58, 59, 60, 63: required, and only a length to check
            missing.pop(tag, None)
            if error is None and not 0 < len(value) <= rule[0]:
                error = KHQRError(rule[1] if value else rule[2], f"{value!r} ({len(value)} characters)")
        elif tag == "29" or tag == "30":
            missing.pop("29", None)
            if error is None:
                error = _error_of(_check_account, template_fields(value, _ACCOUNT_FIELDS))
        elif tag == "01":
            poi = value
            if value == "12":
                dynamic = True
            elif error is None and value != "11":
                error = KHQRError(17 if len(value) > 2 else 48, f"{value!r}: 11 (static) or 12 (dynamic)")
        elif tag == "52":
            missing.pop("52", None)
            if error is None and (not 0 < len(value) <= 4 or not _DIGITS.issuperset(value)):
                error = KHQRError(25 if not value else 18 if len(value) > 4 else 51, f"{value!r}")
        elif tag == "53":
            missing.pop("53", None)
            if error is None and value != "116" and value != "840":
                error = _error_of(_check_currency, value)
        elif tag == "54":
            has_amount = True
            if error is None and (not 0 < len(value) <= 13 or "-" in value):
                error = KHQRError(4, f"{value!r}")
        elif tag == "62":
            if error is None:
                error = _error_of(_check_additional, template_fields(value, _ADDITIONAL_FIELDS))
        elif tag == "99":
            has_timestamps = True
            if error is None and poi == "12":
                try:
                    _check_timestamps(template_fields(value, _TIMESTAMP_FIELDS), now_ms)
                except KHQRError as exc:
                    error = exc
        elif tag == "64":
            if error is None:
                error = _error_of(_check_language, template_fields(value, _LANGUAGE_FIELDS))
        # Tag 15 (UnionPay) only fails above 99 characters, which a 2-digit length cannot
        # declare; other tags are not read by the SDK.

    if dynamic:
        if not has_amount:
            raise KHQRError(47, "a dynamic KHQR (point of initiation 12) needs an amount (tag 54)")
        if not has_timestamps:
            raise KHQRError(45, "a dynamic KHQR needs tag 99")
    if has_amount and not has_timestamps:
        raise KHQRError(45, "a KHQR with an amount needs tag 99")
    if missing:
        tag, code = next(iter(missing.items()))
        raise KHQRError(code, f"tag {tag} is missing")
    if error is not None:
        raise error


def _error_of(check, fields) -> KHQRError | None:  # noqa: ANN001
    """The KHQRError ``check(fields)`` raises, or None."""
    try:
        check(fields)
    except KHQRError as exc:
        return exc
    return None


def _check_currency(value: str) -> None:
    if value == "":
        raise KHQRError(9)
    if len(value) > 3:
        raise KHQRError(19, f"{value!r}")
    if js_parse_int(value) not in (116, 840):
        raise KHQRError(28, f"{value!r}")


def _check_account(fields: dict[str, str]) -> None:
    account = fields.get("bakong_account_id")
    if not account:
        raise KHQRError(1)
    if len(account) > 32:
        raise KHQRError(6, f"{len(account)} characters")
    if "@" not in account:
        raise KHQRError(3, f"{account!r}")
    information = fields.get("account_information")
    if information is not None and len(information) > 32:
        raise KHQRError(35, f"{len(information)} characters")
    bank = fields.get("acquiring_bank")
    if bank is not None:
        if bank == "":
            raise KHQRError(31)
        if len(bank) > 32:
            raise KHQRError(33, f"{len(bank)} characters")


def _check_additional(fields: dict[str, str]) -> None:
    for name, code in _ADDITIONAL_RULES:
        value = fields.get(name)
        if value is not None and (value == "" or len(value) > 25):
            raise KHQRError(code, f"{len(value)} characters")


def _check_language(fields: dict[str, str]) -> None:
    preference = fields.get("language_preference")
    name = fields.get("merchant_name_alternate_language")
    city = fields.get("merchant_city_alternate_language")
    if preference and not name:
        raise KHQRError(39)
    if name is not None:
        if preference is None:
            raise KHQRError(37, "the merchant name in another language needs its language preference")
        if preference == "" or len(preference) > 2:
            raise KHQRError(38, f"{preference!r}")
        if name == "" or len(name) > 25:
            raise KHQRError(40, f"{len(name)} characters")
    if city is not None and (city == "" or len(city) > 15):
        raise KHQRError(41, f"{len(city)} characters")


def _as_number(text: str | None) -> float | None:
    """JavaScript's ``Number(x)`` for a sub-field that may be absent (``Number(null)`` is 0)."""
    if text is None:
        return 0.0
    if len(text) == 13 and text[0] != "0" and _DIGITS.issuperset(text):
        return float(int(text))
    return js_number(text)


def _check_timestamps(fields: dict[str, str], now_ms: int | None) -> None:
    """Tag 99 of a dynamic QR, as the SDK's TimeStamp checks it (45, 49, 47, 50, 46)."""
    text = fields.get("expiration_timestamp")
    created = fields.get("creation_timestamp")
    if (
        text is not None and len(text) == 13 and text[0] != "0" and _DIGITS.issuperset(text)
        and created is not None and len(created) == 13 and _DIGITS.issuperset(created)
    ):
        expiration: float | None = int(text)
        creation: float | None = int(created)
    else:
        expiration = _as_number(text)
        if not expiration:  # 0, absent or NaN
            raise KHQRError(45, "tag 99 has no expiration timestamp")
        if len(js_number_to_string(expiration)) != 13:
            raise KHQRError(49, f"{text!r}")
        if abs(expiration) > _MAX_DATE_MS:
            raise KHQRError(47, f"{text!r} is not a date")
        creation = _as_number(created)
    if creation is not None and expiration < creation:  # type: ignore[operator]
        raise KHQRError(50, f"expires at {text}, before its creation")
    now = current_ms() if now_ms is None else now_ms
    if expiration < now:  # type: ignore[operator]
        raise KHQRError(46, f"expired at {text}")
