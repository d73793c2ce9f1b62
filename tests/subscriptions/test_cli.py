"""`bakong-console plans` and `bakong-console subs`: outcomes and exit codes, on both databases."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.records import Actor, ActorType
from engine.runtime import Engine
from engine.workers.renewer import Renewer
from tests.support.settings import make_settings

runner = CliRunner()
OPERATOR = Actor(ActorType.CLI, "test")


@pytest.fixture
def cli(cli_env: dict[str, str]):  # noqa: ANN201
    def invoke(*args: str):  # noqa: ANN202
        return runner.invoke(app, list(args), env=cli_env)

    return invoke


def activate(db_url: str, user: str) -> None:
    """Pay a user's first KHQR and let one renewer pass act on it (what the daemon would do)."""

    async def run() -> None:
        async with Engine.open(make_settings(db_url), migrate=False) as engine:
            view = await engine.subscriptions.status(user)
            (item,) = view.open_invoices
            assert item.payment is not None
            await engine.payments.mark_paid(item.payment.id, actor=OPERATOR, reason="seen in the bank app")
            await Renewer(engine.subscriptions).run_once()

    asyncio.run(run())


def test_plans_commands(cli) -> None:  # noqa: ANN001
    added = cli("plans", "add", "basic", "--price", "20000", "--name", "Basic")
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == "basic\tBasic\t20,000 KHR / 30 days\tno trial"
    assert cli("plans", "add", "gold", "--price", "5.00", "--currency", "USD", "--trial-days", "7", "--cycle-days", "30").exit_code == 0

    again = cli("plans", "add", "basic", "--price", "1")
    assert again.exit_code == 1 and again.stderr.strip() == "error: a plan with code 'basic' already exists"
    bad = cli("plans", "add", "cheap", "--price", "0.5")
    assert bad.exit_code == 1 and "whole riel" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert cli("plans", "add", "Bad Code", "--price", "1").exit_code == 1

    listed = json.loads(cli("plans", "list", "--json").stdout)
    assert [(p["code"], p["price"], p["currency"], p["trial_days"]) for p in listed] == [
        ("basic", "20000", "KHR", 0), ("gold", "5.00", "USD", 7),
    ]  # fmt: skip
    updated = cli("plans", "update", "gold", "--price", "6", "--json")
    assert updated.exit_code == 0 and json.loads(updated.stdout)["price"] == "6.00"
    assert cli("plans", "update", "gold").exit_code == 1  # nothing to change
    assert cli("plans", "update", "nope", "--price", "1").exit_code == 1
    assert cli("plans", "archive", "gold").stdout.strip().endswith("(archived)")
    assert [line.split("\t")[0] for line in cli("plans", "list").stdout.splitlines()] == ["basic"]
    assert len(cli("plans", "list", "--all").stdout.splitlines()) == 2


def test_subs_create_show_and_list(cli) -> None:  # noqa: ANN001
    cli("plans", "add", "basic", "--price", "20000")
    cli("plans", "add", "gold", "--price", "5", "--currency", "USD", "--trial-days", "7")
    created = cli("subs", "create", "user-1", "basic", "--json")
    assert created.exit_code == 0, created.output
    data = json.loads(created.stdout)
    assert (data["status"], data["plan"], data["access"]) == ("INCOMPLETE", "basic", False)
    (invoice,) = data["open_invoices"]
    assert invoice["kind"] == "initial" and invoice["amount"] == "20000"
    assert invoice["payment"]["status"] == "PENDING" and invoice["payment"]["khqr"].startswith("000201")

    dup = cli("subs", "create", "user-1", "gold")
    assert dup.exit_code == 1 and "already has a live subscription" in dup.stderr
    assert cli("subs", "create", "user-2", "nope").exit_code == 1
    trial = cli("subs", "create", "user-2", "gold")
    assert trial.exit_code == 0 and "status       TRIALING" in trial.stdout

    shown = cli("subs", "show", "user-1")
    assert shown.exit_code == 0
    assert "status       INCOMPLETE (no access)" in shown.stdout and "owes         initial 20,000 KHR" in shown.stdout
    assert "None -> INCOMPLETE" not in shown.stdout and "-> INCOMPLETE" in shown.stdout  # the history
    missing = cli("subs", "show", "nobody")
    assert missing.exit_code == 1 and missing.stderr.strip() == "error: user 'nobody' has no subscription"

    lines = cli("subs", "list").stdout.splitlines()
    assert [line.split("\t")[1:3] for line in lines] == [["user-2", "TRIALING"], ["user-1", "INCOMPLETE"]]
    only = [json.loads(line) for line in cli("subs", "list", "--status", "trialing", "--json").stdout.splitlines()]
    assert [v["user_id"] for v in only] == ["user-2"]
    assert [json.loads(x)["user_id"] for x in cli("subs", "list", "--plan", "basic", "--json").stdout.splitlines()] == ["user-1"]
    soon = cli("subs", "list", "--ends-before", "30d", "--json").stdout.splitlines()
    assert [json.loads(x)["user_id"] for x in soon] == ["user-2"]
    assert cli("subs", "list", "--status", "bogus").exit_code == 1
    assert cli("subs", "list", "--ends-before", "soon").exit_code == 1
    paged = cli("subs", "list", "--limit", "1")
    assert len(paged.stdout.splitlines()) == 1 and "next: --cursor" in paged.stderr


def test_subs_changes(cli, db_url: str) -> None:  # noqa: ANN001
    cli("plans", "add", "basic", "--price", "20000")
    cli("plans", "add", "pro", "--price", "50000")
    cli("subs", "create", "user-1", "basic")
    early = cli("subs", "upgrade", "user-1", "pro", "--preview")
    assert early.exit_code == 1 and "only an ACTIVE or TRIALING" in early.stderr
    activate(db_url, "user-1")
    assert "status       ACTIVE" in cli("subs", "show", "user-1").stdout

    preview = cli("subs", "upgrade", "user-1", "pro", "--preview", "--json")
    assert preview.exit_code == 0, preview.output
    quote = json.loads(preview.stdout)
    assert quote["from_plan"] == "basic" and quote["to_plan"] == "pro" and 29_990 <= quote["amount_minor"] <= 30_000
    assert "upgrade basic -> pro:" in cli("subs", "upgrade", "user-1", "pro", "--preview").stdout
    assert json.loads(cli("subs", "show", "user-1", "--json").stdout)["pending_change"] is None, "a preview creates nothing"

    upgraded = cli("subs", "upgrade", "user-1", "pro", "--json")
    assert upgraded.exit_code == 0
    data = json.loads(upgraded.stdout)
    assert data["upgrade"]["applied"] is False and data["pending_change"] == "upgrade" and data["pending_plan"] == "pro"
    assert [i["kind"] for i in data["open_invoices"]] == ["upgrade"]

    down = cli("subs", "downgrade", "user-1", "pro")
    assert down.exit_code == 1 and "use upgrade" in down.stderr
    withdrawn = cli("subs", "withdraw", "user-1", "--json")
    assert json.loads(withdrawn.stdout)["pending_change"] is None
    assert cli("subs", "withdraw", "user-1").exit_code == 1

    cancelled = json.loads(cli("subs", "cancel", "user-1", "--reason", "too dear", "--json").stdout)
    assert (cancelled["status"], cancelled["cancel_at_period_end"], cancelled["cancel_reason"]) == ("ACTIVE", True, "too dear")
    assert "cancels      at period end (too dear)" in cli("subs", "show", "user-1").stdout
    resumed = json.loads(cli("subs", "resume", "user-1", "--json").stdout)
    assert resumed["cancel_at_period_end"] is False
    assert cli("subs", "resume", "user-1").exit_code == 1
    now = json.loads(cli("subs", "cancel", "user-1", "--now", "--json").stdout)
    assert now["status"] == "CANCELLED" and now["cancelled_at"] is not None and now["access"] is False
    assert cli("subs", "cancel", "user-1").exit_code == 1  # nothing live to cancel
