"""Generating a KHQR string, byte for byte as the NBC SDK (bakong-khqr 1.0.20) does.

Fields are checked in the SDK's order, so the error raised for an input with several problems is
the one the SDK reports first: UnionPay account, account information (tag 29/30), merchant
category code, currency, amount, merchant name, city, additional data, language template,
timestamps. Where the SDK would emit a broken string (a JavaScript ``TypeError`` as the QR, a
field longer than 99 characters written with a 3-digit length, an amount in exponent form), this
module raises a ``KHQRError`` that says what is wrong instead.
"""

from __future__ import annotations

from binascii import crc_hqx
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from hashlib import md5 as _md5
from re import compile as _re

from engine.clock import SystemClock
from engine.khqr.crc import utf8
from engine.khqr.errors import KHQRError
from engine.khqr.info import IndividualInfo, KHQRResult, MerchantInfo
from engine.khqr.jsnum import js_number, js_number_to_string
from engine.khqr.tlv import utf16_len

__all__ = ["current_ms", "generate"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

_CURRENCY_BY_TEXT = {"KHR": "116", "USD": "840", "116": "116", "840": "840"}
_CURRENCY_BY_INT = {116: "116", 840: "840"}
_NUMERIC_TEXT = _re(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_ASCII_DIGITS = _re(r"[0-9]+\Z")
#: Tag 99's limits: a JavaScript Date holds at most 8.64e15 ms either side of the epoch.
_MAX_DATE_MS = 8.64e15


def current_ms() -> int:
    """The current time in epoch milliseconds, from the engine's clock."""
    return (SystemClock().now() - _EPOCH) // _ONE_MS


def _text(value: object, code: int, name: str) -> str | None:
    """An optional text field: None for absent (None or ""), ints written in decimal."""
    if value is None:
        return None
    if type(value) is str:
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise KHQRError(code, f"{name} must be text, got {type(value).__name__}", field=name)


def _length(value: str) -> int:
    return len(value) if value.isascii() else utf16_len(value)


def _check_length(value: str, limit: int, code: int, name: str) -> int:
    n = len(value) if value.isascii() else utf16_len(value)
    if n > limit:
        raise KHQRError(code, f"{name} is {n} characters, at most {limit} allowed", field=name)
    return n


def _is_static(amount: object) -> bool:
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


def _amount_text(amount: object, khr: bool) -> str:
    """Tag 54's value, or KHQRError 4."""
    kind = type(amount)
    if kind is float:
        text = _float_amount_text(amount, khr)  # type: ignore[arg-type]
    elif kind is int:
        text = str(amount)
    elif kind is str:
        if not _NUMERIC_TEXT.match(amount):  # type: ignore[arg-type]
            raise KHQRError(4, f"{amount!r} is not a number", field="amount")
        if not khr and _ASCII_DIGITS.match(amount):  # type: ignore[arg-type]
            text = amount  # type: ignore[assignment]  # the SDK writes digit strings verbatim ("0100")
        else:
            text = _decimal_amount_text(Decimal(amount), khr)  # type: ignore[arg-type]
    elif kind is Decimal:
        text = _decimal_amount_text(amount, khr)  # type: ignore[arg-type]
    else:
        raise KHQRError(4, f"amount must be an int, Decimal or numeric str, got {kind.__name__}", field="amount")
    if len(text) > 13 or "-" in text:
        raise KHQRError(4, f"{text} does not fit the 13 characters of a positive amount", field="amount")
    return text


def _decimal_amount_text(value: Decimal, khr: bool) -> str:
    if not value.is_finite() or value < 0:
        raise KHQRError(4, f"{value} is not a positive amount", field="amount")
    if value.adjusted() >= 13:
        raise KHQRError(4, f"{value} does not fit the 13 characters of an amount", field="amount")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if khr:
        if value != value.to_integral_value():
            raise KHQRError(4, f"KHR takes whole riel, got {value}", field="amount")
        return str(int(value))
    if exponent < -2:
        raise KHQRError(4, f"USD takes at most 2 decimals, got {value}", field="amount")
    if exponent < 0:
        return f"{value:.2f}"
    return str(int(value))


def _float_amount_text(value: float, khr: bool) -> str:
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


def _currency(value: object) -> str:
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


def _merchant_category_code(value: object) -> str:
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
    if not _ASCII_DIGITS.match(text):
        raise KHQRError(51, f"{text!r} is not numeric", field="merchant_category_code")
    return text


def _expiration_text(value: object, creation_ms: int) -> str:
    """Tag 99 sub-tag 01, checked as the SDK's TimeStamp does (codes 45, 49, 47, 50, 46)."""
    if value is None or value == "" or value is False or value == 0:
        raise KHQRError(45, field="expiration_timestamp")
    if type(value) is str:
        number = js_number(value)
    elif type(value) is int:
        number = float(value) if abs(value) < 1e21 else None
        if number is None:
            raise KHQRError(49, f"{value} is not 13 digits of milliseconds", field="expiration_timestamp")
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


def _too_long(tag: str, size: int, code: int, name: str) -> KHQRError:
    # The SDK writes such a field with a 3-digit length, which no reader (its own included) can parse.
    return KHQRError(code, f"tag {tag} would be {size} characters with {name}; a KHQR field holds at most 99", field=name)


def generate(info: IndividualInfo | MerchantInfo, *, now_ms: int | None = None) -> KHQRResult:
    """Build the KHQR string for ``info`` and its MD5.

    ``now_ms`` is the creation timestamp written into a dynamic QR (default: the engine clock);
    pass it for reproducible output. Raises ``KHQRError`` with the SDK's code.
    """
    if isinstance(info, MerchantInfo):
        is_merchant = True
    elif isinstance(info, IndividualInfo):
        is_merchant = False
    else:
        raise KHQRError(5, f"expected IndividualInfo or MerchantInfo, got {type(info).__name__}")

    amount = info.amount
    dynamic = not _is_static(amount)

    parts = ["000201010212" if dynamic else "000201010211"]

    upi = _text(info.upi_account_information, 43, "upi_account_information")
    if upi is not None:
        n = _check_length(upi, 99, 43, "upi_account_information")
        parts.append(f"15{n:02d}{upi}")

    # Tag 29 (individual) or 30 (merchant): account id, then account information / merchant id,
    # then acquiring bank.
    account = info.bakong_account_id
    if account is None or account == "":
        raise KHQRError(1, field="bakong_account_id")
    if type(account) is not str:
        raise KHQRError(3, f"must be text, got {type(account).__name__}", field="bakong_account_id")
    n = _check_length(account, 32, 6, "bakong_account_id")
    if "@" not in account:
        raise KHQRError(3, f"{account!r} is not of the form name@bank", field="bakong_account_id")
    guid = f"00{n:02d}{account}"
    if is_merchant:
        merchant_id = _text(info.merchant_id, 32, "merchant_id")  # type: ignore[union-attr]
        if merchant_id is None:
            raise KHQRError(30, field="merchant_id")
        n = _check_length(merchant_id, 32, 32, "merchant_id")
        bank = _text(info.acquiring_bank, 33, "acquiring_bank")
        if bank is None:
            raise KHQRError(31, field="acquiring_bank")
        m = _check_length(bank, 32, 33, "acquiring_bank")
        guid = f"{guid}01{n:02d}{merchant_id}02{m:02d}{bank}"
        tag = "30"
    else:
        account_information = _text(info.account_information, 35, "account_information")  # type: ignore[union-attr]
        if account_information is not None:
            n = _check_length(account_information, 32, 35, "account_information")
            guid = f"{guid}01{n:02d}{account_information}"
        bank = _text(info.acquiring_bank, 33, "acquiring_bank")
        if bank is not None:
            m = _check_length(bank, 32, 33, "acquiring_bank")
            guid = f"{guid}02{m:02d}{bank}"
        tag = "29"
    size = _length(guid)
    if size > 99:
        raise _too_long(tag, size, 33 if bank is not None else 35, "acquiring_bank" if bank is not None else "account_information")
    parts.append(f"{tag}{size:02d}{guid}")

    mcc = _merchant_category_code(info.merchant_category_code)
    parts.append(f"52{len(mcc):02d}{mcc}")

    currency = _currency(info.currency)
    if currency == "840" and upi is not None:
        raise KHQRError(44, "a UnionPay account takes KHR only", field="upi_account_information")
    parts.append(f"5303{currency}")

    if dynamic:
        amount_text = _amount_text(amount, currency == "116")
        parts.append(f"54{len(amount_text):02d}{amount_text}")

    parts.append("5802KH")

    name = _text(info.merchant_name, 7, "merchant_name")
    if name is None:
        raise KHQRError(2, field="merchant_name")
    n = _check_length(name, 25, 7, "merchant_name")
    parts.append(f"59{n:02d}{name}")

    city = _text(info.merchant_city, 21, "merchant_city") or "Phnom Penh"
    n = _check_length(city, 15, 21, "merchant_city")
    parts.append(f"60{n:02d}{city}")

    additional = ""
    for sub, value, code, field in (
        ("01", info.bill_number, 10, "bill_number"),
        ("02", info.mobile_number, 34, "mobile_number"),
        ("03", info.store_label, 11, "store_label"),
        ("07", info.terminal_label, 12, "terminal_label"),
        ("08", info.purpose_of_transaction, 42, "purpose_of_transaction"),
    ):
        text = _text(value, code, field)
        if text is not None:
            n = _check_length(text, 25, code, field)
            additional = f"{additional}{sub}{n:02d}{text}"
            if (size := _length(additional)) > 99:
                raise _too_long("62", size, code, field)
    if additional:
        parts.append(f"62{_length(additional):02d}{additional}")

    preference = _text(info.language_preference, 38, "language_preference")
    alternate_name = _text(info.merchant_name_alternate_language, 40, "merchant_name_alternate_language")
    alternate_city = _text(info.merchant_city_alternate_language, 41, "merchant_city_alternate_language")
    if preference is not None or alternate_name is not None or alternate_city is not None:
        if preference is not None and alternate_name is None:
            raise KHQRError(39, "a language preference needs the merchant name in that language",
                            field="merchant_name_alternate_language")
        template = ""
        if alternate_name is not None:
            if preference is None:
                raise KHQRError(37, "the merchant name in another language needs its language preference",
                                field="language_preference")
            n = _check_length(preference, 2, 38, "language_preference")
            m = _check_length(alternate_name, 25, 40, "merchant_name_alternate_language")
            template = f"00{n:02d}{preference}01{m:02d}{alternate_name}"
        if alternate_city is not None:
            n = _check_length(alternate_city, 15, 41, "merchant_city_alternate_language")
            template = f"{template}02{n:02d}{alternate_city}"
        parts.append(f"64{_length(template):02d}{template}")

    if dynamic:
        creation = current_ms() if now_ms is None else now_ms
        expiration = _expiration_text(info.expiration_timestamp, creation)
        created = str(creation)
        stamps = f"00{len(created):02d}{created}0113{expiration}"
        parts.append(f"99{len(stamps):02d}{stamps}")

    parts.append("6304")
    body = "".join(parts)
    raw = utf8(body)
    crc = f"{crc_hqx(raw, 0xFFFF):04X}"
    return KHQRResult(qr=body + crc, md5=_md5(raw + crc.encode(), usedforsecurity=False).hexdigest())
