"""How the console reads a time it is given: a span an operator types (``7d``, ``12h``, ``30m``)
and an ISO instant, from an operator or from an event's payload (``Z`` read as UTC).

The subscriptions filter (``ends:7d``), the webhooks "recover since" field (``2h``), the board's
rows built from events and the App's alerts all read times the same way here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["parse_instant", "parse_span"]

_SPAN_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_span(text: str) -> timedelta | None:
    """``"7d"``, ``"12h"`` or ``"30m"`` (minutes) as a duration; None when ``text`` is not one."""
    if not text:
        return None
    unit = text[-1].lower()
    if unit in _SPAN_UNITS and text[:-1].isdigit():
        return timedelta(seconds=int(text[:-1]) * _SPAN_UNITS[unit])
    return None


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time (``2026-01-15T09:00+07:00``, or ``…Z`` for UTC); ``ValueError`` if it is not one."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
