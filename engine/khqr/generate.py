"""Generating a KHQR string, byte for byte as the NBC SDK (bakong-khqr 1.0.20) does.

Fields are checked in the SDK's order, so the error raised for an input with several problems is
the one the SDK reports first: UnionPay account, account information (tag 29/30), merchant
category code, currency, amount, merchant name, city, additional data, language template,
timestamps. Where the SDK would emit a broken string (a JavaScript ``TypeError`` as the QR, a
field longer than 99 characters written with a 3-digit length, an amount in exponent form), this
module raises a ``KHQRError`` that says what is wrong instead.

Speed: the common inputs (ASCII text, ``Decimal``/``int`` amounts, an ``int`` expiration) take
short inline paths; anything else goes through the general checks, which give the same result.
"""

from __future__ import annotations

from binascii import crc_hqx
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from hashlib import md5 as _md5

from engine.clock import SystemClock
from engine.khqr.crc import utf8
from engine.khqr.errors import KHQRError
from engine.khqr.field_values import (
    amount_text,
    currency_code,
    expiration_text,
    is_static,
    merchant_category_code,
)
from engine.khqr.info import IndividualInfo, KHQRResult, MerchantInfo
from engine.khqr.tlv import utf16_len

__all__ = ["current_ms", "generate"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

_ADDITIONAL_FIELDS = ((10, "bill_number"), (34, "mobile_number"), (11, "store_label"), (12, "terminal_label"),
                      (42, "purpose_of_transaction"))


def current_ms() -> int:
    """The current time in epoch milliseconds, from the engine's clock."""
    return (SystemClock().now() - _EPOCH) // _ONE_MS


# --- text fields ---------------------------------------------------------------------------------


def _text(value: object, code: int, name: str) -> str | None:
    """An optional text field: None for absent (None or ""), ints written in decimal."""
    if value is None:
        return None
    if type(value) is str:
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if value else None  # JavaScript's `0 == ""`: the SDK drops it as empty
    raise KHQRError(code, f"{name} must be text, got {type(value).__name__}", field=name)


def _length(value: str) -> int:
    return len(value) if value.isascii() else utf16_len(value)


def _check_length(value: str, limit: int, code: int, name: str) -> int:
    n = len(value) if value.isascii() else utf16_len(value)
    if n > limit:
        raise KHQRError(code, f"{name} is {n} characters, at most {limit} allowed", field=name)
    return n


def _tlv(tag: str, value: object, limit: int, code: int, name: str) -> str:
    """One optional text field as TLV ("" when absent), length-checked in UTF-16 code units."""
    if type(value) is not str:
        value = _text(value, code, name)
        if value is None:
            return ""
    elif not value:
        return ""
    n = len(value) if value.isascii() else utf16_len(value)  # type: ignore[union-attr]
    if n > limit:
        raise KHQRError(code, f"{name} is {n} characters, at most {limit} allowed", field=name)
    return f"{tag}{n:02d}{value}"


def _account_tlv(account: object) -> str:
    """Sub-tag 00 of tag 29/30 with the SDK's checks, in its order (1, 6, 3)."""
    if account is None or account == "":
        raise KHQRError(1, field="bakong_account_id")
    if type(account) is not str:
        raise KHQRError(3, f"must be text, got {type(account).__name__}", field="bakong_account_id")
    n = _check_length(account, 32, 6, "bakong_account_id")
    if "@" not in account:
        raise KHQRError(3, f"{account!r} is not of the form name@bank", field="bakong_account_id")
    return f"00{n:02d}{account}"


def _additional_too_long(*values: object) -> KHQRError:
    """Tag 62 over 99 characters: the error names the first field that no longer fits."""
    present = [
        (text, code, name)
        for value, (code, name) in zip(values, _ADDITIONAL_FIELDS, strict=True)
        if (text := _text(value, code, name)) is not None
    ]
    total = sum(4 + _length(text) for text, _, _ in present)
    size = 0
    for text, code, name in present:
        size += 4 + _length(text)
        if size > 99:
            return _too_long("62", total, code, name)
    raise AssertionError("tag 62 is not over 99 characters")  # pragma: no cover


def _too_long(tag: str, size: int, code: int, name: str) -> KHQRError:
    # The SDK writes such a field with a 3-digit length, which no reader (its own included) can parse.
    return KHQRError(code, f"tag {tag} would be {size} characters with {name}; a KHQR field holds at most 99", field=name)


# --- the string ----------------------------------------------------------------------------------


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
    if type(amount) is Decimal:
        dynamic = amount.is_nan() or amount != 0
    elif type(amount) is int:
        dynamic = amount != 0
    else:
        dynamic = not is_static(amount)
    out = "000201010212" if dynamic else "000201010211"

    upi = info.upi_account_information
    has_upi = False
    if upi is not None:
        field = _tlv("15", upi, 99, 43, "upi_account_information")
        has_upi = bool(field)
        out += field

    # Tag 29 (individual) or 30 (merchant): account id, account information or merchant id, bank.
    account = info.bakong_account_id
    if type(account) is str and account.isascii() and 0 < len(account) <= 32 and "@" in account:
        guid = f"00{len(account):02d}{account}"
    else:
        guid = _account_tlv(account)
    if is_merchant:
        merchant_id = info.merchant_id  # type: ignore[union-attr]
        part = _tlv("01", merchant_id, 32, 32, "merchant_id")
        if not part:
            raise KHQRError(30, field="merchant_id")
        bank = _tlv("02", info.acquiring_bank, 32, 33, "acquiring_bank")
        if not bank:
            raise KHQRError(31, field="acquiring_bank")
        guid += part + bank
        tag = "30"
    else:
        information = info.account_information  # type: ignore[union-attr]
        if information is not None:
            guid += _tlv("01", information, 32, 35, "account_information")
        bank = info.acquiring_bank
        bank = _tlv("02", bank, 32, 33, "acquiring_bank") if bank is not None else ""
        guid += bank
        tag = "29"
    # A field over 99 characters is reported after every check the SDK makes, so that an input
    # the SDK rejects gets the SDK's error.
    too_long: KHQRError | None = None
    size = len(guid) if guid.isascii() else utf16_len(guid)
    if size > 99:
        too_long = _too_long(tag, size, 33 if bank else 35, "acquiring_bank" if bank else "account_information")
    out += f"{tag}{size:02d}{guid}"

    mcc = info.merchant_category_code
    if mcc == "5999":
        out += "52045999"
    else:
        mcc = merchant_category_code(mcc)
        out += f"52{len(mcc):02d}{mcc}"

    currency = info.currency
    if currency == "KHR" or currency == 116:
        currency = "116"
    elif currency == "USD" or currency == 840:
        currency = "840"
    else:
        currency = currency_code(currency)
    if currency == "840" and has_upi:
        raise KHQRError(44, "a UnionPay account takes KHR only", field="upi_account_information")
    out += "5303" + currency

    if dynamic:
        text = amount_text(amount, currency == "116")
        out += f"54{len(text):02d}{text}"

    name = info.merchant_name
    if type(name) is str and name.isascii() and 0 < len(name) <= 25:
        out += f"5802KH59{len(name):02d}{name}"
    else:
        if _text(name, 7, "merchant_name") is None:
            raise KHQRError(2, field="merchant_name")
        out += "5802KH" + _tlv("59", name, 25, 7, "merchant_name")

    city = info.merchant_city
    if city == "Phnom Penh":
        out += "6010Phnom Penh"
    else:
        out += _tlv("60", city, 15, 21, "merchant_city") or "6010Phnom Penh"

    bill = info.bill_number
    mobile = info.mobile_number
    store = info.store_label
    terminal = info.terminal_label
    purpose = info.purpose_of_transaction
    if bill or mobile or store or terminal or purpose:
        additional = ""
        if bill is not None:
            additional = _tlv("01", bill, 25, 10, "bill_number")
        if mobile is not None:
            additional += _tlv("02", mobile, 25, 34, "mobile_number")
        if store is not None:
            additional += _tlv("03", store, 25, 11, "store_label")
        if terminal is not None:
            additional += _tlv("07", terminal, 25, 12, "terminal_label")
        if purpose is not None:
            additional += _tlv("08", purpose, 25, 42, "purpose_of_transaction")
        size = len(additional) if additional.isascii() else utf16_len(additional)
        if size > 99 and too_long is None:
            too_long = _additional_too_long(bill, mobile, store, terminal, purpose)
        if additional:
            out += f"62{size:02d}{additional}"

    preference = info.language_preference
    alternate_name = info.merchant_name_alternate_language
    alternate_city = info.merchant_city_alternate_language
    if preference or alternate_name or alternate_city:
        out += _language_template(preference, alternate_name, alternate_city)

    if dynamic:
        creation = current_ms() if now_ms is None else now_ms
        expiration = expiration_text(info.expiration_timestamp, creation)
        created = str(creation)
        stamps = f"00{len(created):02d}{created}0113{expiration}"
        out += f"99{len(stamps):02d}{stamps}"

    if too_long is not None:
        raise too_long
    out += "6304"
    raw = out.encode() if out.isascii() else utf8(out)
    crc = f"{crc_hqx(raw, 0xFFFF):04X}"
    return KHQRResult(out + crc, _md5(raw + crc.encode(), usedforsecurity=False).hexdigest())


def _language_template(preference: object, alternate_name: object, alternate_city: object) -> str:
    """Tag 64, checked in the SDK's order (39, 37, 38, 40, 41)."""
    preference = _text(preference, 38, "language_preference")
    alternate_name = _text(alternate_name, 40, "merchant_name_alternate_language")
    alternate_city = _text(alternate_city, 41, "merchant_city_alternate_language")
    if preference is None and alternate_name is None and alternate_city is None:
        return ""
    if preference is not None and alternate_name is None:
        raise KHQRError(39, "a language preference needs the merchant name in that language",
                        field="merchant_name_alternate_language")
    template = ""
    if alternate_name is not None:
        if preference is None:
            raise KHQRError(37, "the merchant name in another language needs its language preference",
                            field="language_preference")
        template = _tlv("00", preference, 2, 38, "language_preference")
        template += _tlv("01", alternate_name, 25, 40, "merchant_name_alternate_language")
    if alternate_city is not None:
        template += _tlv("02", alternate_city, 15, 41, "merchant_city_alternate_language")
    return f"64{_length(template):02d}{template}"
