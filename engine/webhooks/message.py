"""What goes on the wire: the message body and the unit the sender sends.

The body is ``{"type", "timestamp", "data"}`` serialised once per event as compact UTF-8 JSON;
those exact bytes are signed and sent on every attempt to every endpoint. The ``webhook-id`` is
the event's id, so it is the same on every retry and every replay: the receiver's dedupe key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["OutgoingMessage", "encode_body", "in_flight_window"]


@dataclass(frozen=True)
class OutgoingMessage:
    """One delivery ready to send: where, which message (the event id), the exact body, the keys."""

    delivery_id: str
    endpoint_id: str
    url: str
    msg_id: str
    body: bytes
    secrets: tuple[str, ...]
    attempt: int


def encode_body(event_type: str, occurred_at: datetime, payload: dict[str, Any]) -> bytes:
    """The message body for one event (RFC 3339 UTC timestamp of when the event happened)."""
    stamp = occurred_at.isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": stamp, "data": payload}, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def in_flight_window(timeout_seconds: float) -> timedelta:
    """How far a claim pushes a delivery ahead: longer than any attempt can take, with margin.

    A process that dies mid-flight leaves the delivery due again once this has passed.
    """
    return timedelta(seconds=max(60.0, 2 * timeout_seconds + 30.0))
