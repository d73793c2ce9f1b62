"""The merchant's KHQR identity: the ``[merchant]`` settings as the KHQR input every payment is
generated from, and those settings checked field by field by the KHQR rules themselves.

The rules (name at most 25 characters, city at most 15, ``name@bank`` of at most 32, a merchant
id and an acquiring bank for a tag-30 merchant, a 4-digit category code...) live once, in
``engine.khqr.generate``; setup asks them about each field as it is typed by generating a static
KHQR in which only that field is the merchant's own, and the payment service generates every
payment's KHQR through ``merchant_khqr_info``, so setup can never accept what a payment refuses.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from engine import khqr
from engine.config import MerchantSettings

__all__ = ["MERCHANT_FIELDS", "merchant_field_errors", "merchant_khqr_info", "merchant_preview"]

#: The KHQR generator's field names -> the ``[merchant]`` keys they come from.
_KHQR_TO_SETTING = {
    "bakong_account_id": "bakong_account_id",
    "merchant_name": "name",
    "merchant_city": "city",
    "merchant_id": "merchant_id",
    "acquiring_bank": "acquiring_bank",
    "account_information": "account_information",
    "mobile_number": "mobile_number",
    "store_label": "store_label",
    "terminal_label": "terminal_label",
    "merchant_category_code": "merchant_category_code",
    "merchant_name_alternate_language": "name_alternate",
    "merchant_city_alternate_language": "city_alternate",
    "language_preference": "alternate_language",
}

#: The ``[merchant]`` keys a KHQR is made of, in the order setup asks for them.
MERCHANT_FIELDS = (
    "type",
    "name",
    "city",
    "bakong_account_id",
    "merchant_id",
    "acquiring_bank",
    "account_information",
    "mobile_number",
    "store_label",
    "terminal_label",
    "merchant_category_code",
)

#: A merchant every KHQR rule accepts: the background each field is checked against on its own.
_VALID_INDIVIDUAL = MerchantSettings()
_VALID_MERCHANT = dataclasses.replace(_VALID_INDIVIDUAL, type="merchant", merchant_id="1", acquiring_bank="Bank")


def merchant_khqr_info(
    merchant: MerchantSettings,
    *,
    currency: str,
    amount: Decimal | None = None,
    expiration_timestamp: int | None = None,
    bill_number: str | None = None,
) -> khqr.IndividualInfo | khqr.MerchantInfo:
    """The KHQR input for a payment to ``merchant`` (no amount: a static KHQR)."""
    common: dict[str, Any] = dict(
        bakong_account_id=merchant.bakong_account_id,
        merchant_name=merchant.name,
        merchant_city=merchant.city or None,
        currency=currency,
        amount=amount,
        bill_number=bill_number,
        mobile_number=merchant.mobile_number or None,
        store_label=merchant.store_label or None,
        terminal_label=merchant.terminal_label or None,
        merchant_category_code=merchant.merchant_category_code or None,
        expiration_timestamp=expiration_timestamp,
    )
    if merchant.name_alternate:
        common.update(
            language_preference=merchant.alternate_language or None,
            merchant_name_alternate_language=merchant.name_alternate,
            merchant_city_alternate_language=merchant.city_alternate or None,
        )
    if merchant.type == "merchant":
        return khqr.MerchantInfo(merchant_id=merchant.merchant_id, acquiring_bank=merchant.acquiring_bank, **common)
    return khqr.IndividualInfo(
        account_information=merchant.account_information or None,
        acquiring_bank=merchant.acquiring_bank or None,
        **common,
    )


def _error_of(merchant: MerchantSettings) -> tuple[str | None, str] | None:
    """The first KHQR rule ``merchant`` breaks, as (``[merchant]`` key, message), or None."""
    try:
        khqr.generate(merchant_khqr_info(merchant, currency="KHR"), now_ms=0)
    except khqr.KHQRError as exc:
        return _KHQR_TO_SETTING.get(exc.field or ""), exc.message
    return None


def merchant_field_errors(merchant: MerchantSettings) -> dict[str, str]:
    """Each ``[merchant]`` key that breaks a KHQR rule -> why, judged on its own.

    Every field is checked in a merchant that is valid apart from it, so an empty name does not
    hide a too-long city; then the whole merchant is generated once, so that what the fields do
    only together (tag 62 over 99 characters) is reported too.
    """
    errors: dict[str, str] = {}
    if merchant.type not in ("individual", "merchant"):
        errors["type"] = "must be individual (tag 29) or merchant (tag 30)"
        return errors
    background = _VALID_MERCHANT if merchant.type == "merchant" else _VALID_INDIVIDUAL
    for key in MERCHANT_FIELDS[1:]:
        if merchant.type != "merchant" and key == "merchant_id":
            continue
        if merchant.type == "merchant" and key == "account_information":
            continue
        alone = dataclasses.replace(background, **{key: getattr(merchant, key)})
        found = _error_of(alone)
        if found is not None:
            errors[found[0] or key] = found[1]
    if not errors:
        found = _error_of(merchant)
        if found is not None:
            errors[found[0] or "name"] = found[1]
    return errors


def merchant_preview(merchant: MerchantSettings, currency: str, *, now_ms: int) -> khqr.KHQRResult:
    """A static KHQR of ``merchant`` (what a payer's bank app would show): the live preview."""
    return khqr.generate(merchant_khqr_info(merchant, currency=currency), now_ms=now_ms)
