"""Defensive parsing: what each answer means, whatever shape it arrives in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine.bakong.environments import Endpoint
from engine.bakong.models import CheckStatus
from engine.bakong.parsing import (
    interpret_response,
    parse_retry_after,
)
from engine.bakong.payloads import (
    parse_amount,
    parse_list,
    parse_ms,
    parse_token,
    parse_transaction,
)
from engine.errors import (
    AccountNotFound,
    BadRequest,
    BakongServerError,
    BulkEndpointBlocked,
    GeoBlocked,
    MalformedResponse,
    QuotaExhausted,
    RateLimited,
    StaticQRNotSupported,
    TokenExpired,
    TransactionFailed,
    TransactionNotFound,
    UnknownRefusal,
)

NOW = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
NGINX_403 = b"<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
TX = {
    "hash": "ab" * 32,
    "fromAccountId": "abaakhppxxx@abaa",
    "toAccountId": "myshop@aclb",
    "currency": "USD",
    "amount": 1.25,
    "description": None,
    "createdDateMs": 1772125349000,
    "acknowledgedDateMs": 1772125351000,
    "trackingStatus": None,
    "receiverBank": None,
    "receiverBankAccount": None,
    "instructionRef": None,
    "externalRef": "100FT00000000000",
}


def envelope(code: int | None, message: str = "", data: object = None) -> bytes:
    return json.dumps(
        {"responseCode": 0 if code is None else 1, "responseMessage": message, "errorCode": code, "data": data}
    ).encode()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (1, TransactionNotFound),
        (2, StaticQRNotSupported),
        (3, TransactionFailed),
        (4, BakongServerError),
        (5, BadRequest),
        (6, TokenExpired),
        (7, BakongServerError),
        (8, BadRequest),
        (9, BakongServerError),
        (10, BadRequest),
        (11, AccountNotFound),
        (12, AccountNotFound),
        (17, QuotaExhausted),
        (99, UnknownRefusal),
        (None, None),
    ],
)
def test_every_error_code_maps_to_its_exception(code: int | None, error: type[Exception] | None) -> None:
    body = envelope(code, "Bakong says so", {"x": 1} if code is None else None)
    if error is None:
        result = interpret_response(Endpoint.MD5, 200, body)
        assert result.data == {"x": 1} and result.message == "Bakong says so"
        return
    with pytest.raises(error) as caught:
        interpret_response(Endpoint.MD5, 200, body)
    assert caught.value.error_code == code
    assert caught.value.endpoint == "check_transaction_by_md5"
    assert "Bakong says so" in caught.value.message


def test_only_a_200_json_error_code_1_means_not_found() -> None:
    # third-party mocks answer 404 for "not found"; the real server answers 200. A 404 is a refusal.
    with pytest.raises(UnknownRefusal):
        interpret_response(Endpoint.MD5, 404, envelope(1, "not found"))
    for body in (b"", b"<html>not found</html>", b"null", b"[]", b'{"status":"NOT_FOUND"}'):
        with pytest.raises((MalformedResponse, UnknownRefusal)) as caught:
            interpret_response(Endpoint.MD5, 200, body)
        assert not isinstance(caught.value, TransactionNotFound)


def test_html_403_is_geo_blocking_except_on_the_bulk_paths() -> None:
    with pytest.raises(GeoBlocked):
        interpret_response(Endpoint.MD5, 403, NGINX_403)
    with pytest.raises(BulkEndpointBlocked) as caught:
        interpret_response(Endpoint.MD5_LIST, 403, NGINX_403)
    assert caught.value.http_status_code == 403
    # reconciliation falls back to single hash checks; a geo-block shows on the first of them
    with pytest.raises(BulkEndpointBlocked, match="bulk hash endpoint"):
        interpret_response(Endpoint.HASH_LIST, 403, NGINX_403)
    with pytest.raises(GeoBlocked):
        interpret_response(Endpoint.HASH, 403, NGINX_403)


def test_401_is_token_expired_with_or_without_json() -> None:
    with pytest.raises(TokenExpired) as caught:
        interpret_response(Endpoint.MD5, 401, envelope(6, "Unauthorized, not yet requested for token or code invalid"))
    assert caught.value.error_code == 6 and caught.value.http_status_code == 401
    with pytest.raises(TokenExpired):
        interpret_response(Endpoint.MD5, 401, b"<html>401</html>")


def test_quota_like_messages_latch_even_with_unknown_codes() -> None:
    for message in ("Daily request limit of 100 exceeded. Please try again tomorrow.", "Quota exceeded", "Too many requests today"):
        with pytest.raises(QuotaExhausted):
            interpret_response(Endpoint.MD5, 200, envelope(42, message))


def test_5xx_and_429_are_refusals_with_retry_after() -> None:
    with pytest.raises(BakongServerError) as caught:
        interpret_response(Endpoint.MD5, 503, b"<html>503</html>")
    assert caught.value.http_status_code == 503
    with pytest.raises(RateLimited) as limited:
        interpret_response(Endpoint.MD5, 429, b"", retry_after="7", now=NOW)
    assert limited.value.retry_after == 7.0
    with pytest.raises(RateLimited) as dated:
        interpret_response(Endpoint.MD5, 429, b"", retry_after="Thu, 15 Jan 2026 03:00:30 GMT", now=NOW)
    assert dated.value.retry_after == 30.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_a_success_without_the_envelope_keys_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        interpret_response(Endpoint.MD5, 200, b'{"data": {}}')
    with pytest.raises(MalformedResponse):
        interpret_response(Endpoint.MD5, 200, b'{"responseCode":0,"responseMessage":"ok","errorCode":nu')


def test_amounts_are_exact_decimals_from_numbers_or_strings() -> None:
    assert parse_amount(Decimal("1.25")) == Decimal("1.25")
    assert parse_amount(4000) == Decimal(4000)
    assert parse_amount("1.25") == Decimal("1.25")
    assert parse_amount(" 4,000 ") == Decimal(4000)
    assert parse_amount(0.1) == Decimal("0.1")
    for bad in (None, True, "abc", "NaN", [1]):
        with pytest.raises(ValueError):
            parse_amount(bad)


def test_millisecond_timestamps_may_be_floats_or_strings() -> None:
    expected = datetime(2020, 11, 19, 8, 26, 10, 608000, tzinfo=UTC)
    assert parse_ms(1605774370608) == expected
    assert parse_ms(Decimal("1605774370608.0")) == expected
    assert parse_ms(1605774370608.0) == expected
    assert parse_ms("1605774370608") == expected
    assert parse_ms(None) is None and parse_ms("") is None and parse_ms("soon") is None


def test_a_transaction_parses_exactly_and_ignores_unknown_fields() -> None:
    data = json.loads(json.dumps({**TX, "someNewField": {"nested": True}}), parse_float=Decimal)
    tx = parse_transaction(data)
    assert tx.amount == Decimal("1.25") and tx.amount_minor == 125 and tx.currency == "USD"
    assert tx.created_at == datetime(2026, 2, 26, 17, 2, 29, tzinfo=UTC)
    assert tx.short_hash == "abababab"
    assert tx.to_account_id == "myshop@aclb" and tx.external_ref == "100FT00000000000"
    assert tx.raw["someNewField"] == {"nested": True}
    assert json.loads(json.dumps(tx.raw)) == {**TX, "someNewField": {"nested": True}}  # storable as JSON
    assert parse_transaction({**TX, "amount": "1.25", "currency": "840"}).currency == "USD"
    assert parse_transaction({**TX, "amount": 0.001}).amount_minor is None
    for broken in ({**TX, "hash": None}, {**TX, "amount": None}, {**TX, "currency": ""}, None, []):
        with pytest.raises(MalformedResponse):
            parse_transaction(broken)


@pytest.mark.parametrize("layout", ["data", "transaction", "inline"])
def test_bulk_items_carry_the_transaction_in_any_of_three_places(layout: str) -> None:
    md5s = ["a" * 32, "b" * 32, "c" * 32, "d" * 32, "e" * 32]
    paid: dict[str, object] = {"md5": md5s[0], "status": "SUCCESS", "message": "Transaction success"}
    if layout == "inline":
        paid.update(TX)
    else:
        paid[layout] = TX
    items = [
        paid,
        {"md5": md5s[1], "status": "NOT_FOUND", "message": "Transaction could not be found", "data": None},
        {"md5": md5s[2], "status": "STATIC_QR", "message": "static", "data": None},
        {"md5": md5s[3], "status": "FAILED", "message": "failed", "data": None},
        {"md5": md5s[4], "status": "SERVICE_FAILED", "message": "Service failed", "data": None},
    ]
    outcomes = parse_list(items, md5s, key_field="md5", endpoint=Endpoint.MD5_LIST)
    assert [o.status for o in outcomes.values()] == [
        CheckStatus.PAID,
        CheckStatus.NOT_FOUND,
        CheckStatus.STATIC_QR,
        CheckStatus.FAILED,
        CheckStatus.REFUSED,
    ]
    assert outcomes[md5s[0]].transaction is not None
    assert outcomes[md5s[0]].transaction.hash == TX["hash"]
    assert isinstance(outcomes[md5s[4]].error, UnknownRefusal)
    assert "SERVICE_FAILED" in outcomes[md5s[4]].error.message
    decimal_items = json.loads(json.dumps(items), parse_float=Decimal)
    reparsed = parse_list(decimal_items, md5s, key_field="md5", endpoint=Endpoint.MD5_LIST)
    assert json.loads(json.dumps([o.raw for o in reparsed.values()])) == items


def test_bulk_items_are_matched_by_key_then_by_position_and_missing_ones_are_refused() -> None:
    md5s = ["a" * 32, "b" * 32]
    # out of order, upper-case keys
    items = [{"md5": "B" * 32, "status": "NOT_FOUND"}, {"md5": "A" * 32, "status": "SUCCESS", "data": TX}]
    outcomes = parse_list(items, md5s, key_field="md5", endpoint=Endpoint.MD5_LIST)
    assert outcomes["a" * 32].status is CheckStatus.PAID and outcomes["b" * 32].status is CheckStatus.NOT_FOUND
    # no keys: by position when the count matches
    positional = parse_list([{"status": "NOT_FOUND"}, {"errorCode": 3}], md5s, key_field="md5", endpoint=Endpoint.MD5_LIST)
    assert [o.status for o in positional.values()] == [CheckStatus.NOT_FOUND, CheckStatus.FAILED]
    # an item missing from the answer is not "not found"
    partial = parse_list([{"md5": "a" * 32, "status": "NOT_FOUND"}], md5s, key_field="md5", endpoint=Endpoint.MD5_LIST)
    assert partial["b" * 32].status is CheckStatus.REFUSED
    assert isinstance(partial["b" * 32].error, MalformedResponse)
    # a SUCCESS without a usable transaction is refused, not paid
    broken = parse_list([{"md5": "a" * 32, "status": "SUCCESS", "data": None}, "junk"], md5s, key_field="md5", endpoint=Endpoint.MD5_LIST)
    assert broken["a" * 32].status is CheckStatus.REFUSED and broken["b" * 32].status is CheckStatus.REFUSED
    with pytest.raises(MalformedResponse):
        parse_list({"not": "a list"}, md5s, key_field="md5", endpoint=Endpoint.MD5_LIST)


def test_renew_token_answers_carry_the_token_under_data() -> None:
    ok = interpret_response(Endpoint.RENEW_TOKEN, 200, envelope(None, "Token has been issued", {"token": "eyJnew"}))
    assert parse_token(ok) == "eyJnew"
    with pytest.raises(MalformedResponse):
        parse_token(interpret_response(Endpoint.RENEW_TOKEN, 200, envelope(None, "ok", {})))
