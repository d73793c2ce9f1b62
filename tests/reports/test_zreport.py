"""The Z report's receipt text: every line fits 42 columns, and nothing is cut that a reader needs."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bakong_console.zreport import WIDTH, receipt
from engine.report_records import Adjustment, CurrencyTotal, DayClose, OpenItem, StatusTotal

AT = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
LONG_ID = "pay_01JH2Z3Y4X5W6V7U8T9S0RQPON"  # a real id's length: 32 characters


def _close(open_items: tuple[OpenItem, ...], statuses: tuple[StatusTotal, ...], adjustments: tuple[Adjustment, ...] = ()) -> DayClose:
    return DayClose(
        day=date(2026, 1, 15), closed_at=AT, closed_by="cashier:dara", forced=True, reason="checked by phone",
        totals=(CurrencyTotal("USD", 3, 1, 1250),), terminals=(), statuses=statuses, open_items=open_items,
        adjustments=adjustments,
    )  # fmt: skip


def test_open_payments_show_their_whole_id_status_and_amount_within_42_columns() -> None:
    items = (
        OpenItem(LONG_ID, "NEEDS_REVIEW", "USD", 1250, AT),
        OpenItem(LONG_ID[:-1] + "Z", "PAID_LATE", "KHR", 40_000, AT),
    )
    statuses = (StatusTotal("NEEDS_REVIEW", "USD", 1, 1250), StatusTotal("PAID_LATE", "KHR", 1, 40_000))
    lines = receipt(_close(items, statuses)).splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    at = lines.index("OPEN AT CLOSE (2)")
    assert lines[at + 1] == LONG_ID
    assert lines[at + 2].startswith("  NEEDS_REVIEW") and lines[at + 2].endswith("12.50 USD")
    assert lines[at + 4].startswith("  PAID_LATE") and lines[at + 4].endswith("40,000 KHR")


def test_a_close_that_froze_only_the_oldest_open_payments_says_how_many_waited() -> None:
    items = tuple(OpenItem(f"pay_{n:028d}", "PENDING", "USD", 100, AT) for n in range(50))
    statuses = (StatusTotal("PENDING", "USD", 70, 7000), StatusTotal("PAID", "USD", 5, 500))
    text = receipt(_close(items, statuses))
    assert "OPEN AT CLOSE (oldest 50 of 70)" in text.splitlines()


def test_adjustments_show_the_payment_and_its_day() -> None:
    adjustment = Adjustment(
        payment_id=LONG_ID, currency="USD", amount_minor=2500, from_status="NEEDS_REVIEW", to_status="PAID", at=AT,
        actor="owner", payment_day=date(2026, 1, 14), landed_on=date(2026, 1, 15),
    )  # fmt: skip
    lines = receipt(_close((), (), (adjustment,))).splitlines()
    at = lines.index("ADJUSTMENTS TO CLOSED DAYS")
    assert lines[at + 1] == LONG_ID
    assert lines[at + 2].startswith("  of 2026-01-14") and lines[at + 2].endswith("25.00 USD")
    assert max(len(line) for line in lines) <= WIDTH
