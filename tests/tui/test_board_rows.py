"""The board's rows without a screen: display order, the index by payment id, what a change does
to the order, and which pages the board asks the engine for."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from bakong_console.tui import board_rows
from bakong_console.tui.board_rows import BoardRow, BoardRows, board_pages
from engine.records import PaymentStatus

T0 = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


def row(n: int, status: PaymentStatus = PaymentStatus.PENDING) -> BoardRow:
    created = T0 + timedelta(seconds=n)
    return BoardRow(f"pay_{n:03d}", status, 1000 * n, "KHR", f"order-{n}", f"{n:032x}", created, created + timedelta(minutes=5))


def ids(rows: list[BoardRow]) -> list[str]:
    return [r.id for r in rows]


def test_rows_are_newest_first_and_found_by_id() -> None:
    store = BoardRows()
    store.replace_all([row(2), row(1), row(3)])
    assert ids(store.rows()) == ["pay_003", "pay_002", "pay_001"] and len(store) == 3
    assert store.row_at(0) == row(3) and store.row_at(2) == row(1)
    assert store.row_at(3) is None and store.row_at(-1) is None
    assert [store.index_of(f"pay_00{n}") for n in (3, 2, 1)] == [0, 1, 2]
    assert store.index_of("pay_999") is None
    assert ids(store.window(1, 5)) == ["pay_002", "pay_001"]


def test_a_page_adds_only_payments_not_held_yet() -> None:
    store = BoardRows()
    store.replace_all([row(1), row(2)])
    paid = replace(row(2), status=PaymentStatus.PAID)
    store.put(paid)
    # The page was read before the payment was paid: the row keeps what the event said.
    assert store.add_new([row(2), row(3), row(4)]) == 2
    assert store.get("pay_002") == paid
    assert ids(store.rows()) == ["pay_004", "pay_003", "pay_002", "pay_001"]
    assert store.add_new([row(1)]) == 0


def test_put_and_remove_keep_the_order() -> None:
    store = BoardRows()
    store.replace_all([row(1), row(3)])
    assert store.put(row(2)) is None
    assert ids(store.rows()) == ["pay_003", "pay_002", "pay_001"]
    old = store.put(replace(row(2), status=PaymentStatus.CANCELLED))
    assert old == row(2) and store.get("pay_002").status is PaymentStatus.CANCELLED and len(store) == 3
    # A row whose creation time changed moves to its new place.
    moved = replace(row(1), created_at=T0 + timedelta(seconds=10))
    assert store.put(moved) == row(1)
    assert ids(store.rows()) == ["pay_001", "pay_003", "pay_002"] and store.index_of("pay_001") == 0
    assert store.remove("pay_003") == row(3) and store.remove("pay_003") is None
    assert ids(store.rows()) == ["pay_001", "pay_002"]
    store.clear()
    assert store.rows() == [] and store.get("pay_001") is None


class _Payments:
    """Answers ``search`` from a list of payments, newest first, and notes each call's limit."""

    def __init__(self, count: int) -> None:
        self.payments = [_payment(n) for n in range(count, 0, -1)]
        self.limits: list[int] = []

    async def search(self, flt: Any, *, limit: int, cursor: str | None = None) -> tuple[list[Any], str | None]:
        self.limits.append(limit)
        start = int(cursor or 0)
        page = self.payments[start : start + limit]
        end = start + len(page)
        return page, (str(end) if end < len(self.payments) else None)


def _payment(n: int) -> Any:
    r = row(n)
    return SimpleNamespace(
        id=r.id, status=r.status, amount_minor=r.amount_minor, currency=r.currency, reference=r.reference, md5=r.md5,
        created_at=r.created_at, expires_at=r.expires_at, bakong_hash=None, bill_number=None, paid_at=None,
        check_count=0, last_check_result=None, next_check_at=r.expires_at,
    )  # fmt: skip


async def _pages(payments: _Payments) -> list[list[BoardRow]]:
    return [page async for page in board_pages(payments, None)]  # type: ignore[arg-type]


async def test_the_first_page_is_small_and_the_rest_follow_up_to_the_cap(monkeypatch: Any) -> None:
    monkeypatch.setattr(board_rows, "FIRST_PAGE", 3)
    monkeypatch.setattr(board_rows, "PAGE", 5)
    monkeypatch.setattr(board_rows, "MAX_ROWS", 12)
    payments = _Payments(20)
    pages = await _pages(payments)
    assert payments.limits == [3, 5, 4]
    assert [len(p) for p in pages] == [3, 5, 4]
    assert [r.id for p in pages for r in p] == [f"pay_{n:03d}" for n in range(20, 8, -1)]
    assert all(r.watched for p in pages for r in p)

    payments = _Payments(4)
    assert [len(p) for p in await _pages(payments)] == [3, 1] and payments.limits == [3, 5]

    payments = _Payments(0)
    assert await _pages(payments) == [[]] and payments.limits == [3]
