"""The shared success shape and the records as the API shows them.

``ok()`` answers ``{"data": ..., "meta": {"request_id": ...}}`` (plus any extra meta) with the
rate-limit headers of the key that asked. (Request bodies are parsed by ``routing.ApiRoute``.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import Request, Response

from bakong_console.api.problems import rate_headers
from engine.money import to_major
from engine.records import Event, Payment

__all__ = ["event_data", "iso", "ok", "payment_data"]


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def payment_data(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "status": p.status.value,
        "amount": str(to_major(p.amount_minor, p.currency)),
        "amount_minor": p.amount_minor,
        "currency": p.currency,
        "md5": p.md5,
        "khqr": p.khqr,
        "deep_link": p.deep_link,
        "reference": p.reference,
        "bill_number": p.bill_number,
        "customer_id": p.customer_id,
        "description": p.description,
        "receiving_account": p.receiving_account,
        "bakong_hash": p.bakong_hash,
        "payer_account": p.payer_account,
        "subscription_id": p.subscription_id,
        "created_at": iso(p.created_at),
        "expires_at": iso(p.expires_at),
        "paid_at": iso(p.paid_at),
        "last_checked_at": iso(p.last_checked_at),
        "check_count": p.check_count,
    }


def event_data(e: Event) -> dict[str, Any]:
    return {
        "sequence": e.sequence,
        "id": e.id,
        "type": e.type,
        "subject_type": e.subject_type,
        "subject_id": e.subject_id,
        "occurred_at": iso(e.occurred_at),
        "data": e.payload,
    }


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def ok(
    request: Request,
    data: Any,
    *,
    status: int = 200,
    meta: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = {"data": data, "meta": {"request_id": getattr(request.state, "request_id", ""), **(meta or {})}}
    out = {**rate_headers(request), **(headers or {})}
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=_default).encode(),
        status_code=status,
        media_type="application/json",
        headers=out,
    )
