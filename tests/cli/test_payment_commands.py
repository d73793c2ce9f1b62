"""`bakong-console pay`, `payments …` and `bakong …` against the built-in sandbox, on both databases."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import cli, upgraded
from tests.support.settings import write_config


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Path:
    path = write_config(
        tmp_path / "cli.toml",
        db_url,
        """[payments]
dense_interval_seconds = 0.3
tick_seconds = 0.2
[daemon]
lease_seconds = 2.0
""",
    )
    return upgraded(path)


def test_pay_then_sandbox_pay_then_check(config: Path) -> None:
    code, out, _ = cli(config, "pay", "--amount", "12.50", "--currency", "USD", "--reference", "order-1", "--json")
    assert code == 0
    payment = json.loads(out)
    assert payment["status"] == "PENDING" and payment["amount"] == "12.50" and len(payment["md5"]) == 32
    code, out, _ = cli(config, "pay", "--amount", "12.50", "--currency", "USD", "--reference", "order-1", "--json")
    assert json.loads(out)["id"] == payment["id"], "the same reference is the same payment"
    code, _, err = cli(config, "pay", "--amount", "13", "--currency", "USD", "--reference", "order-1")
    assert code != 0 and err.count("\n") == 1 and "idempotency key" in err

    code, out, _ = cli(config, "sandbox", "pay", payment["khqr"])
    assert code == 0 and out.startswith("paid 12.50 USD")
    code, out, _ = cli(config, "payments", "check", "order-1")
    assert code == 0 and f"{payment['id']} PAID" in out
    code, out, _ = cli(config, "payments", "show", payment["md5"], "--json")
    shown = json.loads(out)
    assert shown["status"] == "PAID" and shown["bakong_hash"] and [h["to"] for h in shown["history"]] == ["PENDING", "PAID"]


def test_pay_wait_that_runs_out_says_it_timed_out(config: Path) -> None:
    code, out, err = cli(config, "pay", "--amount", "5000", "--currency", "KHR", "--json", "--wait", "--wait-seconds", "0.5")
    assert code == 1
    payment_id = json.loads(out[: out.rindex("}") + 1])["id"]
    assert out.splitlines()[-1] == f"{payment_id} PENDING (timed out after 0.5 s of waiting)"
    assert err.splitlines()[-1].startswith(f"error: timed out after 0.5 s waiting: payment {payment_id} is still PENDING, not PAID")


def test_pay_prints_a_scannable_qr_and_the_md5(config: Path) -> None:
    code, out, _ = cli(config, "pay", "--amount", "5000", "--currency", "KHR")
    assert code == 0
    assert "▀" in out or "█" in out
    assert "md5" in out and "5,000 KHR" in out and "SANDBOX" in out


def test_bad_input_is_one_line_and_nothing_is_written(config: Path) -> None:
    for args in (["pay", "--amount", "0", "--currency", "USD"], ["pay", "--amount", "1.001", "--currency", "USD"],
                 ["pay", "--amount", "1", "--currency", "EUR"]):  # fmt: skip
        code, out, err = cli(config, *args)
        assert code != 0 and len(err.strip().splitlines()) == 1 and err.startswith("error:")
    code, out, _ = cli(config, "payments", "list")
    assert code == 0 and out == ""
    code, _, err = cli(config, "payments", "list", "--status", "LOST")
    assert code != 0 and "LOST" in err
    code, _, err = cli(config, "payments", "show", "nope")
    assert code != 0 and "nope" in err


def test_cancel_resolve_mark_paid_and_export(config: Path, tmp_path: Path) -> None:
    ids = []
    for amount in ("1.00", "2.00", "3.00"):
        code, out, _ = cli(config, "pay", "--amount", amount, "--currency", "USD", "--json")
        ids.append(json.loads(out)["id"])
    code, out, _ = cli(config, "payments", "cancel", ids[0], "--reason", "customer left")
    assert code == 0 and out.strip() == f"{ids[0]} CANCELLED"
    code, _, err = cli(config, "payments", "cancel", ids[0])
    assert code != 0 and "only a PENDING" in err
    code, out, _ = cli(config, "payments", "mark-paid", ids[1], "--reason", "seen in the bank app")
    assert code == 0 and "PAID" in out
    code, _, err = cli(config, "payments", "resolve", ids[2], "--reason", "x")
    assert code != 0 and "NEEDS_REVIEW" in err

    code, _, _ = cli(config, "payments", "export", "--output", str(tmp_path / "out.csv"))
    rows = list(csv.DictReader((tmp_path / "out.csv").open(encoding="utf-8")))
    assert code == 0 and {r["id"]: r["status"] for r in rows} == {ids[0]: "CANCELLED", ids[1]: "PAID", ids[2]: "PENDING"}
    code, out, _ = cli(config, "payments", "export", "--status", "PAID")
    assert [r["id"] for r in csv.DictReader(io.StringIO(out))] == [ids[1]]
    code, out, _ = cli(config, "payments", "list", "--status", "PENDING,PAID")
    assert code == 0 and len(out.strip().splitlines()) == 2


def test_bakong_token_and_diagnose_and_check(config: Path) -> None:
    code, out, _ = cli(config, "bakong", "token", "--json")
    data = json.loads(out)
    assert code == 0 and data["environment"] == "sandbox" and data["days_left"] > 80 and data["daily_budget"] == 100000
    code, out, _ = cli(config, "bakong", "diagnose")
    assert code == 0 and out.startswith("fine:")
    code, out, _ = cli(config, "bakong", "check", "a" * 32)
    assert code == 0 and "not_found" in out
    code, out, _ = cli(config, "bakong", "token", "--json")
    assert json.loads(out)["requests_used_today"] == 2
    code, _, err = cli(config, "bakong", "check", "xyz")
    assert code != 0 and "md5" in err.lower()


def _run(config: Path, *args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bakong_console", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_pay_wait_exits_zero_only_when_paid(config: Path) -> None:
    waiting = _run(config, "pay", "--amount", "7.00", "--currency", "USD", "--reference", "w1", "--wait", "--wait-seconds", "60")
    try:
        deadline = time.monotonic() + 30
        khqr = None
        while khqr is None and time.monotonic() < deadline:
            code, out, _ = cli(config, "payments", "show", "w1", "--json")
            khqr = json.loads(out)["khqr"] if code == 0 else None
            time.sleep(0.2)
        assert khqr, "pay --wait created no payment"
        assert cli(config, "sandbox", "pay", khqr)[0] == 0
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert out.strip().splitlines()[-1].endswith("PAID")
    finally:
        if waiting.poll() is None:
            waiting.kill()
    unpaid = _run(config, "pay", "--amount", "8.00", "--currency", "USD", "--wait", "--wait-seconds", "1")
    out, err = unpaid.communicate(timeout=60)
    assert unpaid.returncode == 1 and "not PAID" in err


def test_times_are_labelled_phnom_penh_time(config: Path) -> None:
    import re

    code, out, _ = cli(config, "pay", "--amount", "4000", "--currency", "KHR", "--reference", "table-5", "--json")
    assert code == 0
    payment = json.loads(out)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+07"
    code, out, _ = cli(config, "payments", "show", payment["id"])
    assert code == 0 and re.search(rf"^expires   {stamp}$", out, re.M), out
    assert re.search(rf"^  {stamp}  ", out, re.M), out  # the status history
    code, out, _ = cli(config, "payments", "list")
    assert code == 0 and re.search(rf"\t{stamp}\t", out), out
