"""Opening hours: parsing the config's text and finding the session open at an instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import PHNOM_PENH
from engine.config import load_settings
from engine.errors import ConfigError, InvalidInput
from engine.hours import OpeningHours, format_day, parse_day, parse_expected_payments


def pp(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant given in Phnom Penh time in January 2026 (the 12th is a Monday), as UTC."""
    return datetime(2026, 1, day, hour, minute, tzinfo=PHNOM_PENH).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", None),
        ("  ", None),
        ("closed", ()),
        ("Closed", ()),
        ("08:00-20:00", ((480, 1200),)),
        ("8:30 - 17:45", ((510, 1065),)),
        ("13:00-21:00, 07:00-11:30", ((420, 690), (780, 1260))),
        ("18:00-02:00", ((1080, 1560),)),
        ("00:00-24:00", ((0, 1440),)),
    ],
)
def test_parse_day(text: str, parsed: object) -> None:
    assert parse_day(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8-20", "write opening hours as HH:MM-HH:MM"),
        ("25:00-26:00", "is not a time of day"),
        ("08:60-10:00", "is not a time of day"),
        ("08:00-12:00, 11:00-13:00", "the ranges overlap"),
        ("08:00-12:00, 20:00-09:00", "runs into the next day"),
        ("24:00-08:00", "cannot open at 24:00"),
    ],
)
def test_bad_day_text_says_why(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_day(text)


@pytest.mark.parametrize("text", ["", "closed", "08:00-20:00", "07:00-11:30, 13:00-21:00", "18:00-02:00"])
def test_format_reads_back(text: str) -> None:
    assert format_day(parse_day(text)) == text


def test_sessions_and_the_session_open_at_an_instant() -> None:
    week = OpeningHours.parse({"mon": "08:00-20:00", "tue": "18:00-02:00", "sun": "closed"})
    assert week.declared
    assert not OpeningHours().declared
    monday = week.sessions_on(date(2026, 1, 12))
    assert [(s.opens, s.closes) for s in monday] == [(pp(12, 8), pp(12, 20))]
    assert week.is_open(pp(12, 8)) and week.is_open(pp(12, 19, 59))
    assert not week.is_open(pp(12, 20)) and not week.is_open(pp(12, 7, 59))
    # Tuesday's evening runs past midnight into Wednesday.
    late = week.session_at(pp(14, 1, 30))
    assert late is not None and (late.opens, late.closes) == (pp(13, 18), pp(14, 2))
    # Closed on Sunday; the next session after Sunday noon is Monday's.
    nxt = week.next_session(pp(18, 12))
    assert nxt is not None and nxt.opens == pp(19, 8)
    assert OpeningHours().next_session(pp(18, 12)) is None


def test_config_hours_are_checked_when_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[hours]\nmon = "08:00-20:00"\nsun = "closed"\n', encoding="utf-8")
    hours = load_settings(path).hours.opening_hours()
    assert hours.days[0] == ((480, 1200),) and hours.days[6] == () and hours.days[1] is None
    path.write_text('[hours]\nmon = "8am to 8pm"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hours\.mon: '8am to 8pm': write opening hours as HH:MM-HH:MM"):
        load_settings(path)
    path.write_text('[hours]\nmonday = "08:00-20:00"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[hours\] unknown key 'monday'"):
        load_settings(path)


def test_the_expected_payments_of_a_normal_day_load_with_the_hours(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[hours]\nmon = "08:00-20:00"\nexpected_payments_per_day = 60\n', encoding="utf-8")
    settings = load_settings(path)
    assert settings.hours.expected_payments_per_day == 60
    assert settings.hours.opening_hours().days[0] == ((480, 1200),)  # the estimate is no weekday
    path.write_text("[hours]\nexpected_payments_per_day = 250000\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hours\.expected_payments_per_day: at most 100,000 payments a day"):
        load_settings(path)
    path.write_text("[hours]\nexpected_payments_per_day = -5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"expected_payments_per_day: must not be negative"):
        load_settings(path)


@pytest.mark.parametrize(("text", "count"), [("", 0), (" 60 ", 60), ("1,200", 1200), ("100000", 100_000)])
def test_expected_payments_as_typed(text: str, count: int) -> None:
    assert parse_expected_payments(text) == count


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sixty", "'sixty': write a whole number of payments, e.g. 60 (empty: not known)"),
        ("60.5", "'60.5': write a whole number"),
        ("-3", "'-3': write a whole number"),
        ("0", "'0': at least 1 payment (leave it empty when you do not know)"),
        ("100001", "'100001': at most 100,000 payments a day (is 100,001 a typo?)"),
    ],
)
def test_expected_payments_that_are_no_count_say_why(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_expected_payments(text)
    assert raised.value.message.startswith(message) and raised.value.field == "hours.expected_payments_per_day"


def test_open_time_between_two_instants_with_the_closing_margin() -> None:
    week = OpeningHours.parse({"mon": "07:00-11:30, 13:00-21:00", "tue": "18:00-02:00", "wed": "", "sun": "closed"})
    quarter = timedelta(minutes=15)
    # Monday from 10:00 to midnight: 1.5 h before lunch, 8 h after
    assert week.open_seconds(pp(12, 10), pp(13, 0)) == (1.5 + 8) * 3600
    # with the margin each session lasts 15 minutes longer
    assert week.open_seconds(pp(12, 10), pp(13, 0), grace=quarter) == (1.75 + 8.25) * 3600
    assert week.open_spans(pp(12, 21), pp(13, 0), grace=quarter) == [(pp(12, 21), pp(12, 21, 15))]
    # Tuesday's evening runs past midnight: Wednesday (not declared) is open until 02:00
    assert week.open_seconds(pp(14, 0), pp(15, 0)) == 2 * 3600
    assert week.closed_spans(pp(14, 0), pp(14, 12)) == [(pp(14, 2), pp(14, 12))]
    # a closed Sunday: nothing open, all of it closed
    assert week.open_seconds(pp(18, 0), pp(19, 0)) == 0
    assert week.closed_spans(pp(18, 0), pp(18, 9)) == [(pp(18, 0), pp(18, 9))]
    # Monday's closed stretches up to 22:00 with the margin: before opening, lunch, after closing
    assert week.closed_spans(pp(12, 0), pp(12, 22), grace=quarter) == [
        (pp(12, 0), pp(12, 7)),
        (pp(12, 11, 45), pp(12, 13)),
        (pp(12, 21, 15), pp(12, 22)),
    ]
    assert week.declared_on(date(2026, 1, 18)) and not week.declared_on(date(2026, 1, 14))


def test_a_margin_that_bridges_two_sessions_merges_them() -> None:
    week = OpeningHours.parse({"mon": "08:00-12:00, 12:10-18:00"})
    assert week.open_spans(pp(12, 0), pp(13, 0), grace=timedelta(minutes=15)) == [(pp(12, 8), pp(12, 18, 15))]
    assert week.closed_spans(pp(12, 9), pp(12, 17), grace=timedelta(minutes=15)) == []
