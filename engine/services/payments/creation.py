"""Creating a payment: validating the request, making its dynamic KHQR, the one transaction that
writes it (``engine.db.payments.insert``), idempotent replays, and the optional deep link.

This is the create hot path: ``PaymentCreation`` is a part of ``PaymentService`` (a base class,
not a collaborator), so a call costs what it did when the service was one module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from engine import khqr
from engine.bakong.client import BakongClient
from engine.clock import Clock
from engine.config import Settings
from engine.db import payments as repo
from engine.db.storage import Storage, Tx
from engine.errors import BakongError, Conflict, IdempotencyConflict, InvalidInput
from engine.merchant import merchant_khqr_info
from engine.money import check_currency, parse_amount, to_minor
from engine.records import Actor, Payment
from engine.services.schedule import Allowance, CheckSchedule
from engine.terminals import TERMINAL_RULE, is_terminal_name

__all__ = ["CreatedPayment", "IssuedCodes", "MAX_TIMEOUT_MINUTES", "PaymentCreation"]

log = logging.getLogger("engine.payments")

MAX_TIMEOUT_MINUTES = 7 * 24 * 60
_MD5_ATTEMPTS = 20
#: KHQR timestamps tried, a millisecond apart, before a create gives up on codes this process
#: issued in the same millisecond (each try is a KHQR made, no database write).
_CLAIM_ATTEMPTS = 1_000
_TEXT_LIMITS = {"reference": 100, "bill_number": 25, "customer_id": 100, "description": 500, "idempotency_key": 200}


@dataclass(frozen=True)
class CreatedPayment:
    """The result of ``initiate``: the payment, and whether this call created it."""

    payment: Payment
    created: bool


def _clean(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if len(text) > _TEXT_LIMITS[name]:
        raise InvalidInput(f"{name} is longer than {_TEXT_LIMITS[name]} characters", field=name)
    if any(ord(c) < 32 for c in text):
        raise InvalidInput(f"{name} contains control characters", field=name)
    return text


class IssuedCodes:
    """The KHQR MD5s this process handed out in the last few seconds.

    Two creates of the same amount in the same millisecond make the same KHQR string, and the MD5
    is unique. Told apart here, the second moves its timestamp on before it writes anything,
    instead of failing its INSERT (which, in a group commit, would roll the group back). The
    database's unique MD5 still decides between processes."""

    #: How long an MD5 stays claimed: far past the millisecond (plus skew) its timestamp names.
    KEEP_SECONDS = 5.0

    def __init__(self) -> None:
        self._claimed: set[str] = set()
        self._order: deque[tuple[float, str]] = deque()

    def claim(self, md5: str) -> bool:
        """True if ``md5`` was not handed out lately; it is then claimed."""
        now = time.monotonic()
        order = self._order
        while order and now - order[0][0] > self.KEEP_SECONDS:
            self._claimed.discard(order.popleft()[1])
        if md5 in self._claimed:
            return False
        self._claimed.add(md5)
        order.append((now, md5))
        return True


class PaymentCreation:
    """``initiate`` and what it needs: the payment service's create side."""

    storage: Storage
    settings: Settings
    clock: Clock
    client: BakongClient
    schedule: CheckSchedule
    allowance: Callable[[], Allowance | None]
    #: wakes the poller (and the expirer): for a new payment, only if they sleep past its first check
    poke_poller: Callable[[Payment | None], None]
    issued: IssuedCodes

    def _amount_minor(self, amount: Decimal | int | str, currency: str) -> int:
        if isinstance(amount, str):
            return parse_amount(amount, currency)
        if isinstance(amount, float):
            raise InvalidInput("amount must be exact (a decimal string), not a float", field="amount")
        minor = to_minor(amount, currency)
        if minor <= 0:
            raise InvalidInput("amount must be greater than zero", field="amount")
        return minor

    def _khqr_for(
        self, amount_minor: int, currency: str, expires_at: datetime, bill_number: str | None, *, skew_ms: int = 0
    ) -> khqr.KHQRResult:
        info = merchant_khqr_info(
            self.settings.merchant,
            currency=currency,
            amount=Decimal(amount_minor) / (100 if currency == "USD" else 1),
            expiration_timestamp=int(expires_at.timestamp() * 1000),
            bill_number=bill_number,
        )
        try:
            return khqr.generate(info, now_ms=int(self.clock.now().timestamp() * 1000) + skew_ms)
        except khqr.KHQRError as exc:
            raise InvalidInput(f"cannot make a KHQR: {exc}", field="khqr") from None

    async def initiate(
        self,
        amount: Decimal | int | str,
        currency: str,
        *,
        actor: Actor,
        reference: str | None = None,
        idempotency_key: str | None = None,
        idempotency_scope: str = "",
        bill_number: str | None = None,
        customer_id: str | None = None,
        description: str | None = None,
        timeout_minutes: int | None = None,
        deep_link: bool = False,
        api_key_id: str | None = None,
        subscription_id: str | None = None,
        invoice_id: str | None = None,
        terminal: str | None = None,
    ) -> CreatedPayment:
        """A new PENDING payment with its dynamic KHQR; the same idempotency key returns the same payment.

        A repeated key with a different request is an ``IdempotencyConflict``. ``terminal`` names
        the console counter that makes it (see ``engine.terminals``).
        """
        if terminal is not None and not is_terminal_name(terminal):
            raise InvalidInput(f"terminal: {TERMINAL_RULE}", field="terminal")
        currency = check_currency(currency)
        amount_minor = self._amount_minor(amount, currency)
        reference = _clean("reference", reference)
        key = _clean("idempotency_key", idempotency_key)
        bill_number = _clean("bill_number", bill_number)
        customer_id = _clean("customer_id", customer_id)
        description = _clean("description", description)
        timeout = self.settings.payments.default_timeout_minutes if timeout_minutes is None else int(timeout_minutes)
        if not 1 <= timeout <= MAX_TIMEOUT_MINUTES:
            raise InvalidInput(f"timeout must be between 1 and {MAX_TIMEOUT_MINUTES} minutes", field="timeout_minutes")
        fingerprint = None
        if key:
            fingerprint = hashlib.sha256(
                json.dumps(
                    [amount_minor, currency, reference, bill_number, customer_id, description, timeout_minutes],
                    separators=(",", ":"),
                ).encode()
            ).hexdigest()
            # Insert first: a replay is told by the key's unique constraint (below), which costs
            # the replay a refused INSERT instead of costing every new payment a read.
        now = self.clock.now()
        expires_at = now + timedelta(minutes=timeout)
        skew_ms = 0
        for attempt in range(_MD5_ATTEMPTS):
            # Two identical requests in one millisecond make one KHQR string, and the MD5 is the
            # only key Bakong knows: move the creation timestamp on by a millisecond instead.
            try:
                code = self._khqr_for(amount_minor, currency, expires_at, bill_number, skew_ms=skew_ms)
                for _ in range(_CLAIM_ATTEMPTS):
                    if self.issued.claim(code.md5):
                        break
                    skew_ms += 1
                    code = self._khqr_for(amount_minor, currency, expires_at, bill_number, skew_ms=skew_ms)
            except InvalidInput:
                # A replay answers with the payment it made even if no KHQR can be made now.
                existing = await self._by_key(idempotency_scope, key, fingerprint) if key else None
                if existing is not None:
                    return CreatedPayment(existing, created=False)
                raise
            skew_ms += 1  # if the database refuses this one, the next try starts a millisecond on
            try:
                payment = await self._insert(
                    code, actor=actor, amount_minor=amount_minor, currency=currency, expires_at=expires_at,
                    idempotency_scope=idempotency_scope, key=key, fingerprint=fingerprint, reference=reference,
                    bill_number=bill_number, description=description, customer_id=customer_id, api_key_id=api_key_id,
                    subscription_id=subscription_id, invoice_id=invoice_id, terminal=terminal,
                )  # fmt: skip
            except Conflict as exc:
                if key:
                    existing = await self._by_key(idempotency_scope, key, fingerprint)
                    if existing is not None:
                        return CreatedPayment(existing, created=False)
                if "md5" in exc.message and attempt + 1 < _MD5_ATTEMPTS:
                    continue
                raise
            break
        self.poke_poller(payment)
        if deep_link:
            payment = await self._attach_deep_link(payment)
        return CreatedPayment(payment, created=True)

    async def _insert(
        self,
        code: khqr.KHQRResult,
        *,
        actor: Actor,
        amount_minor: int,
        currency: str,
        expires_at: datetime,
        idempotency_scope: str,
        key: str | None,
        fingerprint: str | None,
        reference: str | None,
        bill_number: str | None,
        description: str | None,
        customer_id: str | None,
        api_key_id: str | None,
        subscription_id: str | None,
        invoice_id: str | None,
        terminal: str | None,
    ) -> Payment:
        # Concurrent creates share one transaction and one commit (group commit); a create the
        # database refuses (a replayed key, a duplicate KHQR) is run again alone and fails alone.
        async def write(tx: Tx) -> Payment:
            return await repo.insert(
                tx,
                actor=actor,
                amount_minor=amount_minor,
                currency=currency,
                khqr=code.qr,
                md5=code.md5,
                receiving_account=self.settings.merchant.bakong_account_id,
                expires_at=expires_at,
                next_check_at=self.schedule.first_check_at(tx.now, expires_at, self.allowance()),
                idempotency_scope=idempotency_scope,
                idempotency_key=key,
                request_fingerprint=fingerprint,
                reference=reference,
                bill_number=bill_number,
                description=description,
                customer_id=customer_id,
                api_key_id=api_key_id,
                subscription_id=subscription_id,
                invoice_id=invoice_id,
                terminal=terminal,
            )

        return await self.storage.grouped(write)

    async def _by_key(self, scope: str, key: str, fingerprint: str | None) -> Payment | None:
        async with self.storage.lookup() as tx:
            found = await repo.get_by_idempotency_key(tx, scope, key)
        if found is None:
            return None
        payment, stored = found
        if stored != fingerprint:
            raise IdempotencyConflict(f"idempotency key {key!r} was already used for a different payment request")
        return payment

    async def _attach_deep_link(self, payment: Payment) -> Payment:
        """Ask Bakong for a deep link; the payment stands without one if Bakong refuses."""
        try:
            link = await self.client.generate_deeplink(payment.khqr)
        except BakongError as exc:
            log.warning("payment %s: no deep link: %s", payment.id, exc)
            return payment
        async with self.storage.transaction() as tx:
            await repo.set_deep_link(tx, payment.id, link.short_link)
            return await repo.get(tx, payment.id)
