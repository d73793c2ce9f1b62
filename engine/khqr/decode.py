"""Reading KHQR strings: ``decode`` (KHQR fields) and ``decode_non_khqr`` (any EMV TLV string).

Both read exactly as the NBC SDK does, malformed input included: ``decode`` does not validate
(``verify`` does), keeps the last of repeated tags, stops at a tag repeated back to back, and
fills absent fields with None. Where the SDK would loop forever (a sub-field whose length does
not parse, for one) reading stops at that point instead, so every input is answered in time
proportional to its length.

``decode`` returns the SDK's keys in snake_case, in the SDK's order. One SDK behaviour is not
reproduced: when a template (tag 29/30, 62, 64 or 99) holds no sub-tag the SDK knows, the SDK
spreads the template's characters into the result as keys "0", "1", ...; here such a template
simply contributes nothing.
"""

from __future__ import annotations

from engine.khqr.errors import KHQRError
from engine.khqr.tlv import extract_at, from_units, read_fields, template_fields, to_units

__all__ = ["DECODED_KEYS", "KHQR_TAGS", "TEMPLATE_FIELDS", "decode", "decode_non_khqr"]

#: What each template's sub-tags are called (tag 30 is read as 29; its 01 is the merchant id).
TEMPLATE_FIELDS: dict[str, dict[str, str]] = {
    "29": {"00": "bakong_account_id", "01": "account_information", "02": "acquiring_bank"},
    "62": {
        "01": "bill_number",
        "02": "mobile_number",
        "03": "store_label",
        "07": "terminal_label",
        "08": "purpose_of_transaction",
    },
    "64": {
        "00": "language_preference",
        "01": "merchant_name_alternate_language",
        "02": "merchant_city_alternate_language",
    },
    "99": {"00": "creation_timestamp", "01": "expiration_timestamp"},
}

_PLAIN_FIELDS: dict[str, str] = {
    "00": "payload_format_indicator",
    "01": "point_of_initiation_method",
    "15": "union_pay_merchant",
    "52": "merchant_category_code",
    "53": "transaction_currency",
    "54": "transaction_amount",
    "58": "country_code",
    "59": "merchant_name",
    "60": "merchant_city",
    "63": "crc",
}

#: Every tag the SDK reads; others are skipped.
KHQR_TAGS = frozenset(TEMPLATE_FIELDS) | frozenset(_PLAIN_FIELDS)

#: ``decode``'s keys, in the SDK's order.
DECODED_KEYS: tuple[str, ...] = (
    "merchant_type",
    "bakong_account_id",
    "account_information",
    "merchant_id",
    "acquiring_bank",
    "bill_number",
    "mobile_number",
    "store_label",
    "terminal_label",
    "purpose_of_transaction",
    "language_preference",
    "merchant_name_alternate_language",
    "merchant_city_alternate_language",
    "creation_timestamp",
    "expiration_timestamp",
    "payload_format_indicator",
    "point_of_initiation_method",
    "union_pay_merchant",
    "merchant_category_code",
    "transaction_currency",
    "transaction_amount",
    "country_code",
    "merchant_name",
    "merchant_city",
    "crc",
)

_EMPTY: dict[str, str | None] = dict.fromkeys(DECODED_KEYS)
_TEMPLATE_TAGS = frozenset(TEMPLATE_FIELDS)
_MERCHANT_TEMPLATE = {**TEMPLATE_FIELDS["29"], "01": "merchant_id"}


def decode(qr: str) -> dict[str, str | None]:
    """The fields of a KHQR string, None where absent; no validation (see ``verify``).

    ``merchant_type`` is ``"29"`` (individual) or ``"30"`` (merchant); ``transaction_currency``
    the numeric code (``"116"``, ``"840"``); every value is the text found in the string. Raises
    ``KHQRError`` (code 8) only when ``qr`` is not a string.
    """
    if not isinstance(qr, str):
        raise KHQRError(8, f"a KHQR is a string, got {type(qr).__name__}")
    units, astral = to_units(qr)

    out = _EMPTY.copy()
    plain_fields = _PLAIN_FIELDS
    templates: dict[str, str] = {}
    merchant_type: str | None = None
    is_merchant = False  # any tag 30 makes the SDK read sub-tag 01 as the merchant id
    for tag, value in read_fields(units):
        name = plain_fields.get(tag)
        if name is not None:
            out[name] = value  # a repeated tag: the last one wins, as in the SDK
        elif tag == "29":
            merchant_type = "29"
            templates["29"] = value
        elif tag == "30":
            merchant_type = "30"
            is_merchant = True
            templates["29"] = value
        elif tag in _TEMPLATE_TAGS:
            templates[tag] = value
    out["merchant_type"] = merchant_type
    for tag, value in templates.items():
        out.update(template_fields(value, _MERCHANT_TEMPLATE if is_merchant and tag == "29" else TEMPLATE_FIELDS[tag]))
    if astral:
        for key, value in out.items():
            if value is not None and key != "merchant_type":
                out[key] = from_units(value)
    return out


def _is_array_index(key: str) -> bool:
    return key.isdigit() and (key == "0" or key[0] != "0")


def _js_ordered(data: dict) -> dict:
    """A JavaScript object's key order: array-index keys ascending, then insertion order."""
    ordered = {k: data[k] for k in sorted((k for k in data if _is_array_index(k)), key=int)}
    ordered.update((k, v) for k, v in data.items() if not _is_array_index(k))
    return ordered


def decode_non_khqr(qr: str) -> dict:
    """Any EMV TLV string as nested ``{tag: value}`` maps, as the SDK's ``decodeNonKhqr`` reads it.

    Templates (tags 26-51, 62, 64, 80-99) are split one level further, and sub-tags 50-99 of
    tag 62 one more. Reading stops at the first field that is not a numeric tag with a length
    matching what follows. Keys are in JavaScript object order, as the SDK returns them.
    """
    if not isinstance(qr, str):
        raise KHQRError(8, f"an EMV string is a string, got {type(qr).__name__}")
    units, astral = to_units(qr)
    back = from_units if astral else str

    first: dict[str, str] = {}
    i = 0
    while True:
        field = extract_at(units, i)
        if field is None:
            break
        tag, value, i = field
        first[tag] = value
        if i >= len(units):
            break

    result: dict = {}
    for tag, value in first.items():
        result[tag] = back(value)
        number = int(tag)
        if not (26 <= number <= 51 or 80 <= number <= 99 or tag in ("62", "64")):
            continue
        if len(value) < 6:
            continue
        second: dict = {}
        # The SDK shares one third-level map across all of a template's sub-tags: once one
        # sub-tag of 62 is split, every later sub-tag of that 62 shows that same map.
        third: dict[str, str] = {}
        shared: list[str] = []
        j = 0
        while True:
            field = extract_at(value, j)
            if field is None:
                break
            sub, sub_value, j = field
            if tag == "62" and 50 <= int(sub) <= 99:
                k = 0
                while True:
                    leaf = extract_at(sub_value, k)
                    if leaf is None:
                        break
                    leaf_tag, leaf_value, k = leaf
                    third[leaf_tag] = back(leaf_value)
                    if k >= len(sub_value):
                        break
            if third:
                shared.append(sub)
                second[sub] = third
            else:
                second[sub] = back(sub_value)
            if j >= len(value):
                break
        if second:
            final_third = _js_ordered(third)
            for sub in shared:
                second[sub] = dict(final_third)
            result[tag] = _js_ordered(second)
    return _js_ordered(result)
