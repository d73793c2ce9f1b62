"""Money: exact amounts in minor units per currency. Never floats; KHR and USD never mix.

KHR is counted in whole riel (no minor unit in practice), USD in cents. ``Decimal`` is the only
type used to cross between major units (what KHQR strings and Bakong answers carry) and the
integer minor units the engine stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from engine.errors import InvalidInput

__all__ = ["CURRENCIES", "EXPONENT", "Money", "format_amount", "parse_amount", "to_major", "to_minor"]

#: Decimal places of the minor unit: KHR whole riel, USD cents.
EXPONENT: dict[str, int] = {"KHR": 0, "USD": 2}
CURRENCIES = tuple(EXPONENT)
#: ISO 4217 numeric codes as KHQR writes them (tag 53).
NUMERIC_CODE = {"KHR": "116", "USD": "840"}
CURRENCY_BY_NUMERIC = {v: k for k, v in NUMERIC_CODE.items()}
#: Amounts must stay below 10**15 major units: far above any real payment, and the minor units
#: then always fit the database's 64-bit integer (and are cheap to compute for any input).
MAX_DIGITS = 15


def check_currency(currency: str) -> str:
    code = str(currency).upper()
    if code in CURRENCY_BY_NUMERIC:
        code = CURRENCY_BY_NUMERIC[code]
    if code not in EXPONENT:
        raise InvalidInput(f"unsupported currency {currency!r}: use KHR or USD", field="currency")
    return code


def to_minor(amount: Decimal | int | str, currency: str) -> int:
    """Major units (e.g. Decimal('12.50') USD) to exact minor units (1250); refuses sub-unit amounts."""
    currency = check_currency(currency)
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation:
        raise InvalidInput(f"amount {amount!r} is not a number", field="amount") from None
    if not value.is_finite():
        raise InvalidInput(f"amount {amount!r} is not a number", field="amount")
    if value and value.adjusted() >= MAX_DIGITS:
        raise InvalidInput(f"amount is too large: at most {MAX_DIGITS} digits before the decimal point", field="amount")
    scaled = value.scaleb(EXPONENT[currency])
    if scaled != scaled.to_integral_value():
        unit = "whole riel" if currency == "KHR" else "at most 2 decimals"
        raise InvalidInput(f"{currency} amount {amount} must be in {unit}", field="amount")
    return int(scaled)


def to_major(amount_minor: int, currency: str) -> Decimal:
    """Minor units to a Decimal in major units with the currency's exact number of places."""
    currency = check_currency(currency)
    exp = EXPONENT[currency]
    return Decimal(amount_minor).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))


def parse_amount(text: str, currency: str) -> int:
    """Operator input ('12.50', '1,000', '5000') to minor units; must be positive."""
    cleaned = str(text).strip().replace(",", "").replace("_", "")
    if not cleaned:
        raise InvalidInput("amount is required", field="amount")
    minor = to_minor(cleaned, currency)
    if minor <= 0:
        raise InvalidInput("amount must be greater than zero", field="amount")
    return minor


def format_amount(amount_minor: int, currency: str) -> str:
    """'12.50 USD', '40,000 KHR': how amounts are shown to people."""
    currency = check_currency(currency)
    major = to_major(amount_minor, currency)
    if currency == "KHR":
        return f"{int(major):,} KHR"
    return f"{major:,.2f} USD"


@dataclass(frozen=True, order=True)
class Money:
    """An exact amount in one currency."""

    currency: str
    minor: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", check_currency(self.currency))

    @property
    def major(self) -> Decimal:
        return to_major(self.minor, self.currency)

    def __str__(self) -> str:
        return format_amount(self.minor, self.currency)

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        if other.currency != self.currency:
            raise InvalidInput(f"cannot add {other.currency} to {self.currency}")
        return Money(self.currency, self.minor + other.minor)
