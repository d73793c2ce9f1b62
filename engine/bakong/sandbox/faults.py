"""The faults the sandbox can inject, set from config (``[sandbox]``) or ``POST /sandbox/faults``.

Rates are shares of requests (0.0 to 1.0) drawn from the sandbox's injected ``random.Random``, so a
seeded sandbox fails the same requests every run.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.config import SandboxSettings
from engine.errors import InvalidInput

__all__ = ["DRIFT_KINDS", "LIST_ITEM_LAYOUTS", "MALFORMED_KINDS", "SandboxFaults"]

LIST_ITEM_LAYOUTS = ("data", "transaction", "inline")
MALFORMED_KINDS = ("truncated", "empty", "not-envelope")
#: How Bakong's record of a transfer, looked up by its hash, can differ from what was paid.
DRIFT_KINDS = ("not_found", "amount", "currency", "account", "failed")
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SandboxFaults:
    """What the sandbox does wrong on purpose. The defaults are a healthy Bakong."""

    #: Added to every /v1 answer.
    latency_ms: float = 0.0
    #: Share of /v1 requests answered with ``server_error_status`` and an nginx HTML page.
    error_rate: float = 0.0
    server_error_status: int = 503
    #: Share of /v1 requests answered HTTP 429 with ``Retry-After: retry_after_seconds``.
    rate_limit_rate: float = 0.0
    retry_after_seconds: int = 1
    #: Share of /v1 requests that hang ``hang_seconds`` and then answer 504 (clients time out first).
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    #: Share of /v1 requests answered 200 with an HTML page (a captive portal, a maintenance page).
    html_rate: float = 0.0
    #: Share of /v1 requests answered 200 with a body that is not the envelope (``malformed_kind``).
    malformed_rate: float = 0.0
    malformed_kind: str = "truncated"
    #: Every authenticated request answers 401 with errorCode 6.
    token_expired: bool = False
    #: Requests per token per Bakong day; once spent, errorCode 17 (0: unlimited).
    daily_quota: int = 0
    #: check_transaction_by_md5_list answers a bare nginx 403 (as production does).
    bulk_blocked: bool = False
    #: check_transaction_by_hash_list answers a bare nginx 403 too (single hash lookups still work).
    hash_list_blocked: bool = False
    #: Transfers whose record, looked up by hash (single or list), differs from what was paid:
    #: {hash: kind}, kind one of DRIFT_KINDS ("not_found": Bakong no longer knows it; "amount":
    #: one minor unit more; "currency": the other currency; "account": another receiving account;
    #: "failed": the transfer failed after all).
    #: MD5 lookups are not affected: the drift is what reconciliation must catch afterwards.
    hash_drift: Mapping[str, str] = field(default_factory=dict)
    #: Every /v1 path answers a bare nginx 403 (a non-Cambodian IP).
    geo_blocked: bool = False
    #: MD5 lookups answer errorCode 2 / STATIC_QR whatever was paid.
    static_qr: bool = False
    #: Amounts as JSON strings ("1.25") instead of numbers.
    amounts_as_strings: bool = False
    #: createdDateMs / acknowledgedDateMs as floats (1605774370608.0).
    float_timestamps: bool = False
    #: Where a bulk item carries its transaction: under "data", under "transaction", or inline.
    list_item_layout: str = "data"
    #: Share of bulk items answered SERVICE_FAILED.
    item_service_failed_rate: float = 0.0
    #: Every /v1 request answers 200 with this errorCode (e.g. 9, 99) and ``force_error_message``.
    force_error_code: int | None = None
    force_error_message: str = "Sandbox forced error"

    @classmethod
    def from_settings(cls, settings: SandboxSettings) -> SandboxFaults:
        return cls(
            latency_ms=float(settings.latency_ms),
            error_rate=settings.error_rate,
            daily_quota=settings.daily_quota,
            bulk_blocked=settings.bulk_blocked,
            geo_blocked=settings.geo_blocked,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, changes: dict[str, Any]) -> SandboxFaults:
        """A copy with ``changes`` applied; unknown keys and wrong types are refused."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in fields:
                raise InvalidInput(f"unknown sandbox fault {key!r}", field=key)
            default = getattr(SandboxFaults(), key)
            values[key] = _coerce(key, value, default)
        faults = dataclasses.replace(self, **values)
        faults.check()
        return faults

    def check(self) -> None:
        for name in ("error_rate", "rate_limit_rate", "timeout_rate", "html_rate", "malformed_rate", "item_service_failed_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise InvalidInput(f"{name} must be between 0 and 1, got {rate}", field=name)
        if self.list_item_layout not in LIST_ITEM_LAYOUTS:
            raise InvalidInput(f"list_item_layout must be one of {', '.join(LIST_ITEM_LAYOUTS)}", field="list_item_layout")
        if self.malformed_kind not in MALFORMED_KINDS:
            raise InvalidInput(f"malformed_kind must be one of {', '.join(MALFORMED_KINDS)}", field="malformed_kind")
        for tx_hash, kind in self.hash_drift.items():
            if not _HASH.match(tx_hash):
                raise InvalidInput(f"hash_drift: {tx_hash!r} is not a 64-hex transaction hash", field="hash_drift")
            if kind not in DRIFT_KINDS:
                raise InvalidInput(f"hash_drift: {kind!r} must be one of {', '.join(DRIFT_KINDS)}", field="hash_drift")
        if not 500 <= self.server_error_status <= 599:
            raise InvalidInput("server_error_status must be a 5xx status", field="server_error_status")
        for name in ("latency_ms", "hang_seconds", "retry_after_seconds", "daily_quota"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must not be negative", field=name)


def _coerce(key: str, value: Any, default: Any) -> Any:
    def bad() -> InvalidInput:
        return InvalidInput(f"sandbox fault {key}: wrong type {type(value).__name__}", field=key)

    if key == "hash_drift":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise bad()
        return {k.strip().lower(): v.strip().lower() for k, v in value.items()}
    if key == "force_error_code":
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad() from None
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise bad()
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad() from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad() from None
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise bad()
    raise bad()  # pragma: no cover
