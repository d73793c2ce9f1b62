"""Typed, frozen results of the Bakong Open API: what callers get instead of JSON.

Amounts are ``Decimal`` in major units exactly as Bakong sent them (``amount_minor`` converts to
the engine's integer minor units); timestamps are aware UTC datetimes. Every result keeps the raw
JSON it was parsed from (``raw``, plain JSON types, ready for ``json.dumps``) for the audit log,
excluded from equality and repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from engine.errors import BakongError, InvalidInput
from engine.money import to_minor

__all__ = [
    "AccountInfo",
    "CheckOutcome",
    "CheckStatus",
    "DeepLink",
    "Diagnosis",
    "DiagnosisKind",
    "Transaction",
]


@dataclass(frozen=True)
class Transaction:
    """One Bakong transfer as a lookup returned it."""

    hash: str
    amount: Decimal
    currency: str
    from_account_id: str | None
    to_account_id: str | None
    created_at: datetime | None
    acknowledged_at: datetime | None
    description: str | None = None
    external_ref: str | None = None
    instruction_ref: str | None = None
    tracking_status: str | None = None
    receiver_bank: str | None = None
    receiver_bank_account: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def short_hash(self) -> str:
        """The first 8 characters of the hash, as printed on payers' receipts."""
        return self.hash[:8]

    @property
    def amount_minor(self) -> int | None:
        """The amount in the currency's minor units, or None when it is not exact in them
        (a sub-cent USD amount, or a currency the engine does not know)."""
        try:
            return to_minor(self.amount, self.currency)
        except InvalidInput:
            return None


class CheckStatus(StrEnum):
    """What one check of one key (an MD5 or a hash) found."""

    #: Bakong has the transfer: ``CheckOutcome.transaction`` holds it.
    PAID = "paid"
    #: A JSON "not found": not paid yet. The only answer that means that.
    NOT_FOUND = "not_found"
    #: A static KHQR: Bakong cannot track it.
    STATIC_QR = "static_qr"
    #: Bakong reports the transfer as failed.
    FAILED = "failed"
    #: No usable answer for this key (e.g. SERVICE_FAILED, a malformed item, a refusal mid-call);
    #: the payment's state must stay as it was. ``CheckOutcome.error`` says why.
    REFUSED = "refused"


@dataclass(frozen=True)
class CheckOutcome:
    """The answer for one key of a check (``key`` is the MD5 or hash that was asked about)."""

    key: str
    status: CheckStatus
    transaction: Transaction | None = None
    message: str = ""
    error: BakongError | None = field(default=None, compare=False)
    raw: Any = field(default=None, compare=False, repr=False)

    @property
    def paid(self) -> bool:
        return self.status is CheckStatus.PAID


@dataclass(frozen=True)
class AccountInfo:
    """A Bakong account that exists (a missing or malformed one raises AccountNotFound)."""

    account_id: str
    message: str
    account_status: str | None = None
    kyc_status: str | None = None
    can_receive: bool | None = None
    frozen: bool | None = None
    full_name: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def can_take_payments(self) -> bool:
        """Exists, is not frozen and does not say it cannot receive (unknown counts as yes)."""
        if self.frozen or self.can_receive is False:
            return False
        return self.account_status in (None, "ACTIVATED", "ACTIVE")


@dataclass(frozen=True)
class DeepLink:
    """A Bakong deep link for a KHQR; an opaque URL that may change domain or stop working."""

    short_link: str
    full_link: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class DiagnosisKind(StrEnum):
    FINE = "fine"
    GEO_BLOCKED = "geo-blocked"
    UNAUTHORIZED = "unauthorized"
    OUT_OF_QUOTA = "out-of-quota"
    UNREACHABLE = "unreachable"
    #: Reachable, but failing (5xx, 429, malformed or unknown answers).
    DEGRADED = "degraded"


@dataclass(frozen=True)
class Diagnosis:
    """One human sentence and a machine kind: can we talk to Bakong right now?"""

    kind: DiagnosisKind
    sentence: str
    requests_spent: int = 0

    @property
    def ok(self) -> bool:
        return self.kind is DiagnosisKind.FINE
