"""The poller: asks Bakong about due payments, spending the day's request budget where it pays.

Each pass takes the due payments ("customer says paid" requests first, then by due time), asks
Bakong in batches of 50 where the bulk endpoint answers (one MD5 goes to the single endpoint: same
cost, no bulk probe), applies every answer in its own transaction, and reschedules. It never turns
a refusal into a state: 429/5xx/unreachable back the whole poller off exponentially; an expired
token (errorCode 6) pauses polling and raises one alert until the token changes; a spent quota
(errorCode 17) or budget stops requests until the reset the ledger latched.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from engine import events as ev
from engine.bakong import BULK_LIMIT, BakongClient
from engine.bakong.models import CheckOutcome, DiagnosisKind
from engine.clock import PHNOM_PENH, Clock, local_midnight_after, utc
from engine.config import Settings
from engine.db import journal
from engine.db import payments as repo
from engine.db import state as engine_state
from engine.db.storage import Storage, Tx
from engine.errors import (
    BakongRefusal,
    BudgetExhausted,
    QuotaExhausted,
    TokenExpired,
)
from engine.records import Actor, Payment, PaymentStatus
from engine.services.opening_hours import OpeningHoursForecast
from engine.services.schedule import DEFAULT_PAID_SHARE, Allowance, CheckSchedule, DayForecast
from engine.services.settlement import apply_outcome, changes_state, check_result
from engine.workers.base import Worker

__all__ = ["Poller", "PollerState"]

log = logging.getLogger("engine.poller")

ACTOR = Actor.daemon("poller")
PAUSE_STATE = "poller.pause"
DEMAND_WINDOW = timedelta(hours=2)
#: Yesterday's payments are counted in slots this long to see which hours were busy.
PROFILE_SLOT = timedelta(minutes=30)
#: How often the paid share of finished payments is counted again.
PAID_SHARE_REFRESH = timedelta(minutes=10)
#: Finished payments the paid share counts as if they had the default share (a prior: a handful of
#: payments must not swing it).
PAID_SHARE_PRIOR = 10
#: Bulk requests in flight at once while working through a backlog.
CONCURRENT_REQUESTS = 4
#: The shortest sleep until checks that come due: under a steady stream of payments their due
#: times are milliseconds apart, and a pass per due time would send a request per handful of MD5s
#: (and read the queue each time). Gathered this long, at most this late, they go in full bulk
#: requests. A "customer says paid" request still wakes the poller at once.
DUE_GATHER_SECONDS = 0.25


def _severity(exc: BakongRefusal) -> int:
    """Which refusal of a group decides: an expired token, then a spent quota, then the rest."""
    if isinstance(exc, TokenExpired):
        return 2
    return 1 if isinstance(exc, (QuotaExhausted, BudgetExhausted)) else 0


@dataclass
class PollerState:
    """What the poller knows that the faces show: why it waits, and the budget it works with."""

    allowance: Allowance | None = None
    paused_reason: str | None = None
    paused_fingerprint: str | None = None
    #: While paused: when the token in use is next tried with Bakong, and the wait after that.
    next_probe_at: datetime | None = None
    probe_interval: float = 0.0
    blocked_until: datetime | None = None
    #: The token whose quota (or our budget for it) the block is about: another token lifts it.
    blocked_fingerprint: str | None = None
    blocked_reason: str | None = None
    backoff_until: datetime | None = None
    consecutive_failures: int = 0
    #: When Bakong last answered a check, and since when it has answered none (None: it answers),
    #: with the kind of the latest refusal: what /api/health judges an outage by.
    last_answer_at: datetime | None = None
    failing_since: datetime | None = None
    failing_kind: str | None = None
    last_pass_at: datetime | None = None
    last_batch_size: int = 0
    requests_sent: int = 0
    #: Payments one answered request checked, on a moving average (None: no request answered yet).
    checks_per_request: float | None = None


class Poller(Worker):
    name = "poller"

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Clock,
        client: BakongClient,
        schedule: CheckSchedule,
        state: PollerState | None = None,
        batch_limit: int = 500,
        rng: random.Random | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.client = client
        self.schedule = schedule
        self.state = state or PollerState()
        self.batch_limit = batch_limit
        self.rng = rng or random.Random()
        self.tick = settings.payments.tick_seconds
        # yesterday is over: its profile is counted once (the day's midnight, slot counts)
        self._profile: tuple[datetime, list[int]] | None = None
        self._paid_share: tuple[datetime, float] | None = None
        # the last open day is over too: its total is counted once (its local date, the count)
        self._history: tuple[date, int] | None = None
        self.opening_hours = OpeningHoursForecast(storage, settings.hours.opening_hours())

    # --- budget -----------------------------------------------------------------------------------

    async def _allowance(self, pending: int) -> Allowance:
        now = self.clock.now()
        usage = await self.client.budget_usage()
        reset = local_midnight_after(now)
        hours = await self.opening_hours.today(now, reset, DEMAND_WINDOW)
        within_hours = hours.applies
        async with self.storage.read() as tx:
            recent = await repo.count_created_since(tx, now - DEMAND_WINDOW)
            if within_hours:  # today's payments so far and the last open day's: the forecast's counts
                today = await repo.count_created_since(tx, reset - timedelta(days=1))
                history_total = await self._open_day_total(tx, hours.history_day)
            else:  # payments created yesterday between this time of day and its midnight
                yesterday_rest = await repo.count_created_between(tx, now - timedelta(days=1), reset - timedelta(days=1))
                slots = await self._yesterday_profile(tx, reset - timedelta(days=2))
            paid_share = await self._paid_share_now(tx, now)
        bulk = self.client.bulk_blocked_until is None
        common = {
            "remaining": usage.remaining,
            "reserve": self.settings.payments.reserve_requests,
            "pending": pending,
            # until a request was answered, the bulk endpoint is taken to check what waits now
            "checks_per_request": (self.state.checks_per_request or min(BULK_LIMIT, max(1, pending))) if bulk else 1.0,
            "paid_share": paid_share,
            "floor_cost": self.schedule.floor_cost(paid_share),
            "nominal_checks": self.schedule.nominal_checks(self.settings.payments.default_timeout_minutes * 60),
        }
        if within_hours:
            forecast = DayForecast.estimate(
                arrivals=today,
                open_elapsed=hours.open_elapsed or 0.0,
                open_left=hours.seconds_to_close or 0.0,
                recent_arrivals=recent,
                recent_open=hours.demand_seconds or 0.0,
                history_total=history_total,
                history_open=hours.history_open or 0.0,
                expected_per_day=self.settings.hours.expected_payments_per_day,
                normal_open=hours.normal_open or 0.0,
            )
            return Allowance.within_hours(forecast=forecast, **common)
        # yesterday's busy hours, moved to today: the recent rate is carried forward over those
        busy = [i for i, n in enumerate(slots) if n]
        active = ((reset - timedelta(days=1) + (busy[-1] + 1) * PROFILE_SLOT) - now).total_seconds() if busy else None
        return Allowance.compute(
            recent_rate_per_second=recent / DEMAND_WINDOW.total_seconds(),
            seconds_to_reset=(reset - now).total_seconds(),
            yesterday_rest=yesterday_rest,
            yesterday_total=sum(slots),
            active_seconds=max(0.0, active) if active is not None else None,
            **common,
        )

    async def _open_day_total(self, tx: Tx, day: date | None) -> int:
        """Payments created on local date ``day`` (a day over: counted once)."""
        if day is None:
            return 0
        if self._history is None or self._history[0] != day:
            start = utc(datetime.combine(day, time(0), PHNOM_PENH))
            self._history = (day, await repo.count_created_between(tx, start, start + timedelta(days=1)))
        return self._history[1]

    async def _yesterday_profile(self, tx: Tx, start: datetime) -> list[int]:
        """Payments created in each slot of the local day that began at ``start`` (counted once)."""
        if self._profile is None or self._profile[0] != start:
            slots = int(timedelta(days=1) / PROFILE_SLOT)
            counts = [
                await repo.count_created_between(tx, start + i * PROFILE_SLOT, start + (i + 1) * PROFILE_SLOT)
                for i in range(slots)
            ]
            self._profile = (start, counts)
        return self._profile[1]

    async def _paid_share_now(self, tx: Tx, now: datetime) -> float:
        """The share of finished payments that were paid (late or in review counted as paid)."""
        if self._paid_share is None or now - self._paid_share[0] >= PAID_SHARE_REFRESH or now < self._paid_share[0]:
            counts = await repo.count_by_status(tx)
            paid = sum(counts.get(s.value, 0) for s in (PaymentStatus.PAID, PaymentStatus.PAID_LATE, PaymentStatus.NEEDS_REVIEW))
            unpaid = sum(counts.get(s.value, 0) for s in (PaymentStatus.TIMEOUT, PaymentStatus.FAILED))
            share = (paid + DEFAULT_PAID_SHARE * PAID_SHARE_PRIOR) / (paid + unpaid + PAID_SHARE_PRIOR)
            self._paid_share = (now, share)
        return self._paid_share[1]

    # --- pause on an expired token ------------------------------------------------------------------

    async def _paused(self) -> bool:
        """Polling stays paused while the token that expired is still the one in use and Bakong
        still refuses it: a new token resumes it at once, the same token once a probe says it
        works again (a fault that cleared, the same token stored again)."""
        if self.state.paused_reason is None:
            async with self.storage.read() as tx:
                stored = await engine_state.get_state(tx, PAUSE_STATE)
            if stored and stored.get("fingerprint") == self.client.fingerprint:
                self.state.paused_reason = stored.get("reason")
                self.state.paused_fingerprint = stored.get("fingerprint")
                self._schedule_probe(first=True)
        if self.state.paused_reason is None:
            return False
        await self.client.load_token()
        if self.client.fingerprint != self.state.paused_fingerprint:
            await self._resume("new token", "a new Bakong token is in use")
            return False
        if await self._token_works_again():
            await self._resume("token accepted again", "Bakong accepts the token again")
            return False
        return True

    def _schedule_probe(self, *, first: bool) -> None:
        base = self.settings.bakong.token_probe_seconds
        self.state.probe_interval = base if first else min(base * 8, self.state.probe_interval * 2)
        self.state.next_probe_at = self.clock.now() + timedelta(seconds=self.state.probe_interval)

    async def _token_works_again(self) -> bool:
        """One metered request (``diagnose``: no retry, no renewal) when the probe is due."""
        if self.state.next_probe_at is None:
            self._schedule_probe(first=True)
        if self.clock.now() < self.state.next_probe_at:  # type: ignore[operator]
            return False
        diagnosis = await self.client.diagnose()
        if diagnosis.kind is DiagnosisKind.FINE:
            return True
        log.info("poller: token probe: %s; next in %.0f s", diagnosis.kind.value, self.state.probe_interval * 2)
        self._schedule_probe(first=False)
        return False

    async def _resume(self, reason: str, message: str) -> None:
        log.info("poller: %s; polling resumes", message)
        async with self.storage.transaction() as tx:
            await engine_state.set_state(tx, PAUSE_STATE, {})
            await journal.audit(tx, ACTOR, "poller.resume", "bakong", "token", reason=reason)
        self.state.paused_reason = None
        self.state.paused_fingerprint = None
        self.state.next_probe_at = None

    async def _pause(self, error: TokenExpired) -> None:
        reason = f"Bakong refused the token ({error.message or 'expired'}); polling is paused until a new token is set"
        self.state.paused_reason = reason
        self.state.paused_fingerprint = self.client.fingerprint
        self._schedule_probe(first=True)
        log.error("poller: %s", reason)
        async with self.storage.transaction() as tx:
            await engine_state.set_state(tx, PAUSE_STATE, {"reason": reason, "fingerprint": self.client.fingerprint, "at": tx.now.isoformat()})
            await journal.append_event(
                tx, ev.ALERT_TOKEN_EXPIRED, "bakong", "token", {"message": reason, "token": self.client.fingerprint}
            )

    # --- one pass ---------------------------------------------------------------------------------

    async def run_once(self) -> float | None:
        now = self.clock.now()
        self.state.last_pass_at = now
        if await self._paused():
            return 30.0
        if self.state.blocked_until and now < self.state.blocked_until:
            # The quota (and our budget) is per token: a token renewed meanwhile lifts the block.
            await self.client.load_token()
            if self.client.fingerprint == self.state.blocked_fingerprint:
                return min(10.0, (self.state.blocked_until - now).total_seconds())
            log.info("poller: a new Bakong token is in use; the spent quota was the old token's")
            self.state.blocked_until = None
            self.state.blocked_reason = None
        if self.state.backoff_until and now < self.state.backoff_until:
            return (self.state.backoff_until - now).total_seconds()
        async with self.storage.read() as tx:
            due = await repo.due_for_check(tx, now, self.batch_limit)
            pending = await repo.count_scheduled(tx)
        self.state.allowance = await self._allowance(pending)
        self.state.last_batch_size = len(due)
        if not due:
            return await self._sleep_hint()
        if len(due) == 1:
            batches = [due]
        else:
            batches = [due[i : i + BULK_LIMIT] for i in range(0, len(due), BULK_LIMIT)]
        for start in range(0, len(batches), CONCURRENT_REQUESTS):
            if not await self._check_group(batches[start : start + CONCURRENT_REQUESTS]):
                break
        return 0.0 if len(due) >= self.batch_limit else None

    async def _sleep_hint(self) -> float | None:
        async with self.storage.read() as tx:
            nxt = await repo.next_due_at(tx)
        if nxt is None:
            return 30.0
        return max(DUE_GATHER_SECONDS, (nxt - self.clock.now()).total_seconds())

    async def _ask(self, batch: list[Payment]) -> dict[str, CheckOutcome]:
        if len(batch) == 1:
            return {batch[0].md5: await self.client.check_payment(batch[0].md5)}
        return await self.client.check_payments([p.md5 for p in batch])

    async def _check_group(self, group: list[list[Payment]]) -> bool:
        """Ask about a few batches at once (Bakong answers in parallel; one at a time, a
        10,000-payment backlog would wait on round trips), then apply every answer that came
        back, each as soon as it arrives (applying one overlaps the wait for the others). A
        refusal is handled once for the group; False when polling must stop for now."""

        async def ask(batch: list[Payment]) -> tuple[list[Payment], dict[str, CheckOutcome] | BaseException]:
            try:
                return batch, await self._ask(batch)
            except Exception as exc:  # sorted below: a refusal decides, anything else is re-raised
                return batch, exc

        refusal: BakongRefusal | None = None
        unexpected: BaseException | None = None
        for arrival in asyncio.as_completed([ask(batch) for batch in group]):
            batch, answer = await arrival
            if isinstance(answer, BakongRefusal):
                if refusal is None or _severity(answer) > _severity(refusal):
                    refusal = answer
                continue
            if isinstance(answer, BaseException):
                unexpected = unexpected or answer
                continue
            self.state.requests_sent += 1
            self.state.last_answer_at = self.clock.now()
            self.state.failing_since = self.state.failing_kind = None
            seen = self.state.checks_per_request
            self.state.checks_per_request = float(len(batch)) if seen is None else seen + 0.2 * (len(batch) - seen)
            if self.state.consecutive_failures:
                await self._recovered()
            await self._apply(batch, answer)
        if refusal is not None:
            await self._refused(refusal)
            return False
        if unexpected is not None:
            raise unexpected
        return True

    async def _refused(self, exc: BakongRefusal) -> None:
        """Pause, block or back off according to what Bakong (or the budget) said."""
        if isinstance(exc, TokenExpired):
            await self._pause(exc)
        elif isinstance(exc, (QuotaExhausted, BudgetExhausted)):
            until = exc.until or local_midnight_after(self.clock.now())
            await self._block(until, exc)
        else:
            await self._back_off(exc)

    async def _apply(self, batch: list[Payment], outcomes: dict[str, CheckOutcome]) -> None:
        """Answers that change a status are applied one transaction each; the rest (not found
        yet, refused) are recorded for the whole batch in one statement."""
        allowance = self.state.allowance
        now = self.clock.now()
        unchanged: list[tuple[Payment, str, datetime | None]] = []
        for payment in batch:
            outcome = outcomes.get(payment.md5)
            if outcome is None:
                continue
            if not changes_state(outcome, payment):
                unchanged.append((payment, check_result(outcome), self.schedule.next_check_at(payment, now, allowance)))
                continue
            try:
                async with self.storage.transaction() as tx:
                    current = await repo.get(tx, payment.id)
                    nxt = self.schedule.next_check_at(current, tx.now, allowance)
                    await apply_outcome(tx, current, outcome, actor=ACTOR, next_check_at=nxt)
            except Exception:
                # One payment's failure must not lose the others' answers; it stays due and is retried.
                log.exception("poller: applying the answer for payment %s failed", payment.id)
        if unchanged:
            async with self.storage.transaction(events=False) as tx:
                await repo.record_checks(tx, unchanged)

    async def _block(self, until: datetime, error: BakongRefusal) -> None:
        first = self.state.blocked_until is None or self.state.blocked_until <= self.clock.now()
        self.state.blocked_until = until
        self.state.blocked_reason = error.message
        self.state.blocked_fingerprint = self.client.fingerprint
        if first:
            log.warning("poller: no Bakong requests until %s: %s", until.isoformat(), error.message)
            if isinstance(error, QuotaExhausted):
                async with self.storage.transaction() as tx:
                    await journal.append_event(
                        tx, ev.ALERT_QUOTA_EXHAUSTED, "bakong", "quota", {"message": error.message, "until": until.isoformat()}
                    )

    async def _back_off(self, error: BakongRefusal) -> None:
        if self.state.failing_since is None:
            self.state.failing_since = self.clock.now()
        self.state.failing_kind = error.kind
        self.state.consecutive_failures += 1
        n = self.state.consecutive_failures
        delay = min(300.0, 2.0 * 2 ** (n - 1))
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after > delay:
            delay = min(float(retry_after), 900.0)
        delay *= 1 + self.rng.uniform(0, 0.2)
        self.state.backoff_until = self.clock.now() + timedelta(seconds=delay)
        log.warning("poller: Bakong refused (%s); backing off %.0f s", error.message or type(error).__name__, delay)
        if n == 3:
            async with self.storage.transaction() as tx:
                await journal.append_event(
                    tx,
                    ev.ALERT_BAKONG_UNREACHABLE,
                    "bakong",
                    "api",
                    {"message": error.message or type(error).__name__, "kind": error.kind, "failures": n},
                )

    async def _recovered(self) -> None:
        alerted = self.state.consecutive_failures >= 3
        self.state.consecutive_failures = 0
        self.state.backoff_until = None
        if alerted:
            async with self.storage.transaction() as tx:
                await journal.append_event(tx, ev.ALERT_BAKONG_RECOVERED, "bakong", "api", {"message": "Bakong answers again"})
