"""The end-of-day close on SQLite and PostgreSQL: refused while payments wait for a decision,
forced with a reason, frozen and immutable; a later resolve becomes an adjustment on the next open
day, shown on both days' reports; `close-day` prints a 42-column receipt and writes JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.clock import ManualClock
from engine.db import journal
from engine.db import payments as repo
from engine.db.models import DayCloseRow
from engine.db.storage import Storage
from engine.errors import InvalidInput, InvalidTransition
from engine.records import Actor, ActorType, PaymentStatus
from engine.services.day_close import DayCloseService
from engine.services.reports import ReportService
from tests.reports.conftest import DAY, EXPECTED_TOTALS, seed_day, utc
from tests.support.settings import make_settings

OWNER = Actor(ActorType.CLI, "owner")
runner = CliRunner()


@pytest.fixture
def closer(storage: Storage, db_url: str) -> DayCloseService:
    return DayCloseService(storage, ReportService(storage, make_settings(db_url), clock=storage.clock), clock=storage.clock)


async def closed_days(storage: Storage) -> int:
    async with storage.read() as tx:
        return int(await tx.session.scalar(select(func.count()).select_from(DayCloseRow)) or 0)


async def day_closed_events(storage: Storage) -> list:
    async with storage.read() as tx:
        return await journal.events_since(tx, 0, types=["day.closed"])


async def test_refused_while_payments_wait_then_forced_with_a_reason(storage: Storage, closer: DayCloseService, clock: ManualClock) -> None:
    await seed_day(storage)
    clock.set(utc(2026, 1, 16, 3, 0))

    with pytest.raises(InvalidTransition) as refused:
        await closer.close(DAY, actor=OWNER)
    assert refused.value.message == (
        "2026-01-15 cannot be closed: 2 payments still need a decision (NEEDS_REVIEW 1, PENDING 1); "
        "decide them, or close with --force --reason"
    )
    with pytest.raises(InvalidInput, match="needs a reason"):
        await closer.close(DAY, actor=OWNER, force=True, reason="  ")
    assert await closed_days(storage) == 0 and await day_closed_events(storage) == []

    close = await closer.close(DAY, actor=OWNER, force=True, reason="review tomorrow")

    assert [(t.currency, t.payments, t.paid_count, t.paid_minor) for t in close.totals] == EXPECTED_TOTALS
    assert (close.closed_at, close.closed_by, close.forced, close.reason) == (utc(2026, 1, 16, 3, 0), "cli:owner", True, "review tomorrow")
    assert [o.status for o in close.open_items] == ["NEEDS_REVIEW", "PENDING"]
    [event] = await day_closed_events(storage)
    assert event.subject_id == "2026-01-15" and event.payload["totals"][0] == {"currency": "KHR", "payments": 3, "paid_count": 2, "paid_minor": 10_000}
    with pytest.raises(InvalidTransition, match="2026-01-15 was already closed at 2026-01-16T03:00:00"):
        await closer.close(DAY, actor=OWNER, force=True, reason="again")
    assert await closed_days(storage) == 1
    with pytest.raises(InvalidInput, match="is in the future"):
        await closer.close(date(2026, 1, 17), actor=OWNER)


async def test_preview_is_what_the_close_freezes_and_writes_nothing(storage: Storage, closer: DayCloseService, clock: ManualClock) -> None:
    await seed_day(storage)
    clock.set(utc(2026, 1, 16, 3, 0))
    report = await closer.reports.day(DAY)

    draft = closer.preview(report, actor=OWNER)
    forced = closer.preview(report, actor=OWNER, force=True, reason="  by phone ")

    assert (draft.closed_at, draft.closed_by, draft.forced, draft.reason) == (utc(2026, 1, 16, 3, 0), "cli:owner", False, None)
    assert (forced.forced, forced.reason) == (True, "by phone")
    assert [(t.currency, t.payments, t.paid_count, t.paid_minor) for t in draft.totals] == EXPECTED_TOTALS
    assert await closed_days(storage) == 0 and await day_closed_events(storage) == []

    close = await closer.close(DAY, actor=OWNER, force=True, reason="by phone")
    assert close == forced
    clock.set(utc(2026, 1, 16, 5, 0))
    again = closer.preview(await closer.reports.day(DAY), actor=Actor(ActorType.CASHIER, "sok"))
    assert again == close, "a closed day previews as frozen, by whom and when it was closed"


async def test_a_resolve_after_the_close_is_an_adjustment_on_the_next_open_day(
    storage: Storage, closer: DayCloseService, clock: ManualClock
) -> None:
    ids = await seed_day(storage)
    clock.set(utc(2026, 1, 16, 3, 0))
    await closer.close(DAY, actor=OWNER, force=True, reason="review tomorrow")

    clock.set(utc(2026, 1, 16, 4, 0))  # 11:00 on the 16th: the review is accepted
    async with storage.transaction() as tx:
        await repo.transition(tx, ids[5], expected=[PaymentStatus.NEEDS_REVIEW], to=PaymentStatus.PAID, actor=OWNER, reason="ok",
                              changes={"paid_at": tx.now})  # fmt: skip

    closed = await closer.reports.day(DAY)
    assert closed.close is not None
    assert [(t.currency, t.paid_minor) for t in closed.close.totals] == [("KHR", 10_000), ("USD", 1_250)], "frozen"
    assert [(t.currency, t.paid_minor) for t in closed.totals] == [("KHR", 12_500), ("USD", 1_250)], "live"
    assert [(a.payment_id, a.amount_minor, a.landed_on) for a in closed.adjustments_out] == [(ids[5], 2_500, date(2026, 1, 16))]
    next_day = await closer.reports.day(date(2026, 1, 16))
    assert [(a.payment_id, a.currency, a.amount_minor, a.payment_day) for a in next_day.adjustments_in] == [(ids[5], "KHR", 2_500, DAY)]
    assert next_day.close is None and next_day.adjustments_out == ()

    clock.set(utc(2026, 1, 16, 4, 30))
    sixteenth = await closer.close(date(2026, 1, 16), actor=OWNER)  # nothing of the 16th waits
    assert [(a.payment_id, a.amount_minor) for a in sixteenth.adjustments] == [(ids[5], 2_500)]

    clock.set(utc(2026, 1, 16, 5, 0))  # the 16th is closed too: this change lands on the 17th
    async with storage.transaction() as tx:
        await repo.transition(tx, ids[6], expected=[PaymentStatus.PENDING], to=PaymentStatus.PAID, actor=OWNER, reason="seen",
                              changes={"paid_at": tx.now})  # fmt: skip
    clock.set(utc(2026, 1, 17, 1, 0))
    closed = await closer.reports.day(DAY)
    assert [(a.payment_id, a.amount_minor, a.landed_on) for a in closed.adjustments_out] == [
        (ids[5], 2_500, date(2026, 1, 16)),
        (ids[6], 500, date(2026, 1, 17)),
    ]
    assert [a.payment_id for a in (await closer.reports.day(date(2026, 1, 16))).adjustments_in] == [ids[5]]
    assert [(a.payment_id, a.currency, a.amount_minor) for a in (await closer.reports.day(date(2026, 1, 17))).adjustments_in] == [(ids[6], "USD", 500)]


def test_close_day_cli_refuses_then_prints_the_receipt_and_writes_files(seeded: dict[str, str], tmp_path: Path) -> None:
    refused = runner.invoke(app, ["close-day", "--date", "2026-01-15"], env=seeded)
    assert refused.exit_code != 0
    assert refused.stdout.startswith("Waiting for a decision (2):\n") and "NEEDS_REVIEW" in refused.stdout
    assert refused.stderr.startswith("error: 2026-01-15 cannot be closed: 2 payments still need a decision")

    done = runner.invoke(
        app,
        ["close-day", "--date", "2026-01-15", "--force", "--reason", "checked by phone", "--json", str(tmp_path / "z.json"), "--csv", str(tmp_path / "z.csv")],
        env=seeded,
    )
    assert done.exit_code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 42
    assert "Z REPORT 2026-01-15" in lines[1] and "FORCED: checked by phone" in done.stdout
    assert "KHR 2 of 3                      10,000 KHR" in lines and "USD 1 of 2                       12.50 USD" in lines
    data = json.loads((tmp_path / "z.json").read_text())
    assert data["day"] == "2026-01-15" and data["forced"] is True and len(data["open_items"]) == 2
    rows = list(csv.reader(io.StringIO((tmp_path / "z.csv").read_text())))
    assert ["total", "2026-01-15", "KHR", "3", "2", "10000"] in rows

    again = runner.invoke(app, ["close-day", "--date", "2026-01-15", "--force", "--reason", "x"], env=seeded)
    assert again.exit_code != 0 and again.stderr.startswith("error: 2026-01-15 was already closed at")
