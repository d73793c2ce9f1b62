"""Customer displays in the database: pairing codes, device tokens, revocation, and the payment a
terminal's display shows.

A display row starts with a pairing code (its SHA-256, an expiry, the wrong tries so far); pairing
swaps the code for a device token (the token's lookup prefix and the SHA-256 of the whole token).
Every change is audited, and pairing and revoking append ``display.paired`` /
``display.revoked`` (an open display page follows them), in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from engine import events as ev
from engine.db import payments as payment_repo
from engine.db.journal import append_event, audit
from engine.db.models import DisplayRow, PaymentRow
from engine.db.storage import Tx
from engine.errors import Conflict, InvalidTransition, NotFound
from engine.records import Actor, Payment

__all__ = [
    "Display",
    "by_token_prefix",
    "forget_unpaired",
    "get",
    "insert_pairing",
    "latest_payment",
    "list_displays",
    "live_pairing",
    "mark_paired",
    "record_wrong_code",
    "revoke",
    "touch",
]


@dataclass(frozen=True)
class Display:
    """A display and where it stands (never its code or token)."""

    id: str
    terminal: str
    created_at: datetime
    pairing_expires_at: datetime | None
    pairing_failures: int
    paired_at: datetime | None
    last_seen_at: datetime | None
    revoked_at: datetime | None

    @property
    def paired(self) -> bool:
        return self.paired_at is not None and self.revoked_at is None

    def status(self, now: datetime) -> str:
        """paired, revoked, pairing (a code is waiting) or unpaired (the code ended unused)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.paired_at is not None:
            return "paired"
        if self.pairing_expires_at is not None and self.pairing_expires_at > now:
            return "pairing"
        return "unpaired"


def _to_record(row: DisplayRow) -> Display:
    return Display(
        id=row.id,
        terminal=row.terminal,
        created_at=row.created_at,
        pairing_expires_at=row.pairing_expires_at,
        pairing_failures=row.pairing_failures,
        paired_at=row.paired_at,
        last_seen_at=row.last_seen_at,
        revoked_at=row.revoked_at,
    )


def _view(display: Display) -> dict[str, Any]:
    return {"terminal": display.terminal, "paired": display.paired_at is not None, "revoked": display.revoked_at is not None}


async def get(tx: Tx, display_id: str) -> Display:
    row = await tx.session.get(DisplayRow, display_id)
    if row is None:
        raise NotFound(f"no display {display_id}")
    return _to_record(row)


async def list_displays(tx: Tx, *, terminal: str | None = None) -> list[Display]:
    """Every display (of ``terminal``), oldest first."""
    query = select(DisplayRow).order_by(DisplayRow.created_at, DisplayRow.id)
    if terminal is not None:
        query = query.where(DisplayRow.terminal == terminal)
    return [_to_record(row) for row in (await tx.session.scalars(query)).all()]


async def forget_unpaired(tx: Tx, terminal: str) -> int:
    """Delete the terminal's rows that never paired (an older code stops working at once)."""
    result = await tx.session.execute(
        delete(DisplayRow)
        .where(DisplayRow.terminal == terminal, DisplayRow.paired_at.is_(None))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


async def insert_pairing(tx: Tx, terminal: str, *, code_hash: str, expires_at: datetime, actor: Actor) -> Display:
    """A new display waiting for its pairing code (audited)."""
    row = DisplayRow(
        id=tx.ids.new("dsp"), terminal=terminal, pairing_code_hash=code_hash, pairing_expires_at=expires_at,
        pairing_failures=0, pairing_failed_at=None, token_prefix=None, token_hash=None, created_at=tx.now,
        paired_at=None, last_seen_at=None, revoked_at=None,
    )  # fmt: skip
    tx.session.add(row)
    await tx.session.flush()
    display = _to_record(row)
    await audit(tx, actor, "display.pairing_code", "display", display.id, after={"terminal": terminal, "expires_at": expires_at.isoformat()})
    return display


async def live_pairing(tx: Tx, terminal: str) -> tuple[Display, str, datetime | None] | None:
    """(display, stored code hash, last wrong try) of the terminal's code still waiting, if any."""
    row = (
        await tx.session.scalars(
            select(DisplayRow)
            .where(
                DisplayRow.terminal == terminal,
                DisplayRow.paired_at.is_(None),
                DisplayRow.pairing_code_hash.is_not(None),
                DisplayRow.pairing_expires_at > tx.now,
            )
            .order_by(DisplayRow.created_at.desc())
            .limit(1)
        )
    ).first()
    if row is None or row.pairing_code_hash is None:
        return None
    return _to_record(row), row.pairing_code_hash, row.pairing_failed_at


async def record_wrong_code(tx: Tx, display_id: str, *, attempts: int) -> int:
    """Count a wrong code against the display's pairing code; the code ends at ``attempts``.
    Returns the tries left."""
    row = await tx.session.get(DisplayRow, display_id)
    if row is None:
        return 0
    row.pairing_failures += 1
    row.pairing_failed_at = tx.now
    left = max(0, attempts - row.pairing_failures)
    if left == 0:
        row.pairing_code_hash = None
        row.pairing_expires_at = tx.now
    await tx.session.flush()
    return left


async def mark_paired(tx: Tx, display_id: str, *, token_prefix: str, token_hash: str, actor: Actor) -> Display:
    """Swap the display's pairing code for a device token, once (a code used twice is a Conflict)."""
    try:
        async with tx.session.begin_nested():
            result = await tx.session.execute(
                update(DisplayRow)
                .where(DisplayRow.id == display_id, DisplayRow.paired_at.is_(None), DisplayRow.pairing_code_hash.is_not(None))
                .values(
                    pairing_code_hash=None, token_prefix=token_prefix, token_hash=token_hash,
                    paired_at=tx.now, last_seen_at=tx.now,
                )  # fmt: skip
                .execution_options(synchronize_session=False)
            )
    except IntegrityError:
        raise Conflict("a display token with this prefix already exists") from None
    if result.rowcount != 1:
        raise Conflict("this pairing code was used already")
    display = await _refreshed(tx, display_id)
    await audit(tx, actor, "display.pair", "display", display_id, after=_view(display))
    await append_event(tx, ev.DISPLAY_PAIRED, "display", display_id, {"id": display_id, "terminal": display.terminal})
    return display


async def by_token_prefix(tx: Tx, prefix: str) -> tuple[Display, str] | None:
    """(display, stored token hash) of the token with this prefix; the caller compares the hash."""
    row = (await tx.session.scalars(select(DisplayRow).where(DisplayRow.token_prefix == prefix))).first()
    if row is None or row.token_hash is None:
        return None
    return _to_record(row), row.token_hash


async def touch(tx: Tx, display_id: str) -> None:
    """Record that the display was open (bookkeeping, not audited)."""
    await tx.session.execute(
        update(DisplayRow).where(DisplayRow.id == display_id).values(last_seen_at=tx.now).execution_options(synchronize_session=False)
    )


async def revoke(tx: Tx, display_id: str, *, actor: Actor) -> Display:
    """End a display's token (or its waiting pairing code); a revoked one is an InvalidTransition."""
    before = await get(tx, display_id)
    result = await tx.session.execute(
        update(DisplayRow)
        .where(DisplayRow.id == display_id, DisplayRow.revoked_at.is_(None))
        .values(revoked_at=tx.now, token_hash=None, pairing_code_hash=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise InvalidTransition(f"display {display_id} is already revoked")
    after = await _refreshed(tx, display_id)
    await audit(tx, actor, "display.revoke", "display", display_id, before=_view(before), after=_view(after))
    await append_event(tx, ev.DISPLAY_REVOKED, "display", display_id, {"id": display_id, "terminal": after.terminal})
    return after


async def _refreshed(tx: Tx, display_id: str) -> Display:
    row = await tx.session.get(DisplayRow, display_id, populate_existing=True)
    assert row is not None
    return _to_record(row)


async def latest_payment(tx: Tx, terminal: str) -> Payment | None:
    """The newest payment the terminal made (what its display is about), if any."""
    payment_id = await tx.session.scalar(
        select(PaymentRow.id)
        .where(PaymentRow.terminal == terminal)
        .order_by(PaymentRow.created_at.desc(), PaymentRow.id.desc())
        .limit(1)
    )
    return None if payment_id is None else await payment_repo.get(tx, payment_id)
