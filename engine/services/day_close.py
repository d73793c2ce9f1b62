"""The end-of-day close ("Z report"): freezing a day's totals once, refusing while payments of the
day still need a decision (unless forced, with a reason), and completing every day report with
its close and the adjustments made after closes.

A closed day is immutable. A later change to one of its payments (an operator's resolve, a late
find) is an adjustment: it lands on the day it was made (the next day when that one was already
closed), is shown on that day's report and on the closed day's, and is frozen into the close of
the day it landed on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date, datetime

from engine import events as ev
from engine.clock import Clock
from engine.db import day_closes as repo
from engine.db.journal import append_event, audit
from engine.db.storage import Storage, Tx
from engine.errors import InvalidInput, InvalidTransition
from engine.records import Actor
from engine.report_records import DayClose, DayReport
from engine.services.reports import ReportService

__all__ = ["DayCloseService"]

_REASON_LIMIT = 500


def _frozen(report: DayReport, *, at: datetime, actor: Actor, force: bool, reason: str | None) -> DayClose:
    """The close of ``report``'s day as ``actor`` makes it at ``at``."""
    return DayClose(
        day=report.day, closed_at=at, closed_by=str(actor), forced=force, reason=reason, totals=report.totals,
        terminals=report.terminals, statuses=report.statuses, open_items=report.open_items,
        adjustments=report.adjustments_in,
    )  # fmt: skip


class DayCloseService:
    def __init__(self, storage: Storage, reports: ReportService, *, clock: Clock) -> None:
        self.storage = storage
        self.reports = reports
        self.clock = clock
        reports.extend(self._complete)

    async def _complete(self, tx: Tx, report: DayReport) -> DayReport:
        close = await repo.close_of(tx, report.day)
        landing = await repo.adjustments_landing(tx, report.day)
        after = await repo.adjustments_after(tx, close) if close is not None else ()
        return replace(report, close=close, adjustments_in=landing, adjustments_out=after)

    def preview(self, report: DayReport, *, actor: Actor, force: bool = False, reason: str | None = None) -> DayClose:
        """What ``close`` would freeze of ``report`` if ``actor`` closed its day now (its Z report
        before the close; nothing is written). A closed day's report answers its frozen close."""
        if report.close is not None:
            return report.close
        return _frozen(report, at=self.clock.now(), actor=actor, force=force, reason=(reason or "").strip() or None)

    async def close(self, day: date | None = None, *, actor: Actor, force: bool = False, reason: str | None = None) -> DayClose:
        """Close ``day`` (today by default): freeze its totals, emit ``day.closed``.

        Refused (InvalidTransition) while payments of the day are NEEDS_REVIEW, PAID_LATE or
        PENDING, unless ``force`` with a ``reason``; refused (Conflict) when already closed."""
        why = (reason or "").strip() or None
        if force and why is None:
            raise InvalidInput("closing by force needs a reason (--reason)", field="reason")
        if why is not None and not force:
            raise InvalidInput("a reason is given only when closing by force (--force)", field="reason")
        if why is not None and len(why) > _REASON_LIMIT:
            raise InvalidInput(f"reason is longer than {_REASON_LIMIT} characters", field="reason")
        report = await self.reports.day(day)
        if report.close is not None:
            raise InvalidTransition(
                f"{report.day.isoformat()} was already closed at {report.close.closed_at.isoformat()} by {report.close.closed_by}"
            )
        if report.open_count and not force:
            waiting = Counter(item.status for item in report.open_items)
            shown = ", ".join(f"{status} {n}" for status, n in sorted(waiting.items()))
            raise InvalidTransition(
                f"{report.day.isoformat()} cannot be closed: {report.open_count} payments still need a decision ({shown}); "
                "decide them, or close with --force --reason"
            )
        async with self.storage.transaction() as tx:
            close = _frozen(report, at=tx.now, actor=actor, force=force, reason=why)
            await repo.insert_close(tx, close)
            data = repo.close_json(close)
            await audit(tx, actor, "day.close", "day", close.day.isoformat(), after=data, reason=why)
            await append_event(tx, ev.DAY_CLOSED, "day", close.day.isoformat(), data)
        return close
