"""What the payments board holds, apart from how it is drawn: ``BoardRow`` (one payment as the
board shows it, from a ``Payment`` or from an engine event), ``BoardRows`` (the rows in display
order with an index by payment id) and ``board_pages`` (which payments the board loads, page by
page behind the engine's keyset cursor, and how many at most).

``BoardRows`` keeps a list of sort keys ascending by (created_at, id) — display order is that
list reversed, newest first — beside a dictionary by payment id, so applying an engine event is a
dictionary update, inserting a new payment is one bisection and the row at a display index is
one lookup: the table widget (``widgets/payments_table.py``) asks only for the window of rows on
screen. Nothing here imports Textual.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bakong_console.tui.time_input import parse_instant
from engine.records import Event, Payment, PaymentStatus

if TYPE_CHECKING:
    from engine.db.payments import PaymentFilter
    from engine.services.payments import PaymentService

__all__ = ["FIRST_PAGE", "MAX_ROWS", "PAGE", "BoardRow", "BoardRows", "board_pages"]

#: The board keeps at most this many payments (the newest); search reaches the rest.
MAX_ROWS = 10_000
#: The first page is small so the board fills at once; the rest follow in larger pages.
FIRST_PAGE = 100
PAGE = 1000


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return parse_instant(str(value))


@dataclass(frozen=True, slots=True)
class BoardRow:
    """What the board shows of one payment."""

    id: str
    status: PaymentStatus
    amount_minor: int
    currency: str
    reference: str | None
    md5: str
    created_at: datetime
    expires_at: datetime
    bakong_hash: str | None = None
    bill_number: str | None = None
    paid_at: datetime | None = None
    check_count: int = 0
    last_check_result: str | None = None
    #: Re-read by the board's watch: still being checked with Bakong (pending, or timed out under
    #: the late watch), or changed by an event since it was last read.
    watched: bool = False

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return (self.created_at, self.id)

    @classmethod
    def from_payment(cls, p: Payment) -> BoardRow:
        return cls(
            id=p.id,
            status=p.status,
            amount_minor=p.amount_minor,
            currency=p.currency,
            reference=p.reference,
            md5=p.md5,
            created_at=p.created_at,
            expires_at=p.expires_at,
            bakong_hash=p.bakong_hash,
            bill_number=p.bill_number,
            paid_at=p.paid_at,
            check_count=p.check_count,
            last_check_result=p.last_check_result,
            watched=p.next_check_at is not None,
        )

    @classmethod
    def from_event(cls, event: Event) -> BoardRow | None:
        """A row from a payment event's data (the webhook payload); None if it lacks the basics."""
        data = event.payload
        try:
            status = PaymentStatus(data["status"])
            return cls(
                id=event.subject_id,
                status=status,
                amount_minor=int(data["amount_minor"]),
                currency=str(data["currency"]),
                reference=data.get("reference"),
                md5=str(data.get("md5") or ""),
                created_at=_parse_time(data["created_at"]) or event.occurred_at,
                expires_at=_parse_time(data["expires_at"]) or event.occurred_at,
                bakong_hash=data.get("bakong_hash"),
                bill_number=data.get("bill_number"),
                paid_at=_parse_time(data.get("paid_at")),
                # Read from an event, not the engine: the watch re-reads it (check count) once.
                watched=True,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def updated_by(self, event: Event) -> BoardRow:
        """This row after ``event`` (its status and what the event says about the payment)."""
        data = event.payload
        try:
            status = PaymentStatus(data.get("status", self.status))
        except ValueError:
            status = self.status
        found = status in (PaymentStatus.PAID, PaymentStatus.PAID_LATE, PaymentStatus.NEEDS_REVIEW)
        return replace(
            self,
            status=status,
            bakong_hash=data.get("bakong_hash", self.bakong_hash),
            paid_at=_parse_time(data.get("paid_at")) or self.paid_at,
            reference=data.get("reference", self.reference),
            last_check_result="found" if found and status is not self.status else self.last_check_result,
            # A new status is re-read once from the engine (the board's watch) even when checks
            # are over: the event does not carry the check that found it, and nothing else would
            # bring the check count up to date.
            watched=self.watched or status is not self.status,
        )


class BoardRows:
    """The board's payments, newest first, indexed by payment id."""

    def __init__(self) -> None:
        # Ascending by (created_at, id); display index i is _keys[-1 - i] (newest first).
        self._keys: list[tuple[datetime, str]] = []
        self._rows: dict[str, BoardRow] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, payment_id: str) -> BoardRow | None:
        return self._rows.get(payment_id)

    def row_at(self, index: int) -> BoardRow | None:
        """The row at display index ``index`` (0 is the newest); None past either end."""
        if 0 <= index < len(self._keys):
            return self._rows[self._keys[-1 - index][1]]
        return None

    def rows(self) -> list[BoardRow]:
        """Every row in display order (newest first)."""
        return [self._rows[key[1]] for key in reversed(self._keys)]

    def window(self, top: int, height: int) -> list[BoardRow]:
        """The rows at display indexes ``top`` to ``top + height - 1`` (fewer at the end)."""
        return [row for i in range(top, min(top + height, len(self._keys))) if (row := self.row_at(i)) is not None]

    def index_of(self, payment_id: str) -> int | None:
        """The display index of a payment; None if it is not held."""
        row = self._rows.get(payment_id)
        if row is None:
            return None
        pos = bisect.bisect_left(self._keys, row.sort_key)
        return len(self._keys) - 1 - pos

    def clear(self) -> None:
        self._keys.clear()
        self._rows.clear()

    def replace_all(self, rows: Iterable[BoardRow]) -> None:
        """Hold exactly ``rows`` (a new filter or search)."""
        self._rows = {row.id: row for row in rows}
        self._keys = sorted(row.sort_key for row in self._rows.values())

    def add_new(self, rows: Iterable[BoardRow]) -> int:
        """Add the rows not held yet, keeping those already held as they are; returns how many."""
        fresh = [row for row in rows if row.id not in self._rows]
        if not fresh:
            return 0
        for row in fresh:
            self._rows[row.id] = row
        self._keys.extend(row.sort_key for row in fresh)
        self._keys.sort()
        return len(fresh)

    def put(self, row: BoardRow) -> BoardRow | None:
        """Insert or replace one row; returns the row it replaced (None if it is new)."""
        old = self._rows.get(row.id)
        self._rows[row.id] = row
        if old is None or old.sort_key != row.sort_key:
            if old is not None:
                del self._keys[bisect.bisect_left(self._keys, old.sort_key)]
            bisect.insort(self._keys, row.sort_key)
        return old

    def remove(self, payment_id: str) -> BoardRow | None:
        """Drop one row; returns it (None if it was not held)."""
        row = self._rows.pop(payment_id, None)
        if row is not None:
            del self._keys[bisect.bisect_left(self._keys, row.sort_key)]
        return row


async def board_pages(payments: PaymentService, flt: PaymentFilter) -> AsyncIterator[list[BoardRow]]:
    """The rows for ``flt``, newest first, a page at a time: ``FIRST_PAGE`` rows, then pages of
    ``PAGE`` behind the engine's keyset cursor until the payments or ``MAX_ROWS`` run out."""
    page, cursor = await payments.search(flt, limit=FIRST_PAGE)
    total = len(page)
    yield [BoardRow.from_payment(p) for p in page]
    while cursor and total < MAX_ROWS:
        page, cursor = await payments.search(flt, limit=min(PAGE, MAX_ROWS - total), cursor=cursor)
        total += len(page)
        yield [BoardRow.from_payment(p) for p in page]
