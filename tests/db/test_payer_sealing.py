"""The payer's account is never at rest in clear: not in the Bakong record, the event log or the
audit log (raw SQLite file bytes, raw PostgreSQL rows), while every face and webhook still shows
it; `db upgrade` seals what earlier versions wrote in clear. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import insert, text
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.clock import ManualClock
from engine.db import journal
from engine.db.models import AuditLogRow, EventRow
from engine.records import Actor, ActorType, PaymentStatus
from engine.runtime import Engine
from tests.support.engine import events_for, run_for
from tests.support.receiver import Receiver
from tests.support.settings import cli_environ

CASHIER = Actor(ActorType.CASHIER, "dara")
PAYER = "sealtestpayer9@abaa"


async def _raw_rows(engine: Engine) -> str:
    """Every stored value of the payments, events and audit tables, as the database returns text."""
    parts: list[str] = []
    async with engine.storage.read() as tx:
        for sql in (
            "SELECT CAST(bakong_record AS TEXT), CAST(payer_account_enc AS TEXT) FROM payments",
            "SELECT CAST(payload AS TEXT) FROM events",
            "SELECT CAST(before AS TEXT), CAST(after AS TEXT), reason FROM audit_log",
        ):
            parts += [str(value) for row in (await tx.session.execute(text(sql))).all() for value in row]
    return "\n".join(parts)


async def _sqlite_bytes(engine: Engine) -> bytes | None:
    """The SQLite file's bytes (with its -wal and -shm), without the built-in sandbox's own record
    of the transfer (that is the pretend Bakong's data, not the engine's): it is deleted and the
    file rewritten (VACUUM) so no freed page keeps it."""
    url = engine.settings.database.url or ""
    if not url.startswith("sqlite"):
        return None
    path = Path(url.split("///", 1)[1])
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("DELETE FROM sandbox_transfers")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_a_paid_payment_keeps_the_payer_account_only_encrypted(engine: Engine, clock: ManualClock, receiver: Receiver) -> None:
    await engine.webhooks.add_endpoint(receiver.url, actor=CASHIER)
    payment = (await engine.payments.initiate("7.00", "USD", actor=CASHIER)).payment
    assert engine.sandbox is not None
    await engine.sandbox.pay(qr=payment.khqr, from_account=PAYER)
    await run_for(engine, clock, 10)
    paid = await engine.payments.get(payment.id)
    assert paid.status is PaymentStatus.PAID

    raw = await _raw_rows(engine)
    assert PAYER not in raw
    assert "payer_account" in raw, "the field is there, sealed"
    on_disk = await _sqlite_bytes(engine)
    assert on_disk is None or PAYER.encode() not in on_disk

    # where it was shown, it still is
    assert paid.payer_account == PAYER and paid.bakong_record is not None and paid.bakong_record["fromAccountId"] == PAYER
    await receiver.wait_for(2)
    (hook,) = receiver.of_type("payment.completed")
    assert hook.json["data"]["payer_account"] == PAYER
    completed = [e for e in await events_for(engine, payment.id) if e.type == "payment.completed"]
    assert completed[0].payload["payer_account"] == PAYER
    async with engine.storage.read() as tx:
        audited = await journal.list_audit(tx, subject_id=payment.id, action="payment.paid")
    assert audited[0].after is not None and audited[0].after["payer_account"] == PAYER


async def test_db_upgrade_seals_payer_accounts_written_in_clear(engine: Engine, db_url: str) -> None:
    async with engine.storage.transaction(events=False) as tx:  # as an earlier version wrote them
        await tx.session.execute(
            insert(EventRow).values(
                id="msg_old", type="payment.completed", subject_type="payment", subject_id="pay_old",
                payload={"id": "pay_old", "payer_account": PAYER}, occurred_at=tx.now,
            )
        )  # fmt: skip
        await tx.session.execute(
            insert(AuditLogRow).values(
                at=tx.now, actor_type="daemon", actor="poller", action="payment.paid", subject_type="payment",
                subject_id="pay_old", before={"payer_account": None}, after={"payer_account": PAYER},
            )
        )  # fmt: skip
    assert PAYER in await _raw_rows(engine)

    env = cli_environ(db_url)
    # the CLI runs its own event loop: in a thread, as from a shell
    result = await asyncio.to_thread(CliRunner().invoke, app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert "sealed the payer accounts of 2 event and audit rows" in result.output
    assert PAYER not in await _raw_rows(engine)
    again = await asyncio.to_thread(CliRunner().invoke, app, ["db", "upgrade"], env=env)
    assert again.exit_code == 0 and "sealed" not in again.output

    async with engine.storage.read() as tx:
        (old,) = [e for e in await journal.events_since(tx, 0, limit=1000) if e.subject_id == "pay_old"]
        (entry,) = await journal.list_audit(tx, subject_id="pay_old")
    assert old.payload["payer_account"] == PAYER and entry.after == {"payer_account": PAYER}
    assert entry.before == {"payer_account": None}
