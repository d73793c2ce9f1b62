"""Exact money: minor units, no floats, currencies never mixed."""

from decimal import Decimal

import pytest

from engine.errors import InvalidInput
from engine.money import Money, format_amount, parse_amount, to_major, to_minor


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("12.50", "USD", 1250), ("0.01", "USD", 1), ("5", "USD", 500), ("40000", "KHR", 40000), ("116", "116", 116)],
)
def test_to_minor(amount: str, currency: str, minor: int) -> None:
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize(("amount", "currency"), [("1.005", "USD"), ("100.5", "KHR"), ("abc", "USD"), ("NaN", "USD")])
def test_to_minor_refuses_inexact(amount: str, currency: str) -> None:
    with pytest.raises(InvalidInput):
        to_minor(amount, currency)


def test_to_major_keeps_places() -> None:
    assert to_major(1250, "USD") == Decimal("12.50")
    assert str(to_major(5, "USD")) == "0.05"
    assert str(to_major(40000, "KHR")) == "40000"


def test_parse_amount_and_format() -> None:
    assert parse_amount("1,000", "KHR") == 1000
    assert format_amount(1000, "KHR") == "1,000 KHR"
    assert format_amount(123456, "USD") == "1,234.56 USD"
    with pytest.raises(InvalidInput, match="greater than zero"):
        parse_amount("0", "USD")
    with pytest.raises(InvalidInput, match="unsupported currency"):
        parse_amount("1", "EUR")


def test_money_never_adds_across_currencies() -> None:
    assert Money("USD", 100) + Money("USD", 50) == Money("USD", 150)
    with pytest.raises(InvalidInput):
        Money("USD", 100) + Money("KHR", 100)


@pytest.mark.parametrize("amount", ["1e99999", "1E999999999", "1" * 16, "-1e20", "9" * 5000])
def test_to_minor_refuses_huge_amounts_at_once(amount: str) -> None:
    with pytest.raises(InvalidInput, match="too large"):
        to_minor(amount, "USD")


def test_largest_amount_fits_a_64_bit_column() -> None:
    assert to_minor("9" * 15 + ".99", "USD") == int("9" * 17) < 2**63
    with pytest.raises(InvalidInput, match="whole riel"):
        to_minor("1e-99999", "KHR")
