"""Malformed input: every string is answered, in time linear in its length, with only KHQRError.

The official SDK loops forever on some of these (a sub-field whose length does not parse, a
tag 30 whose length does not parse); ours stops reading at that point.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import khqr
from engine.khqr import KHQRError
from engine.khqr.jsnum import js_number, js_number_to_string, js_parse_int

NOW = 1_735_689_600_000
VALID = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B"
HEAD = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh"


def with_crc(body: str) -> str:
    """A string whose CRC is right, so verify has to look at the structure."""
    body += "6304"
    return body + khqr.crc16(body)


def answered_quickly(qr: str, limit: float = 0.5) -> tuple[dict, bool, dict]:
    start = time.perf_counter()
    decoded = khqr.decode(qr)
    verdict = khqr.verify(qr, now_ms=NOW)
    tlv = khqr.decode_non_khqr(qr)
    elapsed = time.perf_counter() - start
    assert elapsed < limit, f"{elapsed:.3f}s for {len(qr)} characters"
    return decoded, verdict, tlv


# Strings on which the SDK never returns (it spins in a `while (value)` loop).
SDK_HANGS = {
    "tag 62 sub-field length 'XX'": (with_crc(HEAD + "620803XXabcd"), None),
    "tag 62 sub-field length 'XX' after a bill number": (with_crc(HEAD + "62130103123XXabcd"), "123"),
    "tag 64 sub-field length '-4'": (with_crc(HEAD + "6406km-4ab"), None),
    "tag 99 sub-field length 'ab'": (with_crc(HEAD + "990600abcd"), None),
}


@pytest.mark.parametrize("case", SDK_HANGS, ids=list(SDK_HANGS))
def test_strings_the_sdk_loops_on_are_answered(case: str) -> None:
    qr, bill = SDK_HANGS[case]
    decoded, verdict, _ = answered_quickly(qr)
    assert decoded["merchant_name"] == "Jonh Smith"
    assert decoded["bill_number"] == bill
    assert decoded["crc"] == qr[-4:]
    assert isinstance(verdict, bool)


def test_a_non_numeric_sub_length_stops_reading_that_template() -> None:
    # Bill number "" (the SDK reads length NaN as an empty value), then the SDK would spin.
    qr = with_crc(HEAD + "620901XXabcde")
    decoded, verdict, _ = answered_quickly(qr)
    assert decoded["bill_number"] == ""
    assert verdict is False
    with pytest.raises(KHQRError) as caught:
        khqr.validate(qr, now_ms=NOW)
    assert caught.value.code == 10  # an empty bill number, as the SDK would judge it


def test_tag_30_with_a_length_that_does_not_parse() -> None:
    # The SDK renames 30 to 29 before remembering the last tag, so "30XX" never matches it: it spins.
    qr = with_crc("00020101021130XX0014jonhsmith@nbcq")
    decoded, verdict, _ = answered_quickly(qr)
    assert decoded["merchant_type"] == "30"
    assert decoded["bakong_account_id"] is None
    assert verdict is False


@pytest.mark.parametrize(
    "qr",
    [
        "0" * 200_000,
        "0004" * 50_000,
        "AB5a12345CD5a12345" * 15_000,  # the slow (parseInt) path with progress each time
        "0002ab" * 40_000,
        "😀" * 100_000 + "6304ABCD",
        "62" + "99" + "01XX" * 50_000,
        "30XX" * 50_000,
        "29-4" * 50_000,
        "00-9" * 50_000,
        with_crc("0002010102116299" + "0195" + "x" * 95),
        "",
        "6304",
        "63041234",
    ],
    ids=lambda qr: f"{qr[:10]!r}x{len(qr)}",
)
def test_long_and_degenerate_strings_take_linear_time(qr: str) -> None:
    decoded, verdict, tlv = answered_quickly(qr, limit=2.0)
    assert isinstance(decoded, dict) and isinstance(tlv, dict)
    assert verdict is False


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=300) | st.text(alphabet="0123456789 -+xXab@", max_size=300).map(lambda s: HEAD + s) | st.just(VALID))
def test_any_text_is_answered_with_a_dict_and_a_verdict(text: str) -> None:
    for qr in (text, with_crc(text)):
        decoded, verdict, tlv = answered_quickly(qr)
        assert list(decoded) == list(khqr.decode(VALID))
        assert isinstance(verdict, bool)
        try:
            khqr.validate(qr, now_ms=NOW)
        except KHQRError as exc:
            assert verdict is False and exc.code in khqr.ERROR_MESSAGES
        else:
            assert verdict is True


@pytest.mark.parametrize("value", [None, 123, b"000201", ["0002"], 1.5])
def test_non_strings(value: object) -> None:
    assert khqr.verify(value) is False  # type: ignore[arg-type]
    for reader in (khqr.decode, khqr.decode_non_khqr, khqr.validate):
        with pytest.raises(KHQRError) as caught:
            reader(value)  # type: ignore[arg-type]
        assert caught.value.code == 8


def test_lone_surrogates_are_hashed_like_node() -> None:
    assert khqr.crc16("\ud83d6304") == khqr.crc16("\ufffd6304")
    assert khqr.md5("a\udc00") == khqr.md5("a\ufffd")
    assert khqr.verify("\ud83d" + VALID) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [(" 5", 5), ("5a", 5), ("XX", None), ("-4", -4), ("+7", 7), ("0x1f", 31), ("0x", None), ("", None), ("\u00a09", 9), ("١٢", None)],
)
def test_parse_int_is_javascripts(text: str, expected: int | None) -> None:
    assert js_parse_int(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1735693200000", 1735693200000.0), (" 12 ", 12.0), ("", 0.0), ("0x1F", 31.0), ("1e3", 1000.0), (".5", 0.5),
     ("5.", 5.0), ("abc", None), ("1_000", None), ("Infinity", float("inf")), ("inf", None), ("-0x1", None)],
)
def test_number_is_javascripts(text: str, expected: float | None) -> None:
    assert js_number(text) == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [(1735693200000.0, "1735693200000"), (1e21, "1e+21"), (1e-7, "1e-7"), (1e-6, "0.000001"), (0.1, "0.1"),
     (1735693200000.5, "1735693200000.5"), (1.2345678e21, "1.2345678e+21"), (-0.0, "0"), (float("nan"), "NaN"),
     (12345678901234567890.0, "12345678901234567000"), (-5.5, "-5.5"), (float("-inf"), "-Infinity")],
)
def test_number_to_string_is_javascripts(number: float, expected: str) -> None:
    assert js_number_to_string(number) == expected
