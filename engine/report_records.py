"""The frozen shapes of the owner's reports: a day's totals, its hours, its counters and cashiers,
the Bakong requests it used, a closed day ("Z report") and the adjustments made after a close.

Amounts are integer minor units of one currency each; nothing here ever adds two currencies.
Days are calendar days in Asia/Phnom_Penh; a payment belongs to the day it was created on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = [
    "Adjustment",
    "BakongUse",
    "CurrencyTotal",
    "DayClose",
    "DayPoint",
    "DayReport",
    "GroupTotal",
    "HourPoint",
    "OpenItem",
    "RangeReport",
    "StatusTotal",
]

#: The statuses that still need a decision before a day can be closed.
OPEN_STATUSES: tuple[str, ...] = ("NEEDS_REVIEW", "PAID_LATE", "PENDING")


@dataclass(frozen=True)
class CurrencyTotal:
    """One currency's totals: payments made, and those PAID with their exact sum."""

    currency: str
    payments: int
    paid_count: int
    paid_minor: int


@dataclass(frozen=True)
class StatusTotal:
    """How many payments of one currency are in one status, and their sum."""

    status: str
    currency: str
    count: int
    amount_minor: int


@dataclass(frozen=True)
class GroupTotal:
    """Totals of one group (a terminal, a cashier, a day or an hour) in one currency."""

    key: str | None
    currency: str
    payments: int
    paid_count: int
    paid_minor: int


@dataclass(frozen=True)
class HourPoint:
    """Payments made in one local hour of the day, and in the same hour a week earlier."""

    hour: int
    payments: int
    last_week: int


@dataclass(frozen=True)
class DayPoint:
    """Payments made and paid on one local day, and paid on the same weekday a week earlier."""

    day: date
    payments: int
    paid_count: int
    last_week_paid: int


@dataclass(frozen=True)
class BakongUse:
    """Bakong requests reserved in the ledger over one day, per local hour, against the budget."""

    used: int
    budget: int
    by_hour: tuple[int, ...]


@dataclass(frozen=True)
class OpenItem:
    """A payment of the day that still needs a decision (NEEDS_REVIEW, PAID_LATE, PENDING)."""

    payment_id: str
    status: str
    currency: str
    amount_minor: int
    created_at: datetime


@dataclass(frozen=True)
class Adjustment:
    """A change to a payment of a closed day, made after that day was closed.

    ``amount_minor`` is signed: what it adds to (or takes from) the paid total of ``currency``.
    It lands on ``landed_on``: the day it was made, or the next day when that one was closed too.
    """

    payment_id: str
    currency: str
    amount_minor: int
    from_status: str | None
    to_status: str
    at: datetime
    actor: str
    payment_day: date
    landed_on: date


@dataclass(frozen=True)
class DayClose:
    """A closed day: its totals frozen when it was closed, by whom, and why if forced."""

    day: date
    closed_at: datetime
    closed_by: str
    forced: bool
    reason: str | None
    totals: tuple[CurrencyTotal, ...]
    terminals: tuple[GroupTotal, ...]
    statuses: tuple[StatusTotal, ...]
    open_items: tuple[OpenItem, ...]
    #: The adjustments that had landed on this day when it was closed.
    adjustments: tuple[Adjustment, ...]


@dataclass(frozen=True)
class DayReport:
    """Everything the owner looks at about one day."""

    day: date
    start: datetime
    end: datetime
    generated_at: datetime
    terminal: str | None
    totals: tuple[CurrencyTotal, ...]
    statuses: tuple[StatusTotal, ...]
    hours: tuple[HourPoint, ...]
    terminals: tuple[GroupTotal, ...]
    cashiers: tuple[GroupTotal, ...]
    median_seconds_to_paid: float | None
    bakong: BakongUse
    open_items: tuple[OpenItem, ...]
    open_count: int
    close: DayClose | None = None
    #: Changes to closed days' payments that landed on this day.
    adjustments_in: tuple[Adjustment, ...] = ()
    #: Changes to this day's payments made after it was closed (they landed on later days).
    adjustments_out: tuple[Adjustment, ...] = ()
    #: The payments paid on this day (by ``paid_at``, all terminals) by what reconciliation with
    #: Bakong found: "reconciled", "flagged", "unchecked" (not yet re-checked).
    reconciliation: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RangeReport:
    """Totals over several days, grouped by day, hour of day, terminal or cashier."""

    first: date
    last: date
    by: str
    terminal: str | None
    rows: tuple[GroupTotal, ...]
    totals: tuple[CurrencyTotal, ...]
