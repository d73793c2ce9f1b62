"""The value of each KHQR field the SDK checks on its own: amount, currency, category code, expiry.

Each function takes what a caller passed (any Python type, read as the SDK reads a JavaScript
value) and answers the field's text or raises the ``KHQRError`` the SDK would; ``generate`` puts
the answers together into the string.
"""

from __future__ import annotations

from decimal import Decimal
from re import compile as _re

from engine.khqr.errors import KHQRError
from engine.khqr.jsnum import js_number, js_number_to_string

__all__ = ["amount_text", "currency_code", "expiration_text", "is_static", "merchant_category_code"]

_CURRENCY_BY_TEXT = {"KHR": "116", "USD": "840", "116": "116", "840": "840"}
_CURRENCY_BY_INT = {116: "116", 840: "840"}
_NUMERIC_TEXT = _re(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
ASCII_DIGITS = _re(r"[0-9]+\Z")
#: A JavaScript Date holds at most 8.64e15 ms either side of the epoch.
_MAX_DATE_MS = 8.64e15
_MIN_13_DIGITS = 1_000_000_000_000
_MAX_13_DIGITS = 9_999_999_999_999


# --- amount --------------------------------------------------------------------------------------


def is_static(amount: object) -> bool:
    """The SDK's ``amount == undefined || amount == 0`` (JavaScript loose equality)."""
    if amount is None:
        return True
    if type(amount) is str:
        return js_number(amount) == 0
    if isinstance(amount, bool):
        return False
    if isinstance(amount, Decimal):
        return not amount.is_nan() and amount == 0
    if isinstance(amount, (int, float)):
        return amount == 0
    return False


def amount_text(amount: object, khr: bool) -> str:
    """Tag 54's value, or KHQRError 4."""
    kind = type(amount)
    if kind is Decimal:
        text = _decimalamount_text(amount, khr)  # type: ignore[arg-type]
    elif kind is int:
        text = str(amount)
    elif kind is float:
        text = _floatamount_text(amount, khr)  # type: ignore[arg-type]
    elif kind is str:
        if not _NUMERIC_TEXT.match(amount):  # type: ignore[arg-type]
            raise KHQRError(4, f"{amount!r} is not a number", field="amount")
        if not khr and ASCII_DIGITS.match(amount):  # type: ignore[arg-type]
            text = amount  # type: ignore[assignment]  # the SDK writes digit strings verbatim ("0100")
        else:
            text = _decimalamount_text(Decimal(amount), khr)  # type: ignore[arg-type]
    else:
        raise KHQRError(4, f"amount must be an int, Decimal or numeric str, got {kind.__name__}", field="amount")
    if len(text) > 13 or "-" in text:
        raise KHQRError(4, f"{text} does not fit the 13 characters of a positive amount", field="amount")
    return text


def _decimalamount_text(value: Decimal, khr: bool) -> str:
    text = str(value)
    whole, dot, decimals = text.partition(".")
    if whole.isdigit() and whole.isascii() and (not dot or (decimals.isdigit() and decimals.isascii())):
        # Plain positional notation: decide on the digits themselves.
        if not dot:
            return whole
        if khr:
            if decimals.strip("0"):
                raise KHQRError(4, f"KHR takes whole riel, got {value}", field="amount")
            return whole
        if len(decimals) > 2:
            raise KHQRError(4, f"USD takes at most 2 decimals, got {value}", field="amount")
        return text if len(decimals) == 2 else text + "0"
    # Exponent notation, sign, NaN or infinity.
    if not value.is_finite() or value < 0:
        raise KHQRError(4, f"{value} is not a positive amount", field="amount")
    if value.adjusted() >= 13:
        raise KHQRError(4, f"{value} does not fit the 13 characters of an amount", field="amount")
    if value != value.to_integral_value():
        if khr:
            raise KHQRError(4, f"KHR takes whole riel, got {value}", field="amount")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -2:
            raise KHQRError(4, f"USD takes at most 2 decimals, got {value}", field="amount")
        return f"{value:.2f}"
    return str(int(value))


def _floatamount_text(value: float, khr: bool) -> str:
    """A float read as the SDK reads a JavaScript number."""
    if value != value or value < 0 or value in (float("inf"), float("-inf")):
        raise KHQRError(4, f"{value} is not a positive amount", field="amount")
    if khr:
        if value % 1 != 0:
            raise KHQRError(4, f"KHR takes whole riel, got {value}", field="amount")
        return str(int(value))
    text = js_number_to_string(value)
    if "e" in text:
        raise KHQRError(4, f"{text} is not a usable amount", field="amount")
    _, dot, decimals = text.partition(".")
    if dot:
        if len(decimals) > 2:
            raise KHQRError(4, f"USD takes at most 2 decimals, got {text}", field="amount")
        return f"{value:.2f}"
    return text


# --- codes and timestamps ------------------------------------------------------------------------


def currency_code(value: object) -> str:
    if value is None or value == "" or (type(value) is int and value == 0):
        return "116"  # the SDK drops empty optionals and defaults to KHR
    if type(value) is str:
        code = _CURRENCY_BY_TEXT.get(value.upper())
        if code is None:
            raise KHQRError(19 if len(value) > 3 else 28, f"{value!r}: use KHR, USD, 116 or 840", field="currency")
        return code
    if type(value) is int:
        code = _CURRENCY_BY_INT.get(value)
        if code is None:
            raise KHQRError(28, f"{value}: use KHR, USD, 116 or 840", field="currency")
        return code
    raise KHQRError(28, f"{value!r}: use KHR, USD, 116 or 840", field="currency")


def merchant_category_code(value: object) -> str:
    if value is None or value == "" or (type(value) is int and value == 0):
        return "5999"  # the SDK drops empty optionals (0 included) and uses its default
    if type(value) is int:
        text = str(value)
    elif type(value) is str:
        text = value
    else:
        raise KHQRError(51, f"{value!r} is not a 4-digit code", field="merchant_category_code")
    if len(text) > 4:
        raise KHQRError(18, f"{text!r} is longer than 4 digits", field="merchant_category_code")
    if not ASCII_DIGITS.match(text):
        raise KHQRError(51, f"{text!r} is not numeric", field="merchant_category_code")
    return text


def expiration_text(value: object, creation_ms: int) -> str:
    """Tag 99 sub-tag 01, checked as the SDK's TimeStamp does (codes 45, 49, 47, 50)."""
    if type(value) is int and _MIN_13_DIGITS <= value <= _MAX_13_DIGITS:
        if value < creation_ms:
            raise KHQRError(50, f"{value} is before the creation time {creation_ms}", field="expiration_timestamp")
        return str(value)
    if value is None or value == "" or value is False or value == 0:
        raise KHQRError(45, field="expiration_timestamp")
    if type(value) is str:
        number = js_number(value)
    elif type(value) is int:
        if abs(value) >= 1e21:
            raise KHQRError(49, f"{value} is not 13 digits of milliseconds", field="expiration_timestamp")
        number = float(value)
    elif type(value) is float:
        number = value
    else:
        raise KHQRError(49, f"expected epoch milliseconds, got {type(value).__name__}", field="expiration_timestamp")
    if not number:  # NaN or 0
        raise KHQRError(45, field="expiration_timestamp")
    text = js_number_to_string(number)
    if len(text) != 13:
        raise KHQRError(49, f"{text} is not 13 digits of milliseconds", field="expiration_timestamp")
    if abs(number) > _MAX_DATE_MS:
        raise KHQRError(47, f"{text} is not a date", field="expiration_timestamp")
    if number < creation_ms:
        raise KHQRError(50, f"{text} is before the creation time {creation_ms}", field="expiration_timestamp")
    if not text.isdigit():
        raise KHQRError(49, f"{text} is not whole milliseconds", field="expiration_timestamp")
    return text
