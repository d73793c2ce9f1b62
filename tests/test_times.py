"""Times for people are Phnom Penh time labelled +07, written by one helper (``bakong_console.times``)
that the console and the CLI both use: the helper itself, a CLI line and a console screen, and a
guard that no face formats a time on its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from bakong_console.times import clock_time, local_time

ROOT = Path(__file__).resolve().parents[1]


def test_an_instant_is_written_in_phnom_penh_time_with_its_label() -> None:
    at = datetime(2026, 1, 15, 3, 0, 5, tzinfo=UTC)
    assert local_time(at) == "2026-01-15 10:00:05 +07"
    assert clock_time(at) == "10:00:05 +07"
    # The same instant from any zone, and a naive time taken as UTC (as the engine stores them).
    assert local_time(at.astimezone(timezone(timedelta(hours=-5)))) == "2026-01-15 10:00:05 +07"
    assert local_time(datetime(2026, 1, 15, 3, 0, 5)) == "2026-01-15 10:00:05 +07"
    # Across midnight in Phnom Penh: the local date.
    assert local_time(datetime(2026, 1, 15, 17, 30, tzinfo=UTC)) == "2026-01-16 00:30:00 +07"
    assert local_time(None) == "-" and local_time(None, missing="—") == "—"


def test_no_face_writes_a_time_without_the_shared_helper() -> None:
    """strftime, or an f-string time format, anywhere in the faces but times.py would be a time
    written without its zone label (the local date of an instant, for a day's work, is fine)."""
    formats = re.compile(r"strftime\(|%H:%M|%Y-%m")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "bakong_console").rglob("*.py"))
        if path.name != "times.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        # Reading a date a person typed (strptime) is not writing one.
        if formats.search(line) and "strptime(" not in line
    ]
    assert offenders == []
