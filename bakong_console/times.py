"""How every face writes an instant for people: Phnom Penh wall-clock time, always labelled with
its offset (``+07``), so a time read in the console, a CLI line or a log pasted into a chat can
never be taken for UTC or the reader's own zone. Cambodia keeps UTC+7 all year (no daylight
saving). Machine output (JSON, the API) stays ISO 8601 in UTC; this is only for people.
"""

from __future__ import annotations

from datetime import datetime

from engine.clock import PHNOM_PENH, utc

__all__ = ["ZONE_LABEL", "clock_time", "local_time"]

#: What follows every time written for people.
ZONE_LABEL = "+07"


def local_time(dt: datetime | None, *, missing: str = "-") -> str:
    """An instant in Phnom Penh time, to the second: '2026-01-15 10:00:05 +07'; ``missing`` for None."""
    if dt is None:
        return missing
    return f"{utc(dt).astimezone(PHNOM_PENH):%Y-%m-%d %H:%M:%S} {ZONE_LABEL}"


def clock_time(dt: datetime) -> str:
    """Phnom Penh wall-clock time, for today's events: '10:00:05 +07'."""
    return f"{utc(dt).astimezone(PHNOM_PENH):%H:%M:%S} {ZONE_LABEL}"
