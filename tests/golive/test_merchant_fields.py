"""Merchant fields are judged by the KHQR rules themselves, each on its own."""

from __future__ import annotations

import dataclasses

from engine.config import MerchantSettings
from engine.merchant import merchant_field_errors, merchant_khqr_info, merchant_preview
from engine import khqr

GOOD = MerchantSettings(name="Dara Coffee", city="Siem Reap", bakong_account_id="dara@aclb")


def test_a_valid_merchant_has_no_errors_and_previews_as_a_static_khqr() -> None:
    assert merchant_field_errors(GOOD) == {}
    result = merchant_preview(GOOD, "USD", now_ms=1_700_000_000_000)
    fields = khqr.decode(result.qr)
    assert fields["merchant_name"] == "Dara Coffee" and fields["bakong_account_id"] == "dara@aclb"
    assert fields["transaction_currency"] == "840" and fields["transaction_amount"] is None
    assert khqr.verify(result.qr)


def test_each_field_is_reported_on_its_own() -> None:
    bad = dataclasses.replace(GOOD, name="x" * 26, city="c" * 16, bakong_account_id="no-at-sign", merchant_category_code="59x9")
    errors = merchant_field_errors(bad)
    assert set(errors) == {"name", "city", "bakong_account_id", "merchant_category_code"}
    assert "at most 25" in errors["name"] and "at most 15" in errors["city"]
    assert "name@bank" in errors["bakong_account_id"]


def test_empty_required_fields_and_the_merchant_type_rules() -> None:
    assert set(merchant_field_errors(dataclasses.replace(GOOD, name="", bakong_account_id=""))) == {"name", "bakong_account_id"}
    merchant = dataclasses.replace(GOOD, type="merchant")
    assert set(merchant_field_errors(merchant)) == {"merchant_id", "acquiring_bank"}
    ok = dataclasses.replace(merchant, merchant_id="M-1", acquiring_bank="ACLEDA")
    assert merchant_field_errors(ok) == {}
    assert isinstance(merchant_khqr_info(ok, currency="KHR"), khqr.MerchantInfo)

