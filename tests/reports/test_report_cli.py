"""`bakong-console report day|range` on both databases: exact figures in columns, JSON and CSV, and
one line on stderr with a non-zero exit for each kind of bad input."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from bakong_console.cli.main import app
from tests.reports.conftest import EXPECTED_TERMINALS

runner = CliRunner()


def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_day_as_json_csv_and_columns(seeded: dict[str, str]) -> None:
    code, out, err = cli(seeded, "report", "day", "--date", "2026-01-15", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["totals"] == [
        {"currency": "KHR", "payments": 3, "paid_count": 2, "paid_minor": 10_000},
        {"currency": "USD", "payments": 2, "paid_count": 1, "paid_minor": 1_250},
    ]
    assert data["start"] == "2026-01-14T17:00:00Z" and data["median_seconds_to_paid"] == 60.0
    assert data["open_count"] == 2 and data["bakong_requests"]["used"] == 2

    code, out, _ = cli(seeded, "report", "day", "--date", "2026-01-15", "--csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["section", "key", "currency", "payments", "paid_count", "paid_minor"]
    assert ["total", "2026-01-15", "KHR", "3", "2", "10000"] in rows
    assert ["terminal", "back", "KHR", "2", "1", "6000"] in rows

    code, out, _ = cli(seeded, "report", "day", "--date", "2026-01-15")
    assert code == 0
    assert "  KHR          3         2             10,000 KHR" in out
    assert "  USD          2         1              12.50 USD" in out
    assert "Median time from created to paid: 1m00s" in out
    assert "reconciled 0, flagged 0, not yet checked 4" in out


def test_range_by_terminal_as_json(seeded: dict[str, str]) -> None:
    code, out, err = cli(seeded, "report", "range", "--from", "2026-01-15", "--to", "2026-01-15", "--by", "terminal", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [(r["key"], r["currency"], r["payments"], r["paid_count"], r["paid_minor"]) for r in rows] == EXPECTED_TERMINALS


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["day", "--date", "2999-01-01"], "error: date 2999-01-01 is in the future"),
        (["day", "--date", "15/01/2026"], "error: --date '15/01/2026' is not a date (YYYY-MM-DD)"),
        (["range", "--from", "2024-01-01", "--to", "2025-01-01"], "error: the range covers 367 days; a report covers at most 366"),
        (["range", "--from", "2026-01-15", "--to", "2026-01-15", "--by", "week"], "error: cannot group by 'week'"),
        (["day", "--date", "2026-01-15", "--terminal", "nowhere"], "error: unknown terminal 'nowhere' (known: back, front)"),
        (["day", "--json", "--csv"], "error: --json and --csv cannot be used together"),
    ],
)
def test_bad_input_is_one_line_on_stderr(seeded: dict[str, str], args: list[str], message: str) -> None:
    code, out, err = cli(seeded, "report", *args)
    assert code != 0 and out == ""
    assert err.startswith(message) and err.count("\n") == 1
