"""generate() beyond the SDK vectors: the Python-side inputs (Decimal, currency names), errors, clock."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from decimal import Decimal

import pytest

from engine import khqr
from engine.errors import InvalidInput
from engine.khqr import IndividualInfo, KHQRError, MerchantInfo
from engine.khqr.generate import current_ms
from engine.money import to_major

NOW = 1_735_689_600_000
LATER = NOW + 3_600_000
BASE = dict(bakong_account_id="jonhsmith@nbcq", merchant_name="Jonh Smith")


def amount_of(info: IndividualInfo | MerchantInfo) -> str | None:
    return khqr.decode(khqr.generate(info, now_ms=NOW).qr)["transaction_amount"]


def error_of(info: object, now_ms: int = NOW) -> KHQRError:
    with pytest.raises(KHQRError) as caught:
        khqr.generate(info, now_ms=now_ms)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("currency", "amount", "written"),
    [
        ("USD", Decimal("12.50"), "12.50"),
        ("USD", Decimal("12.5"), "12.50"),
        ("USD", Decimal("5.00"), "5.00"),
        ("USD", Decimal("5"), "5"),
        ("USD", Decimal("0.01"), "0.01"),
        ("USD", Decimal("1E+2"), "100"),
        ("USD", Decimal("1234567890.12"), "1234567890.12"),
        ("USD", 5, "5"),
        ("USD", "0100", "0100"),
        ("USD", "7.5", "7.50"),
        ("USD", 2.5, "2.50"),
        ("KHR", Decimal("40000"), "40000"),
        ("KHR", Decimal("40000.00"), "40000"),
        ("KHR", Decimal("4E+4"), "40000"),
        ("KHR", "1e3", "1000"),
        ("KHR", 150000, "150000"),
        ("KHR", 100.0, "100"),
    ],
)
def test_amounts_are_written_exactly(currency: str, amount: object, written: str) -> None:
    info = IndividualInfo(**BASE, currency=currency, amount=amount, expiration_timestamp=LATER)
    assert amount_of(info) == written


@pytest.mark.parametrize("cents", [1, 10, 99, 100, 1250, 999_999, 123_456_789_012])
def test_engine_money_round_trips_through_the_qr(cents: int) -> None:
    """What the payment engine sends (to_major) is what Bakong will be asked for."""
    major = to_major(cents, "USD")
    written = amount_of(IndividualInfo(**BASE, currency="USD", amount=major, expiration_timestamp=LATER))
    assert Decimal(written) == major
    assert written == f"{major:.2f}"


@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        ("USD", Decimal("1.234")),
        ("USD", Decimal("1.230")),
        ("USD", Decimal("-1")),
        ("USD", Decimal("NaN")),
        ("USD", Decimal("sNaN")),
        ("USD", Decimal("Infinity")),
        ("USD", Decimal("12345678901234")),
        ("USD", Decimal("1E+20")),
        ("KHR", Decimal("100.5")),
        ("KHR", Decimal("0.5")),
        ("USD", "1,000"),
        ("USD", " 5"),
        ("USD", "abc"),
        ("USD", 1e-7),
        ("KHR", 1e21),
        ("USD", [5]),
        ("USD", True),
    ],
)
def test_bad_amounts_are_error_4(currency: str, amount: object) -> None:
    error = error_of(IndividualInfo(**BASE, currency=currency, amount=amount, expiration_timestamp=LATER))
    assert error.code == 4
    assert error.field == "amount"
    assert error.message.startswith("Amount is invalid: ")


@pytest.mark.parametrize("amount", [None, 0, Decimal("0"), Decimal("0.00"), "0", "0.00", "", 0.0])
def test_no_amount_or_zero_is_a_static_qr(amount: object) -> None:
    qr = khqr.generate(IndividualInfo(**BASE, amount=amount, expiration_timestamp=LATER), now_ms=NOW).qr
    fields = khqr.decode(qr)
    assert fields["point_of_initiation_method"] == "11"
    assert fields["transaction_amount"] is None
    assert fields["expiration_timestamp"] is None


@pytest.mark.parametrize(
    ("currency", "code"),
    [("KHR", "116"), ("khr", "116"), (116, "116"), ("116", "116"), (None, "116"), ("", "116"),
     ("USD", "840"), ("usd", "840"), (840, "840"), ("840", "840")],
)
def test_currency_names_and_numeric_codes(currency: object, code: str) -> None:
    qr = khqr.generate(IndividualInfo(**BASE, currency=currency), now_ms=NOW).qr  # type: ignore[arg-type]
    assert khqr.decode(qr)["transaction_currency"] == code


@pytest.mark.parametrize(("currency", "code"), [("EUR", 28), (978, 28), (1.5, 28), ("EURO", 19), (True, 28)])
def test_unsupported_currency(currency: object, code: int) -> None:
    assert error_of(IndividualInfo(**BASE, currency=currency)).code == code  # type: ignore[arg-type]


def test_khqr_error_is_an_invalid_input_with_the_sdk_code() -> None:
    error = error_of(IndividualInfo(bakong_account_id="no-at-sign", merchant_name="X"))
    assert isinstance(error, InvalidInput)
    assert error.code == 3
    assert error.field == "bakong_account_id"
    assert error.http_status == 422
    assert error.message == "Bakong Account ID is invalid: 'no-at-sign' is not of the form name@bank"


@pytest.mark.parametrize(
    ("info", "code"),
    [
        (IndividualInfo(bakong_account_id=None, merchant_name="X"), 1),  # type: ignore[arg-type]
        (IndividualInfo(bakong_account_id=123, merchant_name="X"), 3),  # type: ignore[arg-type]
        (IndividualInfo(**BASE, merchant_category_code=5411.0), 51),  # type: ignore[arg-type]
        (IndividualInfo(**BASE, bill_number=["INV"]), 10),  # type: ignore[arg-type]
        (IndividualInfo(**BASE, language_preference="km"), 39),
        (IndividualInfo(**BASE, merchant_name_alternate_language="ចន"), 37),
        (IndividualInfo(**BASE, language_preference="kmr", merchant_name_alternate_language="ចន"), 38),
        (IndividualInfo(**BASE, currency="USD", upi_account_information="3333111111111111"), 44),
        (IndividualInfo(**BASE, amount=5000), 45),
        (IndividualInfo(**BASE, amount=5000, expiration_timestamp="soon"), 45),
        (IndividualInfo(**BASE, amount=5000, expiration_timestamp=173568960000), 49),
        (IndividualInfo(**BASE, amount=5000, expiration_timestamp=NOW - 1), 50),
        (IndividualInfo(**BASE, amount=5000, expiration_timestamp=object()), 49),  # type: ignore[arg-type]
        (MerchantInfo(**BASE, merchant_id=None, acquiring_bank="Dev Bank"), 30),  # type: ignore[arg-type]
        (MerchantInfo(**BASE, merchant_id="", acquiring_bank="Dev Bank"), 30),
        (MerchantInfo(**BASE, merchant_id="1", acquiring_bank=None), 31),  # type: ignore[arg-type]
    ],
)
def test_errors_carry_the_sdk_code(info: IndividualInfo | MerchantInfo, code: int) -> None:
    assert error_of(info).code == code


def test_not_an_info_object() -> None:
    assert error_of({"bakong_account_id": "a@b"}).code == 5


def test_a_field_over_99_characters_is_refused_not_written_with_3_digits() -> None:
    info = IndividualInfo(**BASE, bill_number="B" * 25, mobile_number="M" * 25, store_label="S" * 25, terminal_label="T" * 25)
    error = error_of(info)
    assert error.code == 12 and error.field == "terminal_label"
    assert "116 characters" in error.message
    # An error the SDK itself reports comes first.
    assert error_of(dataclasses.replace(info, merchant_name="")).code == 2


def test_language_template_city_alone_and_full() -> None:
    qr = khqr.generate(IndividualInfo(**BASE, merchant_city_alternate_language="ភ្នំពេញ"), now_ms=NOW).qr
    assert "64110207ភ្នំពេញ" in qr
    fields = khqr.decode(khqr.generate(IndividualInfo(**BASE, language_preference="km", merchant_name_alternate_language="ចន ស្មីន"), now_ms=NOW).qr)
    assert (fields["language_preference"], fields["merchant_name_alternate_language"]) == ("km", "ចន ស្មីន")


def test_lengths_count_utf16_code_units() -> None:
    qr = khqr.generate(IndividualInfo(bakong_account_id="a@b", merchant_name="Cafe 😀"), now_ms=NOW).qr
    assert "5907Cafe 😀" in qr  # the emoji counts 2, as in JavaScript
    assert error_of(IndividualInfo(bakong_account_id="a@b", merchant_name="😀" * 13)).code == 7  # 26 units
    assert khqr.verify(qr)


def test_merchant_qr_with_int_merchant_id() -> None:
    qr = khqr.generate(MerchantInfo(**BASE, merchant_id=123456, acquiring_bank="Dev Bank"), now_ms=NOW).qr
    fields = khqr.decode(qr)
    assert fields["merchant_type"] == "30"
    assert fields["merchant_id"] == "123456"
    assert fields["acquiring_bank"] == "Dev Bank"


def test_result_is_frozen_and_md5_is_of_the_utf8_string() -> None:
    result = khqr.generate(IndividualInfo(**BASE, merchant_city="ភ្នំពេញ"), now_ms=NOW)
    assert result.md5 == hashlib.md5(result.qr.encode("utf-8")).hexdigest() == khqr.md5(result.qr)
    assert result.qr[-4:] == khqr.crc16(result.qr[:-4])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.qr = "x"  # type: ignore[misc]


def test_creation_time_defaults_to_the_engine_clock() -> None:
    before = current_ms()
    qr = khqr.generate(IndividualInfo(**BASE, amount=100, expiration_timestamp=before + 600_000)).qr
    after = current_ms()
    created = int(khqr.decode(qr)["creation_timestamp"])  # type: ignore[arg-type]
    assert before <= created <= after
    assert khqr.verify(qr)


def test_expiration_as_digit_string() -> None:
    qr = khqr.generate(IndividualInfo(**BASE, amount=100, expiration_timestamp=str(LATER)), now_ms=NOW).qr
    assert khqr.decode(qr)["expiration_timestamp"] == str(LATER)


def test_the_codec_loads_no_ui_or_imaging_library() -> None:
    code = "import sys, engine.khqr; print(sorted(m for m in ('rich', 'textual', 'typer', 'PIL', 'qrcode') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
