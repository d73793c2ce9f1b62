"""The delivery policy: the retry schedule, jitter, ``Retry-After``, and what an answer means.

Attempt 1 goes out as soon as the event is fanned out; after a failed attempt ``n`` the next one
waits ``RETRY_DELAYS[n]`` (±jitter). Ten attempts span about 75 hours; after the tenth failure
the delivery is given up (the events feed still has it). 2xx is success and anything else a
failure (3xx included: a webhook URL must not redirect). 429/502/503/504 honour ``Retry-After``
(at least 60 s when absent); 410 Gone disables the endpoint at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "BACKPRESSURE_STATUSES",
    "MAX_ATTEMPTS",
    "RETRY_DELAYS",
    "AttemptResult",
    "next_delay",
    "parse_retry_after",
]

#: Seconds before attempt k+1 (index k = attempts made so far): immediately, 5 s, 5 min, 30 min,
#: 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
RETRY_DELAYS: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
MAX_ATTEMPTS = len(RETRY_DELAYS)
#: Answers that mean "slow down": Retry-After is honoured, at least a minute when it is absent.
BACKPRESSURE_STATUSES = frozenset({429, 502, 503, 504})
MIN_BACKPRESSURE_DELAY = 60.0
#: A Retry-After longer than the longest scheduled wait is capped to it.
MAX_RETRY_AFTER = RETRY_DELAYS[-1]
GONE = 410


@dataclass(frozen=True)
class AttemptResult:
    """What one HTTP attempt of one delivery came to (before it is written down)."""

    delivery_id: str
    endpoint_id: str
    started_at: datetime
    duration_ms: float
    status_code: int | None
    response_excerpt: str | None
    error: str | None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == GONE

    def describe(self) -> str:
        """One line for people: "HTTP 503", "timed out after 15 s", ..."""
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error or "no answer"


def next_delay(attempts_made: int, *, rng: random.Random, jitter: float, result: AttemptResult | None = None) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` attempts, or None to give up."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[attempts_made]
    delay = base * (1.0 + rng.uniform(-jitter, jitter)) if base and jitter else float(base)
    if result is not None and result.status_code in BACKPRESSURE_STATUSES:
        wanted = result.retry_after if result.retry_after is not None else MIN_BACKPRESSURE_DELAY
        delay = max(delay, min(wanted, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
