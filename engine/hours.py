"""Opening hours: when the shop takes payments, per weekday, in Phnom Penh time.

``[hours]`` in the config declares each weekday as ranges (``"08:00-20:00"``, or several:
``"07:00-11:30, 13:00-21:00"``), ``"closed"``, or nothing (not declared). A range whose end is not
after its start runs past midnight (``"18:00-02:00"`` closes at 02:00 the next morning). The
poller plans its Bakong budget up to the closing time instead of midnight (``open_seconds``) and
notices payments made while the shop is closed (``closed_spans``); setup writes them, and the
shop's estimate of its payments on a normal open day (``parse_expected_payments``), the first
day's forecast before it has payments of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from engine.clock import PHNOM_PENH, utc
from engine.errors import InvalidInput

__all__ = [
    "MAX_EXPECTED_PAYMENTS",
    "WEEKDAYS",
    "OpeningHours",
    "Session",
    "expected_payments_problem",
    "format_day",
    "parse_day",
    "parse_expected_payments",
]

#: Config keys, Monday first (``date.weekday()`` order).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_DAY = 24 * 60
_NO_GRACE = timedelta(0)

#: The most payments a day an estimate may say: far past any shop (and past what a day's Bakong
#: quota can check); more is a typo.
MAX_EXPECTED_PAYMENTS = 100_000

#: One day's declaration: None when not declared, () when closed, else (open, close) minutes after
#: the day's local midnight, close > open (close may pass 1440: open past midnight).
DayHours = tuple[tuple[int, int], ...] | None


def _minute(hour: str, minute: str, text: str) -> int:
    h, m = int(hour), int(minute)
    if h > 24 or m > 59 or (h == 24 and m):
        raise InvalidInput(f"{text!r}: {hour}:{minute} is not a time of day (00:00-24:00)", field="hours")
    return h * 60 + m


def parse_day(text: str) -> DayHours:
    """One weekday's hours from the config's text; a clear ``InvalidInput`` when it cannot be read."""
    cleaned = text.strip().lower()
    if not cleaned:
        return None
    if cleaned == "closed":
        return ()
    ranges: list[tuple[int, int]] = []
    for part in cleaned.split(","):
        found = _RANGE.match(part.strip())
        if not found:
            raise InvalidInput(
                f"{text!r}: write opening hours as HH:MM-HH:MM (several separated by commas) or 'closed'",
                field="hours",
            )
        start = _minute(found[1], found[2], text)
        end = _minute(found[3], found[4], text)
        if start == _DAY:
            raise InvalidInput(f"{text!r}: a range cannot open at 24:00", field="hours")
        if end <= start:
            end += _DAY
        ranges.append((start, end))
    ranges.sort()
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        if start < end:
            raise InvalidInput(f"{text!r}: the ranges overlap", field="hours")
    if ranges[-1][1] > ranges[0][0] + _DAY:
        raise InvalidInput(f"{text!r}: the last range runs into the next day's first", field="hours")
    return tuple(ranges)


def expected_payments_problem(count: int, *, allow_none: bool = False) -> str | None:
    """Why ``count`` cannot be the payments of a normal open day, or None (0 is "not given"
    where ``allow_none``)."""
    if count == 0 and allow_none:
        return None
    if count < 1:
        return "at least 1 payment (leave it empty when you do not know)"
    if count > MAX_EXPECTED_PAYMENTS:
        return f"at most {MAX_EXPECTED_PAYMENTS:,} payments a day (is {count:,} a typo?)"
    return None


def parse_expected_payments(text: str) -> int:
    """The payments of a normal open day as typed (empty: not given, 0); a clear
    ``InvalidInput`` when it is not a whole number from 1 to ``MAX_EXPECTED_PAYMENTS``."""
    cleaned = text.strip().replace(",", "").replace("_", "")
    if not cleaned:
        return 0
    if not cleaned.isascii() or not cleaned.isdigit():
        raise InvalidInput(f"{text.strip()!r}: write a whole number of payments, e.g. 60 (empty: not known)", field="hours.expected_payments_per_day")
    count = int(cleaned)
    problem = expected_payments_problem(count)
    if problem:
        raise InvalidInput(f"{text.strip()!r}: {problem}", field="hours.expected_payments_per_day")
    return count


def format_day(hours: DayHours) -> str:
    """The config's text for one weekday (what ``parse_day`` reads back)."""
    if hours is None:
        return ""
    if not hours:
        return "closed"
    return ", ".join(f"{s // 60 % 24:02d}:{s % 60:02d}-{e // 60 % 24:02d}:{e % 60:02d}" for s, e in hours)


@dataclass(frozen=True)
class Session:
    """One stretch of open time, as UTC instants."""

    opens: datetime
    closes: datetime


@dataclass(frozen=True)
class OpeningHours:
    """The week's hours; ``declared`` is False when no weekday says anything."""

    days: tuple[DayHours, ...] = (None,) * 7

    @classmethod
    def parse(cls, by_weekday: dict[str, str]) -> OpeningHours:
        """From ``{"mon": "08:00-20:00", ...}``; an unknown key or bad text is ``InvalidInput``."""
        unknown = sorted(set(by_weekday) - set(WEEKDAYS))
        if unknown:
            raise InvalidInput(f"unknown weekday {unknown[0]!r} (use {', '.join(WEEKDAYS)})", field="hours")
        days = []
        for key in WEEKDAYS:
            try:
                days.append(parse_day(by_weekday.get(key, "")))
            except InvalidInput as exc:
                raise InvalidInput(f"{key}: {exc.message}", field=f"hours.{key}") from None
        return cls(tuple(days))

    @property
    def declared(self) -> bool:
        return any(day is not None for day in self.days)

    def sessions_on(self, day: date) -> list[Session]:
        """The sessions that open on local date ``day`` (an undeclared day has none)."""
        declared = self.days[day.weekday()]
        if not declared:
            return []
        midnight = datetime.combine(day, time(0), PHNOM_PENH)
        return [
            Session(utc(midnight + timedelta(minutes=start)), utc(midnight + timedelta(minutes=end)))
            for start, end in declared
        ]

    def session_at(self, at: datetime) -> Session | None:
        """The session open at instant ``at``, if any (yesterday's may still run past midnight)."""
        local_day = utc(at).astimezone(PHNOM_PENH).date()
        for day in (local_day - timedelta(days=1), local_day):
            for session in self.sessions_on(day):
                if session.opens <= at < session.closes:
                    return session
        return None

    def declared_on(self, day: date) -> bool:
        """Whether local date ``day``'s weekday says anything (hours or "closed")."""
        return self.days[day.weekday()] is not None

    def open_spans(self, start: datetime, end: datetime, *, grace: timedelta = _NO_GRACE) -> list[tuple[datetime, datetime]]:
        """The open stretches of [start, end), each session taken to last ``grace`` past its
        closing time, merged and in order (a day not declared has no session)."""
        first = utc(start - grace).astimezone(PHNOM_PENH).date() - timedelta(days=1)
        last = utc(end).astimezone(PHNOM_PENH).date()
        sessions = sorted(
            (s.opens, s.closes + grace)
            for offset in range((last - first).days + 1)
            for s in self.sessions_on(first + timedelta(days=offset))
        )
        spans: list[tuple[datetime, datetime]] = []
        for opens, closes in sessions:
            a, b = max(opens, start), min(closes, end)
            if b <= a:
                continue
            if spans and a <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], b))
            else:
                spans.append((a, b))
        return spans

    def open_seconds(self, start: datetime, end: datetime, *, grace: timedelta = _NO_GRACE) -> float:
        """Seconds of [start, end) inside a session (each lasting ``grace`` past its closing)."""
        return sum(((b - a).total_seconds() for a, b in self.open_spans(start, end, grace=grace)), 0.0)

    def closed_spans(self, start: datetime, end: datetime, *, grace: timedelta = _NO_GRACE) -> list[tuple[datetime, datetime]]:
        """The stretches of [start, end) outside every session (each lasting ``grace`` past its
        closing), in order."""
        out: list[tuple[datetime, datetime]] = []
        reach = start
        for a, b in self.open_spans(start, end, grace=grace):
            if a > reach:
                out.append((reach, a))
            reach = b
        if reach < end:
            out.append((reach, end))
        return out

    def is_open(self, at: datetime) -> bool:
        return self.session_at(at) is not None

    def next_session(self, at: datetime) -> Session | None:
        """The session open at ``at``, else the next one to open within a week (None: none declared)."""
        current = self.session_at(at)
        if current is not None:
            return current
        local_day = utc(at).astimezone(PHNOM_PENH).date()
        for offset in range(8):
            for session in self.sessions_on(local_day + timedelta(days=offset)):
                if session.opens > at:
                    return session
        return None
