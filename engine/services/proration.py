"""Proration of a mid-period upgrade: the exact charge, in integer minor units.

The rule (one rule, everywhere: preview, invoice, console):

    amount = (new_price - old_price) * remaining_seconds / cycle_seconds

- ``new_price`` and ``old_price`` are per-cycle prices in minor units of one currency (KHR in whole
  riel, USD in cents); ``old_price`` is what the subscription pays for its current period.
- ``remaining_seconds`` is the time from now to the end of the current period **in whole seconds**
  (a second that has begun counts as used), never more than the cycle and never less than zero.
- ``cycle_seconds`` is the length of the period (``cycle_days * 86400``).
- The exact rational result is rounded **half up** to the currency's minor unit (a remainder of
  exactly one half rounds up; below one half rounds down), computed with integers only.

So on the first second of a period an upgrade costs the full price difference, on the last
second one second's worth (often 0, which applies the upgrade at once with nothing to pay), and
an upgrade between plans of equal price costs 0.
"""

from __future__ import annotations

from datetime import datetime

from engine.money import check_currency

__all__ = ["SECONDS_PER_DAY", "prorate", "remaining_seconds"]

SECONDS_PER_DAY = 86_400


def remaining_seconds(now: datetime, period_end: datetime, cycle_seconds: int) -> int:
    """Whole seconds left in the period at ``now``, clamped to ``[0, cycle_seconds]``."""
    delta = period_end - now
    # floor division on the timedelta: 12.9 s left counts as 12
    whole = delta.days * SECONDS_PER_DAY + delta.seconds
    return max(0, min(cycle_seconds, whole))


def prorate(new_price_minor: int, old_price_minor: int, remaining: int, cycle_seconds: int, currency: str) -> int:
    """The prorated charge in minor units of ``currency`` (rounded half up, see the module rule)."""
    check_currency(currency)
    for name, value in (("new_price_minor", new_price_minor), ("old_price_minor", old_price_minor), ("remaining", remaining)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not isinstance(cycle_seconds, int) or cycle_seconds <= 0:
        raise ValueError(f"cycle_seconds must be a positive integer, got {cycle_seconds!r}")
    if remaining > cycle_seconds:
        raise ValueError("remaining cannot exceed the cycle")
    diff = new_price_minor - old_price_minor
    if diff < 0:
        raise ValueError("an upgrade cannot cost less than the current price (that is a downgrade)")
    quotient, remainder = divmod(diff * remaining, cycle_seconds)
    if 2 * remainder >= cycle_seconds:
        quotient += 1
    return quotient
