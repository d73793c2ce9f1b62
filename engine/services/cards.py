"""KHQR cards of payments: ``engine.khqr.card`` applied to a payment, kept for reuse, written whole.

A payment's KHQR and expiry never change, and the renderer gives the same bytes for the same
input, so a card is a pure function of (KHQR, expiry, format, size): the last ``CACHE_SIZE``
cards are kept in memory with their ETag (the SHA-256 of the bytes), which lets the API answer
``If-None-Match`` without drawing again and a page reload cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from engine.config import Settings, data_dir
from engine.errors import InvalidInput
from engine.khqr.card import render_card_svg
from engine.khqr.card_png import render_card_png
from engine.records import Payment

__all__ = ["CARD_MEDIA_TYPES", "Card", "card_format_of", "cards_directory", "payment_card", "render_payment_card", "save_payment_card", "write_file_whole"]

#: Card format -> media type.
CARD_MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
CACHE_SIZE = 64


@dataclass(frozen=True)
class Card:
    data: bytes
    media_type: str
    #: A strong ETag (quoted): the same bytes always give the same tag.
    etag: str


@lru_cache(maxsize=CACHE_SIZE)
def _card(khqr: str, expires_at: datetime, fmt: str, size: int | None) -> Card:
    if fmt == "png":
        data = render_card_png(khqr, expires_at=expires_at, size=size)
    else:
        data = render_card_svg(khqr, expires_at=expires_at, size=size).encode("utf-8")
    return Card(data, CARD_MEDIA_TYPES[fmt], '"' + hashlib.sha256(data).hexdigest()[:32] + '"')


def payment_card(payment: Payment, fmt: str, *, size: int | None = None) -> Card:
    """The payment's card as ``fmt`` ("png" or "svg"); ``InvalidInput`` for a bad format or size."""
    if fmt not in CARD_MEDIA_TYPES:
        raise InvalidInput(f"a card is png or svg, not {fmt!r}", field="format")
    return _card(payment.khqr, payment.expires_at, fmt, size)


async def render_payment_card(payment: Payment, fmt: str, *, size: int | None = None) -> Card:
    """``payment_card`` off the event loop: drawing a PNG takes tens of milliseconds of CPU."""
    return await asyncio.to_thread(payment_card, payment, fmt, size=size)


def card_format_of(path: Path) -> str:
    """"png" or "svg" from the file's extension; ``InvalidInput`` otherwise."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in CARD_MEDIA_TYPES:
        raise InvalidInput(f"cannot tell the card format from {path.name!r}: name the file .png or .svg", field="output")
    return fmt


def write_file_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file beside it, then a rename."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        # O_EXCL: never write through a file or link that is already there; 0o666 lets the umask decide.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # nothing was created when the folder is not there
            temporary.unlink()
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}", field="output") from None


def cards_directory(settings: Settings) -> Path:
    """Where the console saves cards: ``[console] cards_dir``, else ``cards/`` in the data directory."""
    configured = settings.console.cards_dir.strip()
    return Path(configured).expanduser() if configured else data_dir() / "cards"


def save_payment_card(payment: Payment, directory: Path, *, size: int | None = None) -> Path:
    """Write the payment's PNG card as ``directory/<payment id>.png`` (the folder is made if
    missing) and return its path."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot make {directory}: {exc.strerror or exc}", field="cards_dir") from None
    path = directory / f"{payment.id}.png"
    write_file_whole(path, payment_card(payment, "png", size=size).data)
    return path
