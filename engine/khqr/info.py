"""What a KHQR is generated from (``IndividualInfo``, ``MerchantInfo``) and what it yields (``KHQRResult``).

Field names are the SDK's, in snake_case (``bakongAccountID`` -> ``bakong_account_id``); the SDK's
``upiMerchantAccount`` is ``upi_account_information``. Nothing is validated here: ``generate``
checks every field in the SDK's order so the first error reported is the SDK's first error.

Accepted values:

- ``currency``: ``"KHR"`` / ``"USD"`` (any case) or the numeric codes ``116`` / ``840`` (int or str).
- ``amount``: ``int``, ``Decimal`` or a numeric ``str`` (exact), or ``float`` (read as JavaScript
  reads a number, for SDK parity). None or zero makes a static QR. KHR takes whole riel; USD at
  most 2 decimals, written with exactly 2 when the input has a fractional part
  (``Decimal("12.5")`` -> ``12.50``) and as is otherwise (``5`` -> ``5``, ``Decimal("5.00")`` -> ``5.00``).
- ``expiration_timestamp``: milliseconds since the epoch (13 digits), required for a dynamic QR.
- Optional text fields: None or ``""`` both mean absent, as in the SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

__all__ = ["IndividualInfo", "KHQRResult", "MerchantInfo"]

Amount = int | Decimal | str | float


@dataclass(frozen=True, kw_only=True)
class _KHQRInfo:
    """Fields shared by individual (tag 29) and merchant (tag 30) KHQR."""

    bakong_account_id: str
    merchant_name: str
    merchant_city: str | None = "Phnom Penh"
    currency: str | int = "KHR"
    amount: Amount | None = None
    bill_number: str | None = None
    mobile_number: str | None = None
    store_label: str | None = None
    terminal_label: str | None = None
    purpose_of_transaction: str | None = None
    language_preference: str | None = None
    merchant_name_alternate_language: str | None = None
    merchant_city_alternate_language: str | None = None
    #: The UnionPay merchant account (tag 15; KHR only). The SDK calls it upiMerchantAccount.
    upi_account_information: str | None = None
    merchant_category_code: str | int | None = "5999"
    #: Milliseconds since the epoch; required when there is an amount.
    expiration_timestamp: int | str | None = None


@dataclass(frozen=True, kw_only=True)
class IndividualInfo(_KHQRInfo):
    """An individual's KHQR (tag 29): a person or a shop paid into a personal Bakong account."""

    account_information: str | None = None
    acquiring_bank: str | None = None

    @property
    def merchant_type(self) -> Literal["individual"]:
        return "individual"


@dataclass(frozen=True, kw_only=True)
class MerchantInfo(_KHQRInfo):
    """A merchant's KHQR (tag 30): a merchant id at an acquiring bank."""

    merchant_id: str | int
    acquiring_bank: str

    @property
    def merchant_type(self) -> Literal["merchant"]:
        return "merchant"


@dataclass(frozen=True, slots=True)
class KHQRResult:
    """A generated KHQR string and its MD5 (the key Bakong finds the payment by)."""

    qr: str
    md5: str
