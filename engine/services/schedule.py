"""When to ask Bakong about a payment next: the adaptive check schedule and the day's allowance.

With budget to spare a payment is checked densely in its first minutes (most payers pay then),
sparsely until it expires, and slowly during the late watch after its timeout, every interval
jittered so thousands of payments do not fall due in one tick. When the day's remaining budget
cannot pay for that, ``Allowance`` says how many checks each payment can afford, and the schedule
spreads those few evenly across the window in which payers usually pay, plus one at expiry, so
the budget lasts until the quota resets at local midnight instead of running dry at noon.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.config import PaymentSettings
from engine.records import Payment, PaymentStatus

__all__ = ["Allowance", "CheckSchedule"]

#: Checks in the early window of one payment at most while the forecast has no history to rest on.
GUESSED_FORECAST_CHECKS = 3


@dataclass(frozen=True)
class Allowance:
    """How many checks each payment may have today (None: as many as the schedule wants)."""

    per_payment: float | None
    remaining_requests: int | None = None
    expected_payments: float = 0.0
    #: The forecast rests on yesterday's payments, not only on the last hours'.
    from_history: bool = False

    @property
    def ample(self) -> bool:
        return self.per_payment is None

    @classmethod
    def compute(
        cls,
        *,
        remaining: int,
        reserve: int,
        pending: int,
        recent_rate_per_second: float,
        seconds_to_reset: float,
        batch_size: int,
        nominal_checks: float,
        yesterday_rest: int = 0,
    ) -> Allowance:
        """Split the requests left today among the payments pending now and those expected
        before the reset: the recent creation rate carried forward, or what came after this time
        yesterday if that was more (early in the day a few payments make a poor forecast, and an
        optimistic one spends the budget before the busy hours). With a working bulk endpoint
        one request checks up to ``batch_size`` payments at once."""
        usable = max(0, remaining - reserve)
        expected = pending + max(recent_rate_per_second * max(0.0, seconds_to_reset), float(yesterday_rest))
        if expected <= 0:
            return cls(None, remaining, expected)
        per_payment = usable / expected * max(1, min(batch_size, pending or 1))
        if per_payment >= nominal_checks:
            return cls(None, remaining, expected)
        return cls(per_payment, remaining, expected, from_history=yesterday_rest > 0)


class CheckSchedule:
    """The check times of one payment, from the ``[payments]`` settings."""

    def __init__(self, settings: PaymentSettings, *, rng: random.Random | None = None) -> None:
        self.s = settings
        self.rng = rng or random.Random()

    def _jitter(self, seconds: float) -> timedelta:
        j = self.s.jitter
        factor = 1.0 + (self.rng.uniform(-j, j) if j > 0 else 0.0)
        return timedelta(seconds=max(0.05, seconds * factor))

    def nominal_checks(self, timeout_seconds: float) -> float:
        """How many checks the unconstrained schedule spends on a payment that is never paid."""
        dense = min(self.s.dense_window_seconds, timeout_seconds)
        sparse = max(0.0, timeout_seconds - dense)
        return dense / self.s.dense_interval_seconds + sparse / self.s.sparse_interval_seconds

    def first_check_at(self, created_at: datetime, expires_at: datetime, allowance: Allowance | None = None) -> datetime:
        if allowance is None or allowance.ample:
            return created_at + self._jitter(self.s.dense_interval_seconds)
        return self._scarce_next(created_at, expires_at, created_at, allowance)

    def next_check_at(self, payment: Payment, now: datetime, allowance: Allowance | None = None) -> datetime | None:
        """The next check of a payment that is still being watched; None when it should stop."""
        ample = allowance is None or allowance.ample
        if payment.status is PaymentStatus.TIMEOUT:
            if payment.late_watch_until is None or now >= payment.late_watch_until:
                return None
            if not ample:
                return None  # the check at timeout was the late watch's one affordable look
            return min(now + self._jitter(self.s.late_interval_seconds), payment.late_watch_until)
        if payment.status is not PaymentStatus.PENDING:
            return None
        if ample:
            age = (now - payment.created_at).total_seconds()
            interval = self.s.dense_interval_seconds if age < self.s.dense_window_seconds else self.s.sparse_interval_seconds
            return now + self._jitter(interval)
        return self._scarce_next(payment.created_at, payment.expires_at, now, allowance)

    def _scarce_next(self, created_at: datetime, expires_at: datetime, now: datetime, allowance: Allowance) -> datetime | None:
        """Spread the affordable checks evenly over the early window; one more at expiry if affordable.

        A payer who pays at a uniformly random moment of the window is found, on average, after
        (n + 1) / 2 of n evenly spaced checks, so an allowance of k buys n = 2k - 1 of them.
        """
        per_payment = allowance.per_payment or 0.0
        window = self.s.scarce_window_seconds
        ideal = max(1.0, 2 * per_payment - 1)
        whole = math.floor(ideal + 1e-9)
        # 2k - 1 is rarely whole: round it up for a share of payments equal to its fraction, so
        # the day's spending matches the allowance instead of always falling short of it (the
        # share is picked by a stable per-payment number, its creation instant's microseconds).
        # Without yesterday to forecast from, the forecast is a guess from a few payments: one
        # payment gets at most a few checks, so an early overestimate cannot spend the budget
        # before evening.
        if created_at.microsecond / 1_000_000 < ideal - whole:
            whole += 1
        if not allowance.from_history:
            whole = min(whole, GUESSED_FORECAST_CHECKS)
        in_window = max(1, min(whole, int(window // self.s.dense_interval_seconds) or 1))
        spacing = window / in_window
        age = (now - created_at).total_seconds()
        step = math.floor(age / spacing + 1e-9) + 1
        if step <= in_window:
            return created_at + timedelta(seconds=step * spacing)
        if now < expires_at and per_payment >= in_window + 0.5:
            return expires_at
        return None
