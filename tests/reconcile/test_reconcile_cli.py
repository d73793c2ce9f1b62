"""`bakong-console reconcile` and the reconciliation line of `payments show`, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.bakong.sandbox.faults import SandboxFaults
from engine.clock import PHNOM_PENH
from engine.errors import InvalidInput
from tests.support.cli import cli, upgraded
from tests.support.settings import write_config


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Path:
    path = write_config(tmp_path / "cli.toml", db_url)
    return upgraded(path)


def paid(config: Path, amount: str, reference: str) -> dict:
    code, out, _ = cli(config, "pay", "--amount", amount, "--currency", "USD", "--reference", reference, "--json")
    assert code == 0, out
    payment = json.loads(out)
    assert cli(config, "sandbox", "pay", payment["khqr"])[0] == 0
    code, out, _ = cli(config, "payments", "check", reference)
    assert code == 0 and "PAID" in out, out
    return payment


def test_reconcile_a_day_then_show_it(config: Path) -> None:
    first = paid(config, "12.50", "order-1")
    paid(config, "3.00", "order-2")
    code, out, _ = cli(config, "payments", "show", "order-1")
    assert code == 0 and "reconcile not yet checked" in out
    today = datetime.now(UTC).astimezone(PHNOM_PENH).date().isoformat()

    code, out, err = cli(config, "reconcile", "--date", today, "--summary")
    assert code == 0, err
    assert "  reconciled   0\n" in out and "  not checked  2\n" in out

    code, out, err = cli(config, "reconcile", "--date", today)
    assert code == 0, err
    assert out.startswith(f"reconciliation of {today} (Asia/Phnom_Penh)\n")
    assert "  this run     2 reconciled, 0 flagged, 1 Bakong request(s)\n" in out
    assert "  paid         2\n  reconciled   2\n  flagged      0\n  not checked  0\n" in out

    code, out, _ = cli(config, "payments", "show", "order-1")
    assert code == 0 and "reconcile reconciled " in out
    code, out, _ = cli(config, "payments", "show", first["id"], "--json")
    shown = json.loads(out)
    assert shown["reconcile_status"] == "ok" and shown["reconciled_at"].endswith("Z")

    code, out, _ = cli(config, "reconcile", "--date", today, "--json")
    data = json.loads(out)
    assert data["run"]["requests"] == 0 and (data["paid"], data["reconciled"], data["not_checked"]) == (2, 2, 0)
    assert data["flagged"] == {} and data["flagged_payments"] == []


@pytest.mark.parametrize(
    ("given", "says"),
    [("2999-01-01", "is in the future"), ("yesterday", "is not a date (YYYY-MM-DD)"), ("2026-02-30", "is not a date")],
)
def test_bad_dates_are_one_line_and_send_nothing(config: Path, given: str, says: str) -> None:
    code, out, err = cli(config, "reconcile", "--date", given)
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and says in err


def test_the_drift_fault_refuses_what_it_cannot_mean() -> None:
    with pytest.raises(InvalidInput, match="not a 64-hex"):
        SandboxFaults().updated({"hash_drift": {"abc": "amount"}})
    with pytest.raises(InvalidInput, match="must be one of"):
        SandboxFaults().updated({"hash_drift": {"a" * 64: "stolen"}})
    assert SandboxFaults().updated({"hash_drift": {"A" * 64: "Amount"}}).hash_drift == {"a" * 64: "amount"}
