"""What the declared opening hours tell the poller's budget forecast, and the alert when today's
payments say they are wrong.

With hours declared for today, payments are expected only while the shop is open: the forecast
(``DayForecast``) carries today's rate over the open time left before the quota resets (each
session lasting ``CLOSING_MARGIN`` past its closing time: the last customers at the counter), and
measures rates over open time rather than clock time (at 08:30 the shop has been open half an
hour, not two). Its history is the last open day (a Monday after a closed Sunday looks back to
Saturday), whose total came in that day's open time; the shop's own estimate of a normal open
day (``[hours] expected_payments_per_day``) is spread over ``normal_open``, the open time of a
normal open day. A payment the shop creates outside them (past the margin;
a subscription's invoice, issued by the engine at any hour, does not count) means the hours
cannot be trusted today: the forecast runs to the reset as without hours, and one
``alert.opening_hours_mismatch`` event is raised for the day (remembered in the database, so a
restart or another poller does not raise it again).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from engine import events as ev
from engine.clock import PHNOM_PENH, utc
from engine.db import journal
from engine.db import payments as repo
from engine.db import state as engine_state
from engine.db.storage import Storage
from engine.hours import WEEKDAYS, OpeningHours, format_day

__all__ = ["CLOSING_MARGIN", "HOURS_ALERT_STATE", "MIN_DEMAND_SECONDS", "OpeningHoursForecast", "TodaysHours"]

#: Payments are still expected this long after a session closes (customers served at closing time);
#: one created then is not outside the hours.
CLOSING_MARGIN = timedelta(minutes=15)
#: The recent rate is never measured over less open time than this (two payments in the first
#: minutes after opening are not a rate of hundreds an hour).
MIN_DEMAND_SECONDS = 1800.0
#: How far back the forecast looks for the last open day (a week: the same weekday at worst).
HISTORY_DAYS = 7
#: The engine state holding the local day the mismatch alert was last raised for.
HOURS_ALERT_STATE = "poller.hours_alert"


@dataclass(frozen=True)
class TodaysHours:
    """The forecast's view of today: the open time left before the reset (with the margin), the
    open time of the demand window, today's open time so far, the last open day (its local date,
    whose payments are the forecast's history) and its open time, and a normal open day's open
    time (what the shop's estimate is spread over); None for each when the hours do not apply
    today."""

    seconds_to_close: float | None
    demand_seconds: float | None
    open_elapsed: float | None = None
    history_day: date | None = None
    history_open: float | None = None
    normal_open: float | None = None

    @property
    def applies(self) -> bool:
        """Whether the hours shape today's forecast (then every figure above is set)."""
        return self.seconds_to_close is not None


_NOT_APPLIED = TodaysHours(None, None)


def _normal_open(hours: OpeningHours) -> float:
    """The open time of a normal open day, in seconds: the median over the weekdays declared open
    (each session with its margin); 0 when none is."""
    lengths = sorted(
        sum(end - start for start, end in ranges) * 60.0 + len(ranges) * CLOSING_MARGIN.total_seconds()
        for ranges in hours.days
        if ranges
    )
    return statistics.median(lengths) if lengths else 0.0


class OpeningHoursForecast:
    """The declared hours, checked against today's payments once per poller pass."""

    def __init__(self, storage: Storage, hours: OpeningHours) -> None:
        self.storage = storage
        self.hours = hours
        self.normal_open = _normal_open(hours)
        #: The local day on which a payment was seen outside the hours (they are ignored until it ends).
        self._mismatch_on: date | None = None

    async def today(self, now: datetime, reset: datetime, demand_window: timedelta) -> TodaysHours:
        """What the hours say at ``now`` about the budget day ending at ``reset``."""
        local_day = utc(now).astimezone(PHNOM_PENH).date()
        if not self.hours.declared_on(local_day) or self._mismatch_on == local_day:
            return _NOT_APPLIED
        midnight = utc(datetime.combine(local_day, time(0), PHNOM_PENH))
        # up to and including ``now``: a payment created at this very instant counts
        closed = self.hours.closed_spans(midnight, now + timedelta(microseconds=1), grace=CLOSING_MARGIN)
        if closed:
            async with self.storage.read() as tx:
                outside = 0
                for start, end in closed:
                    outside += await repo.count_shop_payments_created_between(tx, start, end)
            if outside:
                self._mismatch_on = local_day
                await self._alert(local_day, outside)
                return _NOT_APPLIED
        to_close = self.hours.open_seconds(now, reset, grace=CLOSING_MARGIN)
        elapsed = self.hours.open_seconds(midnight, now, grace=CLOSING_MARGIN)
        history_day = self.last_open_day(local_day)
        history_midnight = utc(datetime.combine(history_day, time(0), PHNOM_PENH))
        return TodaysHours(
            seconds_to_close=to_close,
            demand_seconds=max(MIN_DEMAND_SECONDS, self.hours.open_seconds(now - demand_window, now, grace=CLOSING_MARGIN)),
            open_elapsed=elapsed,
            history_day=history_day,
            # a day whose hours are not declared: taken to have been open as long as today
            history_open=(
                self.hours.open_seconds(history_midnight, history_midnight + timedelta(days=1), grace=CLOSING_MARGIN)
                if self.hours.declared_on(history_day)
                else elapsed + to_close
            ),
            normal_open=self.normal_open or elapsed + to_close,
        )

    def last_open_day(self, local_day: date) -> date:
        """The latest local day before ``local_day`` that was not declared closed (yesterday, or
        Saturday for a Monday after a closed Sunday; a week back at worst: today's weekday)."""
        for back in range(1, HISTORY_DAYS):
            day = local_day - timedelta(days=back)
            if self.hours.days[day.weekday()] != ():
                return day
        return local_day - timedelta(days=HISTORY_DAYS)

    async def _alert(self, local_day: date, outside: int) -> None:
        """One alert per local day, however many payments and pollers see it."""
        declared = format_day(self.hours.days[local_day.weekday()]) or "not declared"
        message = (
            f"{outside} payment{'s' if outside != 1 else ''} created today outside the declared opening hours "
            f"({WEEKDAYS[local_day.weekday()]}: {declared}); check [hours] in the config. "
            "Until midnight the Bakong budget is planned as if no hours were declared."
        )
        async with self.storage.transaction() as tx:
            stored = await engine_state.get_state(tx, HOURS_ALERT_STATE)
            if stored and stored.get("day") == local_day.isoformat():
                return
            await engine_state.set_state(tx, HOURS_ALERT_STATE, {"day": local_day.isoformat()})
            await journal.append_event(
                tx, ev.ALERT_OPENING_HOURS_MISMATCH, "hours", local_day.isoformat(),
                {"message": message, "day": local_day.isoformat(), "outside": outside, "declared": declared},
            )  # fmt: skip
