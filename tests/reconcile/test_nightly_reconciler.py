"""The nightly reconciler on the manual clock, on SQLite and PostgreSQL: nothing before
``reconcile.at``; the night's share spread over the window, oldest payments first; one alert for
the night's flags; what the share could not cover done the next night; the settings it reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import events as ev
from engine.clock import ManualClock
from engine.config import Settings, load_settings
from engine.db import reconciliation as repo
from engine.db.ledger import DatabaseRequestLedger
from engine.db.models import BakongRequestRow
from engine.errors import ConfigError
from engine.records import Payment
from engine.runtime import Engine
from tests.reconcile.test_reconcile_service import events_of, paid_payments
from tests.support.engine import run_for
from tests.support.settings import make_settings, write_config

#: 02:00 in Phnom Penh on 2026-01-16, the first night after the payments (made 2026-01-15 10:00).
NIGHT = datetime(2026, 1, 15, 19, 0, tzinfo=UTC)


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    return make_settings(
        db_url, bakong={"daily_budget": 1000}, payments={"reserve_requests": 3},
        reconcile={"at": "02:00", "spread_minutes": 240},
    )  # fmt: skip


async def reconcile_rows(engine: Engine) -> list[datetime]:
    async with engine.storage.read() as tx:
        rows = await tx.session.scalars(
            select(BakongRequestRow.reserved_at).where(BakongRequestRow.endpoint.in_(repo.RECONCILE_ENDPOINTS)).order_by(BakongRequestRow.id)
        )
        return list(rows)


async def live_day(engine: Engine, clock: ManualClock, total: int) -> None:
    """Make today's ledger show ``total`` requests of live polling (what it spent, and more)."""
    async with engine.storage.read() as tx:
        spent, _ = await repo.requests_on(tx, date(2026, 1, 15))
    ledger = DatabaseRequestLedger(engine.storage)
    for _ in range(total - spent):
        await ledger.reserve(engine.client.fingerprint, "check_transaction_by_md5_list", now=clock.now(), daily_budget=1000)


async def statuses(engine: Engine, payments: list[Payment]) -> list[str | None]:
    return [(await engine.payments.get(p.id)).reconcile_status for p in payments]


async def test_the_night_spreads_its_share_and_alerts_once(engine: Engine, clock: ManualClock) -> None:
    paid = sorted(await paid_payments(engine, clock, [f"{i}.00" for i in range(1, 11)]), key=lambda p: (p.paid_at, p.id))
    await live_day(engine, clock, 990)  # the night of the 16th may spend 1000 - 3 - 990 = 7
    assert engine.sandbox is not None
    engine.sandbox.faults = engine.sandbox.faults.updated({
        "hash_list_blocked": True, "hash_drift": {paid[0].bakong_hash: "amount", paid[1].bakong_hash: "not_found"},
    })  # fmt: skip

    await run_for(engine, clock, (NIGHT - clock.now()).total_seconds() - 60, step=3600)
    assert await reconcile_rows(engine) == [], "nothing before reconcile.at"
    assert await statuses(engine, paid) == [None] * 10

    await run_for(engine, clock, 5 * 3600, step=60)
    sent = await reconcile_rows(engine)
    assert len(sent) == 7, "the night's share: what live polling left of the day before"
    assert sent[0] >= NIGHT and sent[-1] < NIGHT + timedelta(minutes=240)
    gaps = [(b - a).total_seconds() for a, b in zip(sent[1:], sent[2:])]
    assert min(gaps) >= 25 * 60, f"spread over the window, not sent at once: {gaps}"
    assert await statuses(engine, paid) == ["amount_mismatch", "not_found"] + ["ok"] * 4 + [None] * 4, (await reconcile_rows(engine), await engine.reconciliation.share())
    alerts = await events_of(engine, ev.ALERT_RECONCILIATION_FAILED)
    assert len(alerts) == 1 and alerts[0].payload["counts"] == {"amount_mismatch": 1, "not_found": 1}
    assert set(alerts[0].payload["payments"]) == {paid[0].id, paid[1].id}
    flagged_events = await events_of(engine, ev.PAYMENT_RECONCILIATION_FAILED)
    assert sorted(e.subject_id for e in flagged_events) == sorted([paid[0].id, paid[1].id])

    # the 16th had no live polling to speak of: the next night finishes the rest, without a new alert
    next_night = NIGHT + timedelta(days=1)
    await run_for(engine, clock, (next_night - clock.now()).total_seconds() - 60, step=3600)
    assert len(await reconcile_rows(engine)) == 7
    await run_for(engine, clock, 3600, step=60)
    assert await statuses(engine, paid) == ["amount_mismatch", "not_found"] + ["ok"] * 8, (await reconcile_rows(engine), await engine.reconciliation.share())
    assert len(await events_of(engine, ev.ALERT_RECONCILIATION_FAILED)) == 1


async def test_disabled_it_is_not_a_worker(db_url: str, clock: ManualClock) -> None:
    from tests.support.engine import open_engine

    settings = make_settings(db_url, reconcile={"enabled": False})
    async with open_engine(settings, clock) as off:
        assert "reconciler" not in off.runners
    async with open_engine(make_settings(db_url), clock, holder="other") as on:
        assert "reconciler" in on.runners


@pytest.mark.parametrize(
    ("toml", "says"),
    [('at = "2:5"', "reconcile.at: must be a time of day"), ("spread_minutes = 0", "reconcile.spread_minutes: must be from 1 to 1440")],
)
def test_bad_settings_are_refused(tmp_path: Path, toml: str, says: str) -> None:
    path = write_config(tmp_path / "c.toml", "sqlite+aiosqlite:///x.db", f"[reconcile]\n{toml}\n")
    with pytest.raises(ConfigError, match=says):
        load_settings(path)
