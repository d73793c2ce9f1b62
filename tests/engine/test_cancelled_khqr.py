"""A cancelled KHQR can still be scanned and paid until it expires: it stays watched, and a
transfer found on it goes to NEEDS_REVIEW with an alert and an event; `check_now` (the CLI's
`payments check`) checks it. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine import events as ev
from engine.bakong.models import CheckStatus
from engine.clock import ManualClock
from engine.db import journal
from engine.db import payments as repo
from engine.errors import InvalidTransition
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from tests.support.engine import events_for, run_for
from tests.support.settings import write_config

CASHIER = Actor(ActorType.CASHIER, "dara")


async def test_a_cancelled_khqr_paid_anyway_goes_to_review_with_an_alert(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("4.00", "USD", actor=CASHIER, reference="table-7")).payment
    await run_for(engine, clock, 3)
    cancelled = await engine.payments.cancel(payment.id, actor=CASHIER, reason="customer left")
    assert cancelled.late_watch_until == payment.expires_at + timedelta(minutes=60)
    assert cancelled.next_check_at is not None
    await run_for(engine, clock, 60, step=5)
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=payment.khqr)  # the old QR on the customer's phone
    await run_for(engine, clock, 400, step=20)

    found = await engine.payments.get(payment.id)
    assert found.status is PaymentStatus.NEEDS_REVIEW
    assert found.bakong_hash is None, "the transfer is claimed only if an operator accepts it"
    assert found.next_check_at is None and found.payer_account
    events = await events_for(engine, payment.id)
    assert [e.type for e in events] == [
        ev.PAYMENT_CREATED, ev.PAYMENT_CANCELLED, ev.PAYMENT_NEEDS_REVIEW, ev.ALERT_PAID_AFTER_CANCEL,
    ]  # fmt: skip
    review, alert = events[2], events[3]
    assert review.payload["previous_status"] == "CANCELLED" and "paid after it was cancelled" in review.payload["problems"]
    assert alert.payload["status"] == "NEEDS_REVIEW" and "cancelled but its KHQR was paid" in alert.payload["message"]
    assert review.sequence + 1 == alert.sequence
    async with engine.storage.read() as tx:
        assert [h.to_status for h in await repo.history(tx, payment.id)] == ["PENDING", "CANCELLED", "NEEDS_REVIEW"]
        audited = await journal.list_audit(tx, subject_id=payment.id)
    assert [a.action for a in audited][0] == "payment.needs_review"

    accepted = await engine.payments.resolve(payment.id, accept=True, actor=CASHIER, reason="customer came back")
    assert accepted.status is PaymentStatus.PAID and accepted.bakong_hash


async def test_the_watch_of_a_cancelled_khqr_ends_after_its_expiry(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("4.00", "USD", actor=CASHIER, timeout_minutes=2)).payment
    await engine.payments.cancel(payment.id, actor=CASHIER)
    calls = engine.sandbox.stats["total"]
    await run_for(engine, clock, 2 * 60 + 61 * 60, step=60)
    after = await engine.payments.get(payment.id)
    assert after.status is PaymentStatus.CANCELLED and after.next_check_at is None
    assert 1 <= engine.sandbox.stats["total"] - calls <= 20, "watched at the late watch's pace, then not at all"
    with pytest.raises(InvalidTransition, match="nothing to check"):
        await engine.payments.check_now(payment.id, actor=CASHIER)


async def test_check_now_checks_a_cancelled_khqr_that_can_still_be_paid(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("5000", "KHR", actor=CASHIER)).payment
    await engine.payments.cancel(payment.id, actor=CASHIER)
    unpaid, outcome = await engine.payments.check_now(payment.id, actor=CASHIER)
    assert unpaid.status is PaymentStatus.CANCELLED and outcome.status is CheckStatus.NOT_FOUND
    await engine.sandbox.pay(qr=payment.khqr)
    found, _ = await engine.payments.check_now(payment.id, actor=CASHIER)
    assert found.status is PaymentStatus.NEEDS_REVIEW
    assert [e.type for e in await events_for(engine, payment.id)][-1] == ev.ALERT_PAID_AFTER_CANCEL


def test_payments_check_on_a_cancelled_but_payable_khqr_checks_it(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    config = write_config(tmp_path / "cli.toml", db_url)

    def cli(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--config", str(config), *args])
        return result.exit_code, result.stdout, result.stderr

    assert cli("db", "upgrade")[0] == 0
    code, out, _ = cli("pay", "--amount", "2.00", "--currency", "USD", "--reference", "order-9", "--json")
    assert code == 0
    assert cli("payments", "cancel", "order-9")[1].strip().endswith("CANCELLED")
    code, out, err = cli("sandbox", "pay", json.loads(out)["khqr"])
    assert code == 0, err
    code, out, err = cli("payments", "check", "order-9")
    assert code == 0, err
    assert "NEEDS_REVIEW" in out and "nothing to check" not in out + err
