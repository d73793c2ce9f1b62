"""Reconciliation with Bakong: re-check paid payments by their Bakong hash, within reconciliation's
share of the day's request budget, and mark each one reconciled or flagged.

The share never starves live polling: on a Bakong day reconciliation spends at most what live
polling (every request but reconciliation's) left unused of the previous day's budget at its
close, less ``payments.reserve_requests``, and never the day's last ``reserve_requests``
requests. Both sides are read from the durable request ledger, so every process counts alike.

A paid payment is ``ok`` when Bakong still has its transaction with the same currency, amount
(exact, in minor units) and receiving account; otherwise it is flagged (``not_found``,
``currency_mismatch``, ``amount_mismatch``, ``account_mismatch``, ``failed``) with a
``payment.reconciliation_failed`` event; each pass that flags anything raises one
``alert.reconciliation_failed`` for a person. A refusal (quota, token, unreachable, 5xx) leaves
the payments it did not answer as they were: not yet checked.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from engine import events as ev
from engine.bakong import BULK_LIMIT, BakongClient
from engine.bakong.budget import bakong_day
from engine.bakong.models import CheckOutcome, CheckStatus
from engine.clock import Clock
from engine.config import Settings
from engine.db import journal
from engine.db import reconciliation as repo
from engine.db.storage import Storage, Tx
from engine.errors import InvalidInput
from engine.records import Actor, DayReconciliation, Payment, ReconcileStatus

__all__ = ["BudgetShare", "ReconcileRun", "ReconciliationService", "append_alert", "verdict"]

log = logging.getLogger("engine.reconcile")


@dataclass(frozen=True)
class BudgetShare:
    """Reconciliation's share of one Bakong day's request budget."""

    day: date
    budget: int
    reserve: int
    #: Requests live polling (everything but reconciliation) spent on the previous day.
    live_previous_day: int
    #: Requests reconciliation spent on ``day`` so far.
    spent: int
    #: Requests of ``day``'s budget not yet spent, by anyone.
    remaining_today: int

    @property
    def allowed(self) -> int:
        """What live polling left unused of the previous day's budget (less the reserve)."""
        return max(0, self.budget - self.reserve - self.live_previous_day)

    @property
    def left(self) -> int:
        """Requests reconciliation may still send on ``day``."""
        return max(0, min(self.allowed - self.spent, self.remaining_today - self.reserve))


@dataclass
class ReconcileRun:
    """What one reconciliation call did."""

    reconciled: list[Payment] = field(default_factory=list)
    flagged: list[Payment] = field(default_factory=list)
    #: Payments asked about whose answer said nothing usable (left not yet checked).
    unanswered: int = 0
    requests: int = 0
    #: Why it stopped before the work was done (the share spent, a refusal), if it did.
    stopped: str | None = None

    @property
    def flag_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(p.reconcile_status or "" for p in self.flagged).items()))


def verdict(payment: Payment, outcome: CheckOutcome) -> tuple[ReconcileStatus | None, dict[str, Any]]:
    """What an answer about a paid payment's hash says: OK, a flag, or None (no usable answer),
    with what Bakong answered (for the audit row and the event)."""
    if outcome.status is CheckStatus.NOT_FOUND:
        return ReconcileStatus.NOT_FOUND, {"message": outcome.message}
    if outcome.status is CheckStatus.FAILED:
        return ReconcileStatus.FAILED, {"message": outcome.message}
    tx = outcome.transaction
    if outcome.status is not CheckStatus.PAID or tx is None:
        return None, {}
    found = {"hash": tx.hash, "amount": str(tx.amount), "currency": tx.currency, "to_account_id": tx.to_account_id}
    if tx.currency.upper() != payment.currency:
        return ReconcileStatus.CURRENCY_MISMATCH, found
    if tx.amount_minor != payment.amount_minor:
        return ReconcileStatus.AMOUNT_MISMATCH, found
    if (tx.to_account_id or "").strip().lower() != payment.receiving_account.strip().lower():
        return ReconcileStatus.ACCOUNT_MISMATCH, found
    return ReconcileStatus.OK, found


class ReconciliationService:
    """Re-check paid payments with Bakong: a day's on demand, the oldest ones at night."""

    def __init__(self, storage: Storage, settings: Settings, *, clock: Clock, client: BakongClient) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.client = client

    async def share(self) -> BudgetShare:
        """Reconciliation's share of today's Bakong budget, as the ledger stands now."""
        now = self.clock.now()
        today = bakong_day(now)
        usage = await self.client.budget_usage()
        async with self.storage.read() as tx:
            total_before, ours_before = await repo.requests_on(tx, today - timedelta(days=1))
            _, ours_today = await repo.requests_on(tx, today)
        remaining = 0 if usage.exhausted_until is not None else usage.remaining
        return BudgetShare(
            day=today, budget=usage.budget, reserve=self.settings.payments.reserve_requests,
            live_previous_day=total_before - ours_before, spent=ours_today, remaining_today=remaining,
        )  # fmt: skip

    async def summary(self, day: date) -> DayReconciliation:
        """A day's paid payments: reconciled, flagged (per kind), not yet checked."""
        async with self.storage.read() as tx:
            return await repo.count_day(tx, day)

    async def flagged(self, day: date, *, limit: int = 100) -> list[Payment]:
        """The day's flagged paid payments, oldest paid first."""
        async with self.storage.read() as tx:
            return await repo.flagged_on(tx, day, limit=limit)

    def check_day(self, day: date) -> date:
        """``day`` if it can be reconciled: a day that has begun (today's payments can be
        re-checked too, though the night does it for them once the day is over)."""
        today = bakong_day(self.clock.now())
        if day > today:
            raise InvalidInput(f"{day.isoformat()} is in the future (today is {today.isoformat()} in Phnom Penh)", field="date")
        return day

    async def reconcile(
        self,
        *,
        actor: Actor,
        day: date | None = None,
        include_checked: bool = False,
        max_requests: int | None = None,
        alert: bool = True,
    ) -> ReconcileRun:
        """Re-check paid payments within the share (and at most ``max_requests`` requests): those
        paid on ``day`` (Phnom Penh), else the oldest not yet reconciled paid before today.
        ``include_checked`` re-checks those already reconciled or flagged too (a day only)."""
        run = ReconcileRun()
        if day is not None:
            start, end = repo.day_bounds(self.check_day(day))
        else:
            start, end = None, repo.day_bounds(bakong_day(self.clock.now()))[0]
        done: set[str] = set()
        while True:
            share = await self.share()
            if share.left <= 0:
                run.stopped = "reconciliation's share of today's Bakong budget is spent"
                break
            if max_requests is not None and run.requests >= max_requests:
                break
            budget = share.left if max_requests is None else min(share.left, max_requests - run.requests)
            per_request = BULK_LIMIT if self.client.hash_list_blocked_until is None else 1
            async with self.storage.read() as tx:
                batch = await repo.to_reconcile(
                    tx, paid_before=end, paid_from=start, include_checked=include_checked and day is not None,
                    limit=per_request * budget + len(done),
                )  # fmt: skip
            batch = [p for p in batch if p.id not in done][: per_request * budget]
            if not batch:
                break
            outcomes, spent, refusal = await self.client.recheck_hashes([p.bakong_hash or "" for p in batch], max_requests=budget)
            run.requests += spent
            await self._apply(batch, outcomes, run, actor)
            done.update(p.id for p in batch if p.bakong_hash in outcomes)
            if refusal is not None:
                run.stopped = refusal.message or type(refusal).__name__
                break
        if alert and run.flagged:
            await self.raise_alert(run.flag_counts, [p.id for p in run.flagged], day=day)
        return run

    async def _apply(self, batch: list[Payment], outcomes: dict[str, CheckOutcome], run: ReconcileRun, actor: Actor) -> None:
        for payment in batch:
            outcome = outcomes.get(payment.bakong_hash or "")
            if outcome is None:
                continue
            found_verdict, found = verdict(payment, outcome)
            if found_verdict is None:
                run.unanswered += 1
                continue
            async with self.storage.transaction(events=found_verdict.flagged) as tx:
                marked = await repo.mark(tx, payment, found_verdict, actor=actor, found=found)
            if marked is None:
                continue
            (run.flagged if found_verdict.flagged else run.reconciled).append(marked)
            if found_verdict.flagged:
                log.warning("reconciliation: payment %s flagged %s", payment.id, found_verdict.value)

    async def raise_alert(self, counts: dict[str, int], payment_ids: list[str], *, day: date | None) -> None:
        """One ``alert.reconciliation_failed`` for the flags of a pass."""
        async with self.storage.transaction() as tx:
            await append_alert(tx, counts, payment_ids, day=day)


async def append_alert(tx: Tx, counts: dict[str, int], payment_ids: list[str], *, day: date | None) -> None:
    """Write the ``alert.reconciliation_failed`` of a pass's flags (counts per kind) in ``tx``."""
    total = sum(counts.values())
    kinds = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(counts.items()))
    where = f" of {day.isoformat()}" if day is not None else ""
    message = f"reconciliation with Bakong flagged {total} paid payment(s){where}: {kinds}"
    await journal.append_event(
        tx, ev.ALERT_RECONCILIATION_FAILED, "bakong", "reconciliation",
        {"message": message, "counts": dict(sorted(counts.items())), "payments": payment_ids[:100],
         "day": day.isoformat() if day else None},
    )  # fmt: skip
