"""The sandbox's pretend bank app: it reads a KHQR as a banking app would and makes the transfer.

``pay`` takes ``{"qr": …}`` or ``{"md5", "amount", "currency", "to_account"}``; options ``amount``
(a static QR needs it; on a dynamic QR it overrides the QR's), ``wrong_amount``, ``to_account`` (a
wrong receiver), ``late_seconds`` (paid that long after the QR expired; by MD5, that long from now),
``paid_at_ms``, ``from_account``, ``fail`` (a transfer that failed), ``description``. A transfer
dated in the future stays invisible to lookups until then. What a bank app refuses is InvalidInput.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.bakong.sandbox.gateway import BakongGateway
from engine.bakong.sandbox.store import SandboxTransfer, TransferStore
from engine.errors import InvalidInput
from engine.money import check_currency

__all__ = ["ACCOUNT_ID", "PAYER_ACCOUNTS", "PretendBankApp", "parse_amount", "read_khqr"]

#: Pooled Bakong accounts of payers' banks: what ``fromAccountId`` shows for bank-app payers.
PAYER_ACCOUNTS = ("abaakhppxxx@abaa", "acledakhppxxx@acld", "wingkhppxxx@wing", "cadikhppxxx@cadi")
#: A Bakong account id: ``name@bank``.
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_.\-]+@[A-Za-z0-9]+$")


class PretendBankApp(BakongGateway):
    """Payers' transfers into the sandbox's ``TransferStore``, as bank apps make them."""

    store: TransferStore

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    async def pay(
        self,
        *,
        qr: str | None = None,
        md5: str | None = None,
        amount: Decimal | int | str | None = None,
        currency: str | None = None,
        to_account: str | None = None,
        wrong_amount: bool = False,
        late_seconds: float | None = None,
        paid_at_ms: int | None = None,
        from_account: str | None = None,
        fail: bool = False,
        description: str | None = None,
    ) -> SandboxTransfer:
        """Record a transfer as a bank app would make it; InvalidInput for what a bank app refuses."""
        now_ms = self._now_ms()
        static = False
        expires_ms: int | None = None
        if qr is not None:
            read = read_khqr(qr, now_ms=now_ms, allow_expired=late_seconds is not None or paid_at_ms is not None)
            md5 = read["md5"]
            static = read["static"]
            expires_ms = read["expires_ms"]
            currency = read["currency"]
            receiver = read["to_account"]
            if amount is None:
                amount = read["amount"]
                if amount is None:
                    raise InvalidInput("a static KHQR has no amount: the payer must enter one (amount)", field="amount")
        else:
            if not md5 or not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
                raise InvalidInput("give a KHQR (qr) or its 32-hex MD5 (md5)", field="md5")
            md5 = md5.lower()
            if amount is None or not currency or not to_account:
                raise InvalidInput("paying by MD5 needs amount, currency and to_account", field="amount")
            receiver = to_account
        code = check_currency(currency or "")
        value = parse_amount(amount)
        if wrong_amount:
            unit = Decimal(100) if code == "KHR" else Decimal("0.01")
            value = value - unit if value > unit else value + unit
        if to_account:
            receiver = to_account
        if not ACCOUNT_ID.match(receiver or ""):
            raise InvalidInput(f"receiving account {receiver!r} is not a Bakong account id", field="to_account")
        if paid_at_ms is not None:
            created = int(paid_at_ms)
        elif late_seconds is not None:
            created = (expires_ms if expires_ms is not None else now_ms) + int(float(late_seconds) * 1000)
        else:
            created = now_ms
        transfer = SandboxTransfer(
            hash=f"{self.rng.getrandbits(256):064x}",
            md5=md5,
            from_account=from_account or self.rng.choice(PAYER_ACCOUNTS),
            to_account=receiver,
            currency=code,
            amount=value,
            created_ms=created,
            acknowledged_ms=created + self.rng.randint(300, 2500),
            external_ref=f"100FT{self.rng.randrange(10**11):011d}",
            instruction_ref=f"SBX{self.rng.randrange(10**13):013d}",
            description=description,
            tracking_status="FAILED_AT_ACH" if fail else "SUCCESS",
            static_qr=static,
        )
        await self.store.add(transfer)
        self.stats["payments"] += 1
        return transfer


def parse_amount(value: Any) -> Decimal:
    """A positive amount as a bank app accepts it (commas allowed); InvalidInput otherwise."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput("amount must be a number", field="amount")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise InvalidInput(f"amount {value!r} is not a number", field="amount") from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput(f"amount {value!r} must be a positive number", field="amount")
    return amount


def read_khqr(qr: str, *, now_ms: int, allow_expired: bool) -> dict[str, Any]:
    """A KHQR as a banking app reads it: receiver, currency, amount, expiry; refuses invalid ones."""
    from engine import khqr  # imported here: the bulk path never needs it

    try:
        khqr.validate(qr, now_ms=now_ms)
    except khqr.KHQRError as exc:
        if not (allow_expired and exc.code == 46):
            raise InvalidInput(f"a bank app refuses this KHQR: {exc.message}", field="qr") from None
    fields = khqr.decode(qr)
    currency = {"116": "KHR", "840": "USD"}.get(fields.get("transaction_currency") or "")
    if currency is None:
        raise InvalidInput("a bank app refuses this KHQR: unsupported currency", field="qr")
    amount_text = fields.get("transaction_amount")
    static = fields.get("point_of_initiation_method") != "12" or not amount_text
    expiration = fields.get("expiration_timestamp")
    return {
        "md5": khqr.md5(qr),
        "to_account": fields.get("bakong_account_id") or "",
        "currency": currency,
        "amount": None if static else Decimal(amount_text),
        "static": static,
        "expires_ms": int(expiration) if expiration and expiration.isdigit() else None,
    }
