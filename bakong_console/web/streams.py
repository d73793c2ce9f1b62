"""What the pages' event streams share: how long they wait between re-reads and how they wait
for the engine's next event (or the server closing)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["PING_SECONDS", "RESYNC_SECONDS", "next_change"]

#: While nothing happens, an event stream re-reads its state this often (a grace period's end,
#: a bus that missed a beat) besides the keep-alive comments every ``PING_SECONDS``.
RESYNC_SECONDS = 30.0
PING_SECONDS = 15


async def next_change(changes: Any, closing: asyncio.Event, *, timeout: float = RESYNC_SECONDS) -> bool:
    """Wait for the subscription's next event (or ``timeout``); False when the server closes."""
    getter = asyncio.ensure_future(changes.get())
    closer = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({getter, closer}, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (getter, closer):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(getter, closer, return_exceptions=True)
    while changes.get_nowait() is not None:  # one re-read covers every change so far
        pass
    return not closing.is_set()
