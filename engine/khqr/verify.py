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

from engine.khqr.crc import crc16
from engine.khqr.decode import KHQR_TAGS, TEMPLATE_FIELDS
from engine.khqr.errors import KHQRError
from engine.khqr.generate import current_ms
from engine.khqr.jsnum import js_number, js_number_to_string, js_parse_int
from engine.khqr.tlv import cut, to_units

__all__ = ["validate", "verify"]

_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
#: Required tags in the SDK's order, with the code reported when each is missing.
_REQUIRED = (("00", 23), ("29", 5), ("52", 25), ("53", 9), ("58", 26), ("59", 2), ("60", 27), ("63", 24))
_ADDITIONAL_RULES = (
    ("bill_number", 10),
    ("mobile_number", 34),
    ("store_label", 11),
    ("terminal_label", 12),
    ("purpose_of_transaction", 42),
)
_MAX_DATE_MS = 8.64e15


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
    size = len(qr)
    checksum = qr[-4:]
    if size < 8 or qr[-8:-4] != "6304" or not _HEX.issuperset(checksum):
        raise KHQRError(24, "a KHQR ends with 6304 and 4 hex digits")
    expected = crc16(qr[:-4])
    if expected != checksum.upper():
        raise KHQRError(8, f"CRC is {checksum} but the content gives {expected}")
    units, _ = to_units(qr)
    if len(units) < 12:
        raise KHQRError(8, "too short to be a KHQR")
    _check_fields(units, now_ms)


def _fields(tag: str, value: str) -> dict[str, str] | None:
    """A template's known sub-fields, or None when it has none (the SDK then keeps the raw text)."""
    names = TEMPLATE_FIELDS[tag]
    found: dict[str, str] | None = None
    while value:
        sub, sub_value, after = cut(value)
        name = names.get(sub)
        if name is not None:
            if found is None:
                found = {}
            found[name] = sub_value
        if len(after) == len(value):
            break  # no progress: the SDK would spin here
        value = after
    return found


def _check_fields(units: str, now_ms: int | None) -> None:
    tags: list[tuple[str, str]] = []
    present: set[str] = set()
    last = ""
    rest = units
    while rest:
        tag, value, after = cut(rest)
        if tag == last:
            break
        if tag == "30":
            tag = "29"
        if tag in KHQR_TAGS:
            tags.append((tag, value))
            present.add(tag)
        if len(after) == len(rest):
            break  # no progress: the SDK would spin here
        rest = after
        last = tag

    if ("01", "12") in tags:
        if "54" not in present:
            raise KHQRError(47, "a dynamic KHQR (point of initiation 12) needs an amount (tag 54)")
        if "99" not in present:
            raise KHQRError(45, "a dynamic KHQR needs tag 99")
    if "54" in present and "99" not in present:
        raise KHQRError(45, "a KHQR with an amount needs tag 99")
    for tag, code in _REQUIRED:
        if tag not in present:
            raise KHQRError(code, f"tag {tag} is missing")

    poi: str | None = None
    for tag, value in tags:
        if tag == "29":
            _check_account(_fields("29", value))
        elif tag == "01":
            poi = value
            if len(value) > 2:
                raise KHQRError(17, f"{value!r}")
            if value != "11" and value != "12":
                raise KHQRError(48, f"{value!r}: 11 (static) or 12 (dynamic)")
        elif tag == "52":
            if value == "":
                raise KHQRError(25)
            if len(value) > 4:
                raise KHQRError(18, f"{value!r}")
            if not _DIGITS.issuperset(value):
                raise KHQRError(51, f"{value!r}")
        elif tag == "53":
            if value == "":
                raise KHQRError(9)
            if len(value) > 3:
                raise KHQRError(19, f"{value!r}")
            if value != "116" and value != "840" and js_parse_int(value) not in (116, 840):
                raise KHQRError(28, f"{value!r}")
        elif tag == "54":
            if len(value) > 13 or "-" in value or value == "":
                raise KHQRError(4, f"{value!r}")
        elif tag == "58":
            if value == "":
                raise KHQRError(26)
            if len(value) > 3:
                raise KHQRError(20, f"{value!r}")
        elif tag == "59":
            if value == "":
                raise KHQRError(2)
            if len(value) > 25:
                raise KHQRError(7, f"{len(value)} characters")
        elif tag == "60":
            if value == "":
                raise KHQRError(27)
            if len(value) > 15:
                raise KHQRError(21, f"{len(value)} characters")
        elif tag == "62":
            _check_additional(_fields("62", value))
        elif tag == "64":
            _check_language(_fields("64", value))
        elif tag == "99":
            if poi == "12":
                _check_timestamps(_fields("99", value), now_ms)
        elif tag == "63":
            if value == "":
                raise KHQRError(24)
            if len(value) > 4:
                raise KHQRError(22, f"{value!r}")
        elif tag == "00":
            if value == "":
                raise KHQRError(23)
            if len(value) > 2:
                raise KHQRError(16, f"{value!r}")
        # Tag 15 (UnionPay) only fails above 99 characters, which a 2-digit length cannot declare.


def _check_account(fields: dict[str, str] | None) -> None:
    fields = fields or {}
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


def _check_additional(fields: dict[str, str] | None) -> None:
    if fields is None:
        return
    for name, code in _ADDITIONAL_RULES:
        value = fields.get(name)
        if value is not None and (value == "" or len(value) > 25):
            raise KHQRError(code, f"{len(value)} characters")


def _check_language(fields: dict[str, str] | None) -> None:
    if fields is None:
        return
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


def _check_timestamps(fields: dict[str, str] | None, now_ms: int | None) -> None:
    if fields is None:
        raise KHQRError(45, "tag 99 has no expiration timestamp")
    text = fields.get("expiration_timestamp")
    expiration = _as_number(text)
    if not expiration:  # 0, absent or NaN
        raise KHQRError(45, "tag 99 has no expiration timestamp")
    if len(text) != 13 or text[0] == "0" or not _DIGITS.issuperset(text):  # type: ignore[arg-type]
        if len(js_number_to_string(expiration)) != 13:
            raise KHQRError(49, f"{text!r}")
        if abs(expiration) > _MAX_DATE_MS:
            raise KHQRError(47, f"{text!r} is not a date")
    creation = _as_number(fields.get("creation_timestamp"))
    if creation is not None and expiration < creation:
        raise KHQRError(50, f"expires at {text}, before its creation")
    now = current_ms() if now_ms is None else now_ms
    if expiration < now:
        raise KHQRError(46, f"expired at {text}")
