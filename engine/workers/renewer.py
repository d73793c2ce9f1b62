"""The renewer: bills renewals ahead of period end and moves subscriptions along the calendar.

One pass, each step a bounded batch read through an index, then one short transaction per change
(the rules themselves live behind ``SubscriptionService``, in ``engine.services.subscriptions``):

1. **repair** — OPEN invoices with no KHQR recorded (a crash between committing the invoice and
   recording its payment) or whose KHQR was cancelled (repriced, reopened) get one; the payment's
   idempotency key makes this safe to repeat.
2. **settle** — OPEN invoices one of whose payments is PAID: activate, start the paid period of a
   PAST_DUE subscription, apply an upgrade (a renewal paid early waits for its period end).
3. **bill** — TRIALING/ACTIVE subscriptions whose period ends within ``renewal_lead_days``: one
   statement inserts their renewal invoices (``ON CONFLICT DO NOTHING`` on (subscription, kind,
   period start), so two renewers never bill a period twice), then each gets its KHQR and a
   ``subscription.renewal_due`` event with the KHQR, MD5 and deep link.
4. **period end** — the next period paid: start it (applying a scheduled downgrade); cancelling:
   CANCELLED; otherwise PAST_DUE with a KHQR valid until the end of grace.
5. **expire** — PAST_DUE past grace and INCOMPLETE past the first-payment window become EXPIRED.
6. **remind** — PAST_DUE subscriptions get ``subscription.payment_reminder`` every
   ``reminder_interval_hours`` (0 turns reminders off), with a KHQR that can still be paid.

A step that filled its batch (``batch`` changes), or a pass that used up its time budget
(``budget_seconds``, measured on the injected clock), makes the pass ask to run again at once: a
burst of renewals is worked through in short passes. Everything is idempotent: running two
renewers (or one twice) changes nothing more than one run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from engine.clock import Clock
from engine.config import Settings
from engine.db import subscriptions as repo
from engine.db.models import SubscriptionRow
from engine.db.storage import Storage
from engine.records import Actor, Payment, SubscriptionInvoice, SubscriptionStatus
from engine.services.subscriptions import SubscriptionService
from engine.workers.base import Worker

__all__ = ["ACTOR", "PassReport", "Renewer"]

log = logging.getLogger("engine.renewer")

ACTOR = Actor.daemon("renewer")


@dataclass
class PassReport:
    """What one pass did (for logs, the bench and tests)."""

    repaired: int = 0
    settled: int = 0
    billed: int = 0
    renewed: int = 0
    cancelled: int = 0
    past_due: int = 0
    expired: int = 0
    reminded: int = 0
    full: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return self.repaired + self.settled + self.billed + self.renewed + self.cancelled + self.past_due + self.expired + self.reminded


class Renewer(Worker):
    name = "renewer"
    #: At most this many changes per step of one pass.
    DEFAULT_BATCH = 100
    #: A pass starts no new change after this many seconds and asks to run again at once: each
    #: renewal creates a KHQR payment in its own transaction (about 10 ms), so a burst of due
    #: renewals is worked through in short passes that stay well inside the worker's lease.
    DEFAULT_BUDGET_SECONDS = 1.0
    #: Renewal invoices inserted (one statement) and given their KHQRs together.
    BILL_CHUNK = 20

    def __init__(
        self, service: SubscriptionService, *, batch: int = DEFAULT_BATCH, budget_seconds: float = DEFAULT_BUDGET_SECONDS
    ) -> None:
        self.service = service
        self.storage: Storage = service.storage
        self.settings: Settings = service.settings
        self.clock: Clock = service.clock
        self.batch = batch
        self.budget_seconds = budget_seconds
        self.last_report = PassReport()
        self._deadline = 0.0

    def _spent(self, report: PassReport, step: str, *, started: int = 0) -> bool:
        """The pass's time is up: note that there is more to do, and stop starting changes.

        Never before the pass's first change (every pass makes progress), and a pass that changed
        nothing never asks to run again at once (no spinning on a slow read)."""
        if report.changes + started == 0 or self.clock.monotonic() < self._deadline:
            return False
        if step not in report.full:
            report.full.append(step)
        return True

    async def run_once(self) -> float | None:
        report = PassReport()
        self._deadline = self.clock.monotonic() + self.budget_seconds
        for step in (self._repair, self._settle, self._bill, self._end_periods, self._expire, self._remind):
            if self._spent(report, "budget"):
                break
            await step(report)
        self.last_report = report
        if report.changes:
            log.info("renewer pass: %s", report)
        return 0.0 if report.full else None

    # --- steps ------------------------------------------------------------------------------------

    async def _repair(self, report: PassReport) -> None:
        async with self.storage.read() as tx:
            items = await repo.unissued_invoices(tx, self.batch)
        for inv, _ in items:
            if self._spent(report, "repair"):
                break
            if await self.service.issue_payment(inv.id, actor=ACTOR) is not None:
                report.repaired += 1
        self._more(report, "repair", len(items), report.repaired)

    async def _settle(self, report: PassReport) -> None:
        async with self.storage.read() as tx:
            items = await repo.paid_open_invoices(tx, self.batch)
        for item in items:
            if self._spent(report, "settle"):
                break
            if await self.service.settle_paid_invoice(item, actor=ACTOR):
                report.settled += 1
        self._more(report, "settle", len(items), report.settled)

    async def _bill(self, report: PassReport) -> None:
        s = self.settings.subscriptions
        horizon = self.clock.now() + timedelta(days=s.renewal_lead_days)
        async with self.storage.read() as tx:
            due = await repo.due_for_renewal(tx, horizon, self.batch)
            plans = await repo.plans_by_id(tx, {self.service.next_period_plan_id(sub) for sub in due})
        if not due:
            return
        by_id = {sub.id: sub for sub in due}
        created_total = 0
        # in chunks, so that a pass out of time leaves few invoices for the repair step
        for first in range(0, len(due), self.BILL_CHUNK):
            if self._spent(report, "bill"):
                break
            rows = []
            for sub in due[first : first + self.BILL_CHUNK]:
                plan = plans[self.service.next_period_plan_id(sub)]
                assert sub.current_period_end is not None
                rows.append(
                    dict(
                        subscription_id=sub.id,
                        period_start=sub.current_period_end,
                        period_end=sub.current_period_end + timedelta(days=plan.cycle_days),
                        plan_id=plan.id,
                        amount_minor=plan.price_minor,
                        currency=plan.currency,
                    )
                )
            async with self.storage.transaction() as tx:
                created = await repo.insert_renewal_invoices(tx, rows)
            created_total += len(created)
            # each KHQR is created AFTER its invoice was committed (payments.initiate, its own
            # transaction); a crash in between is mended by the repair step of the next pass
            issued: list[tuple[SubscriptionInvoice, Payment]] = []
            for inv in created:
                sub = by_id[inv.subscription_id]
                issued.append((inv, await self.service.create_payment(inv, sub, plans[inv.plan_id].code, previous_id=None, actor=ACTOR)))
            # record the chunk's KHQRs and write its renewal_due events in one transaction
            async with self.storage.transaction() as tx:
                for inv, payment in issued:
                    if await self.service.attach_payment(tx, inv.id, payment, previous=None, actor=ACTOR, sub=by_id[inv.subscription_id]):
                        report.billed += 1
        self._more(report, "bill", len(due), created_total)

    async def _end_periods(self, report: PassReport) -> None:
        now = self.clock.now()
        async with self.storage.read() as tx:
            ended = await repo.periods_ended(tx, now, self.batch)
            invoices = await repo.renewal_invoices_at(tx, [(s.id, s.current_period_end) for s in ended if s.current_period_end])
        for sub in ended:
            if self._spent(report, "period_end"):
                break
            found = invoices.get((sub.id, sub.current_period_end))  # type: ignore[arg-type]
            if found is not None and found[0].status == repo.INVOICE_PAID:
                if await self.service.start_paid_period(sub, found[0], actor=ACTOR):
                    report.renewed += 1
            elif sub.cancel_at_period_end:
                if await self.service.end_at_period_end(sub.id, actor=ACTOR):
                    report.cancelled += 1
            elif found is not None:
                if await self.service.mark_past_due(sub, found[0], actor=ACTOR):
                    report.past_due += 1
            # no renewal invoice yet: the bill step of this or the next pass issues it first
        self._more(report, "period_end", len(ended), report.renewed + report.cancelled + report.past_due)

    async def _expire(self, report: PassReport) -> None:
        now = self.clock.now()
        async with self.storage.read() as tx:
            past_due = await repo.in_status(tx, SubscriptionStatus.PAST_DUE, self.batch, SubscriptionRow.grace_until <= now)
            incomplete = await repo.in_status(
                tx, SubscriptionStatus.INCOMPLETE, self.batch, SubscriptionRow.incomplete_until <= now
            )
        for sub in [*past_due, *incomplete]:
            if self._spent(report, "expire"):
                break
            if await self.service.expire(sub.id, actor=ACTOR):
                report.expired += 1
        self._more(report, "expire", max(len(past_due), len(incomplete)), report.expired)

    async def _remind(self, report: PassReport) -> None:
        hours = self.settings.subscriptions.reminder_interval_hours
        if hours <= 0:
            return
        now = self.clock.now()
        async with self.storage.read() as tx:
            due = await repo.in_status(
                tx,
                SubscriptionStatus.PAST_DUE,
                self.batch,
                SubscriptionRow.last_reminder_at <= now - timedelta(hours=hours),
                SubscriptionRow.grace_until > now,
            )
            invoices = await repo.renewal_invoices_at(tx, [(s.id, s.current_period_end) for s in due if s.current_period_end])
        for sub in due:
            if self._spent(report, "remind"):
                break
            found = invoices.get((sub.id, sub.current_period_end))  # type: ignore[arg-type]
            if found is None or found[0].status != repo.INVOICE_OPEN:
                continue
            if await self.service.remind(sub, found[0], actor=ACTOR):
                report.reminded += 1
        self._more(report, "remind", len(due), report.reminded)

    def _more(self, report: PassReport, step: str, read: int, done: int) -> None:
        """A step that read a full batch and made progress has more to do: run again at once.
        (A full batch that changed nothing — all waiting on PENDING KHQRs — waits for the tick.)"""
        if read >= self.batch and done > 0:
            report.full.append(step)
