"""When to ask Bakong about a payment next: the adaptive check schedule and the day's allowance.

With budget to spare a payment is checked densely in its first minutes (most payers pay then),
sparsely until it expires, and slowly during the late watch after its timeout (and while a
cancelled KHQR can still be paid), every interval
jittered so thousands of payments do not fall due in one tick. When the day's remaining budget
cannot pay for that, ``Allowance`` says how many requests each payment can afford, and the
schedule places that many checks where they buy the most: in the window in which payers usually
pay (nobody pays in the first seconds: the payer still has to open the app, scan and confirm),
first gaps longest (a late check is cheap: most payers were found before it), plus one at expiry
when affordable, so the budget lasts until the quota resets at local midnight instead of running
dry at noon. With opening hours declared the forecast (``DayForecast``) runs to the closing time
(and a margin) instead, from today's payments over today's open time and the last open day's
total (or, with no such day, the shop's estimate of a normal day while the day's payments agree
with it), and outside them it keeps the cheapest plan of one late payment in hand.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from engine.config import PaymentSettings
from engine.records import Payment, PaymentStatus

__all__ = ["Allowance", "CheckSchedule", "DayForecast", "ScarcePlan"]

#: Checks in the early window of one payment at most while the forecast has no history to rest on.
GUESSED_FORECAST_CHECKS = 3
#: Nobody pays in the first seconds after the QR is shown (open the app, scan, confirm): the
#: scarce schedule spends no check before then.
PAYER_LEAD_SECONDS = 10.0
#: The share of payments that get paid, assumed until the database has finished payments to count.
DEFAULT_PAID_SHARE = 0.9
#: With yesterday to forecast from, the recent rate still counts for at least this long ahead
#: (today may run later than yesterday did).
MIN_RATE_HORIZON_SECONDS = 3600.0
#: With opening hours declared, payments still expected once the shop has closed (someone paying
#: late): the forecast never counts fewer, so the day's last pending payments cannot spend it all.
LATE_PAYMENTS_EXPECTED = 1
#: With opening hours declared the forecast stops at closing time, so it no longer has the hours
#: after closing as a cushion: the cheapest plan is kept in hand for this many standard deviations
#: more payments than expected, so a busier day than the forecast said does not spend the budget
#: dry before closing.
FORECAST_DEVIATIONS = 1.5
#: Yesterday's total weighs as much as a whole day of today's own payments in today's rate: a
#: prior that fades as today's payments come in.
HISTORY_WEIGHT = 1.0
#: The shop's estimate of a normal open day's payments weighs as much as this many payments
#: counted today in today's rate: a guess, which the day's own payments soon outweigh.
ESTIMATE_PAYMENTS = 15.0
#: While the day's payments agree with the estimate, the cheapest plan is kept in hand for this
#: many standard deviations more payments than expected (the estimate, checked by the day itself,
#: needs less of a cushion than a day with nothing to go by).
ESTIMATE_DEVIATIONS = 0.5
#: The day's payments disagree with the estimate once their count (over the day so far, or over
#: the last hours) is this many Poisson standard deviations away from what the estimate expects:
#: the day is then forecast from its own payments, as without an estimate.
ESTIMATE_AGREEMENT = 2.0
#: Without history or an estimate, the rate's prior is this many payments over no open time
#: (Jeffreys' prior for a Poisson rate): the day's own payments set the rate, and a few of them
#: say little.
RATE_PRIOR = 0.5
#: Payments the forecast must rest on (today's, with the last open day's total or the estimate)
#: before a payment's checks are no longer capped at ``GUESSED_FORECAST_CHECKS``.
FIRM_FORECAST_PAYMENTS = 20


@dataclass(frozen=True)
class Allowance:
    """How many requests each payment may have today (None: as many as the schedule wants)."""

    per_payment: float | None
    remaining_requests: int | None = None
    expected_payments: float = 0.0
    #: The forecast rests on enough payments (a past day's, the estimate, today's), not only on
    #: the last hours'.
    from_history: bool = False
    #: The share of payments that get paid (a never-paid one costs every check of its plan).
    paid_share: float = DEFAULT_PAID_SHARE

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
        nominal_checks: float,
        checks_per_request: float = 1.0,
        yesterday_rest: int = 0,
        yesterday_total: int = 0,
        active_seconds: float | None = None,
        paid_share: float = DEFAULT_PAID_SHARE,
        floor_cost: float = 1.0,
    ) -> Allowance:
        """Split the requests left today among the payments pending now and those expected
        before the reset.

        Two forecasts of the payments still to come. The cautious one is the larger of what
        came after this time yesterday and the recent creation rate carried forward: to the
        reset without history (a few payments make a poor forecast, and an optimistic one spends
        the budget before the busy hours), else over the hours that were busy yesterday
        (``active_seconds``, at least an hour ahead). The likely one is what came after this time
        yesterday (the cautious one without history). Every payment of the cautious forecast is
        first given ``floor_cost`` (the cheapest plan: one check at the end of the payer window),
        so the budget outlasts the day while it is no busier than that; what is left over is
        spread over the likely forecast. ``checks_per_request`` is how many payments one request
        has been checking lately (more than one only where the bulk endpoint answers and checks
        fall due together). With opening hours declared for today, ``within_hours`` plans instead."""
        usable = max(0, remaining - reserve)
        to_reset = max(0.0, seconds_to_reset)
        history = yesterday_total > 0
        horizon = to_reset
        if history and active_seconds is not None:
            horizon = min(horizon, max(active_seconds, MIN_RATE_HORIZON_SECONDS))
        cautious = pending + max(recent_rate_per_second * horizon, float(yesterday_rest))
        likely = pending + float(yesterday_rest) if history else cautious
        share = min(1.0, max(0.0, paid_share))
        if cautious <= 0:
            return cls(None, remaining, cautious, paid_share=share)
        per_request = max(1.0, checks_per_request)
        floor = floor_cost / per_request
        if usable <= floor * cautious or likely <= 0:
            per_payment = usable / cautious
        else:
            per_payment = floor + (usable - floor * cautious) / likely
        per_payment *= per_request
        if per_payment >= nominal_checks:
            return cls(None, remaining, cautious, paid_share=share)
        return cls(per_payment, remaining, cautious, from_history=history, paid_share=share)

    @classmethod
    def within_hours(
        cls,
        *,
        remaining: int,
        reserve: int,
        pending: int,
        forecast: DayForecast | None,
        nominal_checks: float,
        checks_per_request: float = 1.0,
        paid_share: float = DEFAULT_PAID_SHARE,
        floor_cost: float = 1.0,
    ) -> Allowance:
        """The allowance while opening hours are declared for today: ``forecast`` is what the
        open time left before the reset still brings (None before any rate is known: each
        payment then gets the cheapest plan).

        The cheapest plan (``floor_cost``) is kept in hand for the pending payments and the
        forecast's cautious count (at least ``LATE_PAYMENTS_EXPECTED``: a closed shop keeps a late
        payment's checks); what the budget holds beyond that is spread over the pending and the
        expected payments, so the cushion is counted once."""
        share = min(1.0, max(0.0, paid_share))
        usable = max(0, remaining - reserve)
        per_request = max(1.0, checks_per_request)
        floor = floor_cost / per_request
        if forecast is None:
            expected = float(pending + LATE_PAYMENTS_EXPECTED)
            return cls(min(floor, usable / expected) * per_request, remaining, expected, paid_share=share)
        likely = pending + max(forecast.expected, float(LATE_PAYMENTS_EXPECTED))
        cautious = pending + max(forecast.cautious, float(LATE_PAYMENTS_EXPECTED))
        spare = usable - floor * cautious
        per_payment = (usable / cautious if spare <= 0 else floor + spare / likely) * per_request
        if per_payment >= nominal_checks:
            return cls(None, remaining, likely, paid_share=share)
        return cls(per_payment, remaining, likely, from_history=forecast.firm, paid_share=share)


def _agrees(counted: int, expected: float) -> bool:
    """Whether ``counted`` payments are within ``ESTIMATE_AGREEMENT`` Poisson standard deviations
    of the ``expected`` count, either way (one payment more allowed for: counts are whole)."""
    spread = ESTIMATE_AGREEMENT * math.sqrt(expected)
    return expected - spread <= counted <= expected + spread + 1


def _negative_binomial(payments: float, exposure: float, ahead: float) -> tuple[float, float]:
    """The payments expected over ``ahead`` seconds, and their standard deviation, after
    ``payments`` (with the prior) were counted over ``exposure`` seconds: the rate is Gamma
    distributed, the count to come negative binomial."""
    expected = payments / exposure * ahead
    return expected, math.sqrt(expected + expected * expected / payments)


@dataclass(frozen=True)
class DayForecast:
    """The payments still to come before today's closing time: the count the spare budget is
    spread over (``expected``) and the one the cheapest plan is kept in hand for (``cautious``)."""

    expected: float
    cautious: float
    #: The forecast rests on enough payments to plan a payment's checks without a cap.
    firm: bool = False
    #: The shop's estimate was the prior (no history, and the day's payments agree with it).
    estimated: bool = False

    @classmethod
    def estimate(
        cls,
        *,
        arrivals: int,
        open_elapsed: float,
        open_left: float,
        recent_arrivals: int,
        recent_open: float,
        history_total: int = 0,
        history_open: float = 0.0,
        expected_per_day: int = 0,
        normal_open: float = 0.0,
    ) -> DayForecast | None:
        """From today's ``arrivals`` over its ``open_elapsed`` seconds of open time (and the last
        hours' ``recent_arrivals`` over their ``recent_open``), with the last open day's total
        over its open time, or else the shop's estimate of a normal open day's payments over a
        normal day's open time; None while nothing is known (no open time yet, no history, no
        estimate).

        The rate is measured over all of today's open time, with the last open day's total as a
        prior that fades as today's payments come in (``HISTORY_WEIGHT``), so a few noisy early
        payments do not set the day's pace; its uncertainty is honest (negative binomial: wide
        while few payments were counted). With history, the day is expected to bring what the
        last open day did: the expected count is its total less today's so far (at least half the
        rate's forecast: today may be busier). The cautious count is the rate's forecast
        ``FORECAST_DEVIATIONS`` above, and at least the history's remainder.

        Without history, the shop's estimate is the prior while the day's payments agree with it
        (``ESTIMATE_AGREEMENT``, over the day so far and over the last hours): weighed as
        ``ESTIMATE_PAYMENTS`` payments, so the day's own soon outweigh it, with a cushion of
        ``ESTIMATE_DEVIATIONS``, and the cautious count is at least the estimate's own pace over
        the open time left (a slow start that still agrees may yet bring it); the last hours'
        rate guards only once those hours are a part of the day's open time (before that they
        are the day so far); the expected count is the rate's forecast. Once they disagree (an
        estimate of half or twice the day's volume shows within hours) and with no estimate, the
        day is forecast from its own payments alone, and the cautious count is at least the last
        hours' rate carried forward ``FORECAST_DEVIATIONS`` above (the day's shape is unknown: an
        evening busier than the morning must not spend the budget dry)."""
        history = history_total > 0 and history_open > 0
        # the estimate's pace, payments per second of open time (0: no estimate to go by)
        pace = expected_per_day / normal_open if not history and expected_per_day > 0 and normal_open > 0 else 0.0
        guess = pace > 0 and _agrees(arrivals, pace * max(0.0, open_elapsed)) and _agrees(recent_arrivals, pace * max(0.0, recent_open))
        if history:
            prior, prior_open = HISTORY_WEIGHT * history_total, HISTORY_WEIGHT * history_open
        elif guess:
            prior, prior_open = ESTIMATE_PAYMENTS, ESTIMATE_PAYMENTS / pace
        else:
            prior, prior_open = RATE_PRIOR, 0.0
        payments = prior + arrivals
        exposure = prior_open + max(0.0, open_elapsed)
        if exposure <= 0:
            return None
        ahead = max(0.0, open_left)
        rate, rate_deviation = _negative_binomial(payments, exposure, ahead)
        deviations = ESTIMATE_DEVIATIONS if guess else FORECAST_DEVIATIONS
        cautious = rate + deviations * rate_deviation
        if recent_open > 0 and not history and (not guess or open_elapsed > recent_open):
            recent, recent_deviation = _negative_binomial(recent_arrivals + RATE_PRIOR, recent_open, ahead)
            cautious = max(cautious, recent + deviations * recent_deviation)
        if guess:
            cautious = max(cautious, pace * ahead)
        expected = rate
        if history:
            left = max(0.0, float(history_total - arrivals))
            expected = max(left, rate / 2)
            cautious = max(cautious, left)
        return cls(expected, cautious, firm=payments >= FIRM_FORECAST_PAYMENTS, estimated=guess)


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
        nxt = self._scarce_next(created_at, expires_at, created_at, allowance)
        return nxt if nxt is not None else created_at + timedelta(seconds=self.s.scarce_window_seconds)

    def next_check_at(self, payment: Payment, now: datetime, allowance: Allowance | None = None) -> datetime | None:
        """The next check of a payment that is still being watched; None when it should stop."""
        ample = allowance is None or allowance.ample
        if payment.status is PaymentStatus.TIMEOUT:
            if payment.late_watch_until is None or now >= payment.late_watch_until:
                return None
            if not ample:
                return None  # the check at timeout was the late watch's one affordable look
            return min(now + self._jitter(self.s.late_interval_seconds), payment.late_watch_until)
        if payment.status is PaymentStatus.CANCELLED:
            return self._cancelled_next(payment, now, ample)
        if payment.status is not PaymentStatus.PENDING:
            return None
        if ample:
            age = (now - payment.created_at).total_seconds()
            interval = self.s.dense_interval_seconds if age < self.s.dense_window_seconds else self.s.sparse_interval_seconds
            return now + self._jitter(interval)
        return self._scarce_next(payment.created_at, payment.expires_at, now, allowance)

    def _cancelled_next(self, payment: Payment, now: datetime, ample: bool) -> datetime | None:
        """A cancelled KHQR can still be scanned and paid until it expires: it is watched at the
        late watch's pace until ``late_watch_until`` (set at the cancel); when the budget is
        scarce, one look at the expiry (whatever was paid on it by then)."""
        until = payment.late_watch_until
        if until is None or now >= until:
            return None
        if not ample:
            return payment.expires_at if now < payment.expires_at else None
        return min(now + self._jitter(self.s.late_interval_seconds), until)

    # --- the scarce schedule ------------------------------------------------------------------------

    def floor_cost(self, paid_share: float = DEFAULT_PAID_SHARE) -> float:
        """Expected requests of the cheapest scarce plan: one check at the end of the payer window
        (and the late watch's look if it is never paid)."""
        q = min(1.0, max(0.0, paid_share))
        return q + (1 - q) * (2 if self.s.late_watch_minutes > 0 else 1)

    def scarce_plan(self, allowance: Allowance) -> ScarcePlan:
        """How this allowance is spent on a payment (cached: every payment checked in one pass
        asks with the same allowance)."""
        return _plan(
            allowance.per_payment or 0.0,
            allowance.paid_share,
            GUESSED_FORECAST_CHECKS if not allowance.from_history else None,
            self.s.scarce_window_seconds,
            self.s.dense_interval_seconds,
            self.s.late_watch_minutes > 0,
        )

    def _scarce_next(self, created_at: datetime, expires_at: datetime, now: datetime, allowance: Allowance) -> datetime | None:
        """The first check of the best plan for what is left of the payer window after ``now``;
        the one at expiry once the window is done, if the plan has it.

        Planned afresh at every check from the current allowance (a payer not found yet pays
        somewhere in the rest of the window, and is less likely to pay at all), so a plan that
        changed between two checks never bunches them. Which of the plan's two check counts a
        payment gets is picked by a stable number of its own, its creation instant's microseconds.
        """
        plan = self.scarce_plan(allowance)
        age = (now - created_at).total_seconds()
        step = plan.next_gap(age, created_at.microsecond / 1_000_000)
        if step is not None:
            return now + timedelta(seconds=step)
        if plan.at_expiry and now < expires_at:
            return expires_at
        return None


# --- choosing the plan ----------------------------------------------------------------------------
#
# Payers are taken to pay at a uniformly random moment of [a, b]: a = PAYER_LEAD_SECONDS after the
# QR is shown, b = the end of the scarce window, D = b - a; the last check is at b, so every payer
# of the window is found. With n checks whose gaps are g_1..g_n (sum D), a paid payment waits
# sum(g_j^2) / 2D on average and costs 1 + sum((j - 1) g_j) / D checks (check j is spent only on
# the payers not found by check j - 1); a never-paid one costs all n, and the late watch's one look.
# Minimising  q * latency + lam * cost  (q the paid share, lam the seconds of latency one request
# is worth) gives gaps shrinking evenly, g_j = D/n + lam * ((n - 1)/2 - (j - 1)): lam = 0 is the
# even spacing, a dearer request moves the early checks later, where each finds more payers. The
# allowance fixes lam: the largest n (and its gaps) whose expected cost fits; where the cost jumps
# between n and n + 1, a share of payments gets n + 1 so the average fits exactly. After each
# check the rest of the window is the same problem, smaller (Bellman): its best first gap at the
# same lam is the plan's next gap.


def _gaps(n: int, lam: float, span: float) -> list[float] | None:
    gaps = [span / n + lam * ((n - 1) / 2 - j) for j in range(n)]
    return gaps if gaps[-1] >= -1e-9 else None


def _figures(gaps: list[float], span: float, q: float, late_look: bool) -> tuple[float, float]:
    latency = sum(g * g for g in gaps) / (2 * span)
    paid = 1 + sum(j * g for j, g in enumerate(gaps)) / span
    unpaid = len(gaps) + (1 if late_look else 0)
    return latency, q * paid + (1 - q) * unpaid


def _best(lam: float, span: float, most: int, q: float, late_look: bool) -> tuple[int, list[float], float]:
    """The check count (at most ``most``) and gaps with the lowest q * latency + lam * cost."""
    choice: tuple[float, int, list[float], float] | None = None
    for n in range(1, max(1, most) + 1):
        gaps = _gaps(n, lam, span)
        if gaps is None:
            break
        latency, cost = _figures(gaps, span, q, late_look)
        value = q * latency + lam * cost
        if choice is None or value < choice[0]:
            choice = (value, n, gaps, cost)
    assert choice is not None
    return choice[1], choice[2], choice[3]


@dataclass(frozen=True)
class ScarcePlan:
    """How a scarce allowance is spent on one payment: the price ``lam`` of a request in seconds
    of latency (``lam_more`` for a share ``more_share`` of payments, which get one check more),
    the payer window ``[lead, window]``, and whether a check at expiry is affordable too."""

    lead: float
    window: float
    min_gap: float
    most: int
    capped: bool
    paid_share: float
    late_look: bool
    lam: float
    lam_more: float = 0.0
    more_share: float = 0.0
    at_expiry: bool = False
    #: Expected requests per payment of a fresh payment under this plan.
    cost: float = field(default=0.0, compare=False)

    def next_gap(self, age: float, pick: float) -> float | None:
        """Seconds from a check at ``age`` (0: the QR was just shown) to the next one in the
        window; None once the window is done."""
        start = max(self.lead, age)
        span = self.window - start
        if span <= 1e-6:
            return None
        full = self.window - self.lead
        most = max(1, int(span // self.min_gap + 1e-9)) if self.min_gap > 0 else 1
        if self.capped:  # the cap spread over the whole window: what is left keeps its share
            most = min(most, max(1, round(self.most * span / full)))
        more = pick < self.more_share
        lam = self.lam_more if more else self.lam
        if math.isinf(lam):
            return self.window - age
        # a payer not found by now pays later, or not at all: the paid share of what is left
        q = self.paid_share * (span / full) / (self.paid_share * (span / full) + 1 - self.paid_share) if full > 0 else self.paid_share
        _, gaps, _ = _best(lam, span, most, q, self.late_look)
        return start - age + gaps[0]

    def offsets(self, pick: float) -> list[float]:
        """The checks of a fresh payment that is never found, in seconds after the QR is shown."""
        out, age = [], 0.0
        while (gap := self.next_gap(age, pick)) is not None and len(out) < 1000:
            age += gap
            out.append(round(age, 3))
        return out


@lru_cache(maxsize=256)
def _plan(per_payment: float, paid_share: float, cap: int | None, window: float, min_gap: float, late_look: bool) -> ScarcePlan:
    lead = PAYER_LEAD_SECONDS if window > 2 * PAYER_LEAD_SECONDS else 0.0
    span = window - lead
    most = max(1, int(span // min_gap) if min_gap > 0 else 1)
    if cap is not None:
        most = min(most, cap)
    q = min(1.0, max(0.0, paid_share))
    base = {"lead": lead, "window": window, "min_gap": min_gap, "most": most, "capped": cap is not None, "paid_share": q, "late_look": late_look}
    _, _, cost_top = _best(0.0, span, most, q, late_look)
    if per_payment >= cost_top:
        # every check the window takes; what is left buys the look at expiry
        return ScarcePlan(**base, lam=0.0, lam_more=0.0, at_expiry=per_payment >= cost_top + 1, cost=cost_top)
    cost_one = _figures([span], span, q, late_look)[1]
    if per_payment <= cost_one:
        return ScarcePlan(**base, lam=math.inf, lam_more=math.inf, cost=cost_one)
    # the cost falls as lam rises: find where it crosses the allowance
    lo, hi = 0.0, span
    while _best(hi, span, most, q, late_look)[0] > 1:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if _best(mid, span, most, q, late_look)[2] > per_payment:
            lo = mid
        else:
            hi = mid
    # just either side of the jump, so that each side's choice is clear of the tie
    hi, lo = hi * (1 + 1e-6), lo * (1 - 1e-6)
    n_fit, _, cost_fit = _best(hi, span, most, q, late_look)
    n_over, _, cost_over = _best(lo, span, most, q, late_look)
    if n_over == n_fit or cost_over <= cost_fit + 1e-9:
        return ScarcePlan(**base, lam=hi, lam_more=hi, cost=cost_fit)
    share = min(1.0, max(0.0, (per_payment - cost_fit) / (cost_over - cost_fit)))
    return ScarcePlan(**base, lam=hi, lam_more=lo, more_share=share, cost=cost_fit + share * (cost_over - cost_fit))
