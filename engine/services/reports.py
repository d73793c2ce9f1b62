"""The owner's reports: one day (totals per currency, hours against last week, status mix, median
time to paid, per terminal and per cashier, Bakong requests against the budget), the last days as
a line, and totals over a range grouped by day, hour of day, terminal or cashier.

Days are Asia/Phnom_Penh calendar days; a payment counts on the day it was created. Every figure
comes from a GROUP BY in ``engine.db.reports``; a closed day's frozen totals and the adjustments
made after closes come from ``engine.services.day_close`` when that is wired in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime, timedelta

from engine.clock import PHNOM_PENH, Clock
from engine.config import Settings
from engine.db import reconciliation as reconciled
from engine.db import reports as repo
from engine.db.storage import Storage, Tx
from engine.errors import InvalidInput
from engine.report_records import (
    OPEN_STATUSES,
    BakongUse,
    CurrencyTotal,
    DayPoint,
    DayReport,
    GroupTotal,
    HourPoint,
    RangeReport,
    StatusTotal,
)
from engine.terminals import TERMINAL_RULE, is_terminal_name

__all__ = ["MAX_RANGE_DAYS", "RANGE_GROUPS", "ReportService"]

#: The longest range a report covers, in days (both ends included).
MAX_RANGE_DAYS = 366
#: What ``range`` can group by.
RANGE_GROUPS = ("day", "hour", "terminal", "cashier")

#: Fills a day report in with what a later layer knows (a close, adjustments, reconciliation).
DayReportExtension = Callable[[Tx, DayReport], Awaitable[DayReport]]


def _currency_totals(rows: Iterable[tuple[object, str, int, int, int]]) -> tuple[CurrencyTotal, ...]:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for _key, currency, payments, paid_count, paid_minor in rows:
        acc = sums[currency]
        acc[0] += payments
        acc[1] += paid_count
        acc[2] += paid_minor
    return tuple(CurrencyTotal(c, *sums[c]) for c in sorted(sums))


def _group_totals(rows: Iterable[tuple[object, str, int, int, int]], label: Callable[[object], str | None]) -> tuple[GroupTotal, ...]:
    sums: dict[tuple[str | None, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for key, currency, payments, paid_count, paid_minor in rows:
        acc = sums[(label(key), currency)]
        acc[0] += payments
        acc[1] += paid_count
        acc[2] += paid_minor
    order = sorted(sums, key=lambda k: ("" if k[0] is None else "\x01" + k[0], k[1]))
    return tuple(GroupTotal(k, c, *sums[(k, c)]) for k, c in order)


def _local_hour(instant: object) -> int:
    assert isinstance(instant, datetime)
    return instant.astimezone(PHNOM_PENH).hour


class ReportService:
    """Reads for the Reports screen, ``report day`` and ``report range``; it writes nothing."""

    def __init__(self, storage: Storage, settings: Settings, *, clock: Clock) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self._extensions: list[DayReportExtension] = []

    def extend(self, extension: DayReportExtension) -> None:
        """Have ``extension`` complete every day report (the day close adds its part this way)."""
        self._extensions.append(extension)

    def today(self) -> date:
        """Today in Asia/Phnom_Penh."""
        return repo.local_day(self.clock.now())

    # --- checks -----------------------------------------------------------------------------------

    def check_day(self, day: date, *, field: str = "date") -> date:
        """``day`` itself, or InvalidInput when it is still to come."""
        today = self.today()
        if day > today:
            raise InvalidInput(f"{field} {day.isoformat()} is in the future (today is {today.isoformat()} in Asia/Phnom_Penh)", field=field)
        return day

    async def check_terminal(self, tx: Tx, terminal: str | None) -> str | None:
        """``terminal`` itself when payments were ever made there, else InvalidInput naming the known ones."""
        if terminal is None:
            return None
        if not is_terminal_name(terminal):
            raise InvalidInput(f"terminal: {TERMINAL_RULE}", field="terminal")
        if await repo.terminal_exists(tx, terminal):
            return terminal
        known = await repo.known_terminals(tx)
        choices = ", ".join(known) if known else "no payment was made at any terminal yet"
        raise InvalidInput(f"unknown terminal {terminal!r} (known: {choices})", field="terminal")

    # --- one day ----------------------------------------------------------------------------------

    async def day(self, day: date | None = None, *, terminal: str | None = None) -> DayReport:
        """The report of ``day`` (today by default), optionally of one terminal only."""
        day = self.check_day(day or self.today())
        start, end = repo.day_window(day)
        week = timedelta(days=7)
        async with self.storage.read() as tx:
            terminal = await self.check_terminal(tx, terminal)
            hourly = await repo.totals_by(tx, start, end, key="hour", terminal=terminal)
            last_week = await repo.totals_by(tx, start - week, end - week, key="hour", terminal=terminal)
            statuses = await repo.status_totals(tx, start, end, terminal=terminal)
            terminals = await repo.totals_by(tx, start, end, key="terminal", terminal=terminal)
            cashiers = await repo.totals_by(tx, start, end, key="cashier", terminal=terminal)
            median = await repo.median_seconds_to_paid(tx, start, end, terminal=terminal)
            opened = await repo.open_items(tx, start, end, terminal=terminal)
            requests = await repo.requests_by_hour(tx, start, end)
            checked = await reconciled.count_day(tx, day)
            report = DayReport(
                day=day,
                start=start,
                end=end,
                generated_at=self.clock.now(),
                terminal=terminal,
                totals=_currency_totals(hourly),
                statuses=tuple(StatusTotal(*row) for row in sorted(statuses)),
                hours=self._hours(hourly, last_week),
                terminals=_group_totals(terminals, lambda k: k if isinstance(k, str) else None),
                cashiers=_group_totals(cashiers, lambda k: str(k)),
                median_seconds_to_paid=median,
                bakong=self._bakong_use(requests),
                open_items=tuple(opened),
                open_count=sum(n for status, _c, n, _a in statuses if status in OPEN_STATUSES),
                reconciliation={"reconciled": checked.reconciled, "flagged": checked.flagged_total, "unchecked": checked.unchecked},
            )
            for extension in self._extensions:
                report = await extension(tx, report)
        return report

    @staticmethod
    def _hours(today: list[tuple[object, str, int, int, int]], last_week: list[tuple[object, str, int, int, int]]) -> tuple[HourPoint, ...]:
        now_counts = [0] * 24
        then_counts = [0] * 24
        for key, _c, payments, _p, _m in today:
            now_counts[_local_hour(key)] += payments
        for key, _c, payments, _p, _m in last_week:
            then_counts[_local_hour(key)] += payments
        return tuple(HourPoint(h, now_counts[h], then_counts[h]) for h in range(24))

    def _bakong_use(self, requests: list[tuple[datetime, int]]) -> BakongUse:
        by_hour = [0] * 24
        for hour, n in requests:
            by_hour[_local_hour(hour)] += n
        return BakongUse(used=sum(by_hour), budget=self.settings.bakong.effective_daily_budget, by_hour=tuple(by_hour))

    # --- several days -----------------------------------------------------------------------------

    async def last_days(self, days: int = 30, *, until: date | None = None, terminal: str | None = None) -> tuple[DayPoint, ...]:
        """One point per day for the ``days`` days ending with ``until`` (today), with the paid
        count of the same weekday a week earlier as the ghost line."""
        last = self.check_day(until or self.today())
        if not 1 <= days <= MAX_RANGE_DAYS:
            raise InvalidInput(f"days must be between 1 and {MAX_RANGE_DAYS}", field="days")
        first = last - timedelta(days=days - 1)
        start, _ = repo.day_window(first - timedelta(days=7))
        _, end = repo.day_window(last)
        async with self.storage.read() as tx:
            terminal = await self.check_terminal(tx, terminal)
            rows = await repo.totals_by(tx, start, end, key="hour", terminal=terminal)
        made: dict[date, int] = defaultdict(int)
        paid: dict[date, int] = defaultdict(int)
        for key, _c, payments, paid_count, _m in rows:
            assert isinstance(key, datetime)
            made[repo.local_day(key)] += payments
            paid[repo.local_day(key)] += paid_count
        points = []
        for i in range(days):
            d = first + timedelta(days=i)
            points.append(DayPoint(d, made[d], paid[d], paid[d - timedelta(days=7)]))
        return tuple(points)

    def check_range(self, first: date, last: date) -> None:
        self.check_day(first, field="from")
        self.check_day(last, field="to")
        if last < first:
            raise InvalidInput(f"to {last.isoformat()} is before from {first.isoformat()}", field="to")
        span = (last - first).days + 1
        if span > MAX_RANGE_DAYS:
            raise InvalidInput(f"the range covers {span} days; a report covers at most {MAX_RANGE_DAYS}", field="to")

    async def range(self, first: date, last: date, *, by: str = "day", terminal: str | None = None) -> RangeReport:
        """Totals per currency from ``first`` to ``last`` (both included), grouped by ``by``:
        "day" (local date), "hour" (local hour of day over the whole range), "terminal" or "cashier"."""
        if by not in RANGE_GROUPS:
            raise InvalidInput(f"cannot group by {by!r}; choose one of {', '.join(RANGE_GROUPS)}", field="by")
        self.check_range(first, last)
        start, _ = repo.day_window(first)
        _, end = repo.day_window(last)
        async with self.storage.read() as tx:
            terminal = await self.check_terminal(tx, terminal)
            rows = await repo.totals_by(tx, start, end, key="hour" if by in ("day", "hour") else by, terminal=terminal)
        if by == "day":
            grouped = _group_totals(rows, lambda k: repo.local_day(k).isoformat() if isinstance(k, datetime) else None)
        elif by == "hour":
            grouped = _group_totals(rows, lambda k: f"{_local_hour(k):02d}")
        elif by == "terminal":
            grouped = _group_totals(rows, lambda k: k if isinstance(k, str) else None)
        else:
            grouped = _group_totals(rows, lambda k: str(k))
        return RangeReport(first=first, last=last, by=by, terminal=terminal, rows=grouped, totals=_currency_totals(rows))

