"""Payment use cases: initiate, check now, monitor, bulk check, cancel, mark paid, resolve, search.

Every change is one transaction through ``engine.db.payments`` (row, history, audit, event). The
faces (console, CLI, HTTP API) call these methods and nothing below them.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import IO, Any

from engine import events as ev
from engine import khqr
from engine.bakong.client import BULK_LIMIT, BakongClient
from engine.bakong.models import CheckOutcome
from engine.bus import EventBus
from engine.clock import Clock
from engine.config import Settings
from engine.db import journal
from engine.db import payments as repo
from engine.db.payments import PaymentFilter
from engine.db.storage import Storage, Tx
from engine.errors import BakongError, Conflict, IdempotencyConflict, InvalidInput, InvalidTransition, NotFound
from engine.merchant import merchant_khqr_info
from engine.money import check_currency, parse_amount, to_minor
from engine.records import Actor, Payment, PaymentStatus, StatusChange
from engine.services.schedule import Allowance, CheckSchedule
from engine.services.settlement import apply_outcome
from engine.terminals import TERMINAL_RULE, is_terminal_name

__all__ = ["CreatedPayment", "PaymentService", "MD5_PATTERN"]

log = logging.getLogger("engine.payments")

MD5_PATTERN = r"^[0-9a-fA-F]{32}$"
MAX_TIMEOUT_MINUTES = 7 * 24 * 60
_MD5_ATTEMPTS = 20
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


class PaymentService:
    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Clock,
        client: BakongClient,
        bus: EventBus,
        schedule: CheckSchedule,
        allowance: Callable[[], Allowance | None] = lambda: None,
        poke_poller: Callable[[], None] = lambda: None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.client = client
        self.bus = bus
        self.schedule = schedule
        self.allowance = allowance
        self.poke_poller = poke_poller

    # --- create -----------------------------------------------------------------------------------

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
        for skew_ms in range(_MD5_ATTEMPTS):
            # Two identical requests in one millisecond make one KHQR string, and the MD5 is the
            # only key Bakong knows: move the creation timestamp on by a millisecond instead.
            try:
                code = self._khqr_for(amount_minor, currency, expires_at, bill_number, skew_ms=skew_ms)
            except InvalidInput:
                # A replay answers with the payment it made even if no KHQR can be made now.
                existing = await self._by_key(idempotency_scope, key, fingerprint) if key else None
                if existing is not None:
                    return CreatedPayment(existing, created=False)
                raise
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
                if "md5" in exc.message and skew_ms + 1 < _MD5_ATTEMPTS:
                    continue
                raise
            break
        self.poke_poller()
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
        async with self.storage.transaction() as tx:
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

    # --- read -------------------------------------------------------------------------------------

    async def get(self, payment_id: str) -> Payment:
        async with self.storage.lookup() as tx:
            return await repo.get(tx, payment_id)

    async def get_by_md5(self, md5: str) -> Payment:
        return await repo.read_by_md5(self.storage, _md5(md5))

    async def find(self, ref: str) -> Payment:
        """A payment by id, MD5 or reference (the operator's way of naming one)."""
        ref = ref.strip()
        async with self.storage.read() as tx:
            try:
                return await repo.get(tx, ref)
            except NotFound:
                pass
            if len(ref) == 32:
                try:
                    return await repo.get_by_md5(tx, ref)
                except NotFound:
                    pass
            page, _ = await repo.search(tx, PaymentFilter(reference=ref), limit=2)
        if len(page) == 1:
            return page[0]
        if len(page) > 1:
            raise InvalidInput(f"several payments have reference {ref!r}: name one by id", field="payment")
        raise NotFound(f"no payment with id, MD5 or reference {ref!r}")

    async def history(self, payment_id: str) -> list[StatusChange]:
        async with self.storage.read() as tx:
            await repo.get(tx, payment_id)
            return await repo.history(tx, payment_id)

    async def search(self, flt: PaymentFilter, *, limit: int = 50, cursor: str | None = None) -> tuple[list[Payment], str | None]:
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        async with self.storage.read() as tx:
            return await repo.search(tx, flt, limit=limit, cursor=cursor)

    async def today_totals(self) -> dict[str, dict[str, int]]:
        from engine.clock import PHNOM_PENH

        local = self.clock.now().astimezone(PHNOM_PENH)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        async with self.storage.read() as tx:
            return await repo.today_totals(tx, midnight)

    async def export_csv(self, out: IO[str], flt: PaymentFilter) -> int:
        """Write every matching payment as CSV (newest first); returns the row count."""
        columns = [
            "id", "status", "amount", "currency", "reference", "bill_number", "customer_id", "description",
            "md5", "bakong_hash", "created_at", "expires_at", "paid_at", "check_count", "last_check_result",
        ]  # fmt: skip
        writer = csv.writer(out)
        writer.writerow(columns)
        count = 0
        cursor: str | None = None
        while True:
            page, cursor = await self.search(flt, limit=500, cursor=cursor)
            for p in page:
                writer.writerow(
                    [
                        p.id, p.status.value, str(p.amount), p.currency, p.reference or "", p.bill_number or "",
                        p.customer_id or "", p.description or "", p.md5, p.bakong_hash or "",
                        _iso(p.created_at), _iso(p.expires_at), _iso(p.paid_at), p.check_count, p.last_check_result or "",
                    ]  # fmt: skip
                )
                count += 1
            if cursor is None:
                return count

    # --- checks -----------------------------------------------------------------------------------

    async def request_check(self, payment_id: str, *, actor: Actor) -> Payment:
        """"The customer says they paid": check this payment ahead of the schedule."""
        async with self.storage.transaction() as tx:
            payment = await repo.get(tx, payment_id)
            if not await repo.request_check(tx, payment_id):
                raise InvalidTransition(f"payment {payment_id} is {payment.status.value}: it is no longer being checked")
            await journal.audit(tx, actor, "payment.request_check", "payment", payment_id)
        self.poke_poller()
        return await self.get(payment_id)

    async def check_now(self, payment_id: str, *, actor: Actor) -> tuple[Payment, CheckOutcome]:
        """One immediate Bakong check of one payment, applied; Bakong refusals raise."""
        payment = await self.get(payment_id)
        if payment.status not in (PaymentStatus.PENDING, PaymentStatus.TIMEOUT) and not self._still_payable(payment):
            raise InvalidTransition(f"payment {payment_id} is {payment.status.value}: there is nothing to check")
        outcome = (await self.client.check_payments([payment.md5]))[payment.md5]
        updated = await self._apply(payment, outcome, actor=actor)
        return updated, outcome

    async def bulk_check(self, md5s: Sequence[str], *, actor: Actor) -> dict[str, Payment | None]:
        """The current state of many payments by MD5; those still being watched are checked with
        Bakong first (batches of 50). Unknown MD5s map to None."""
        keys = list(dict.fromkeys(_md5(m) for m in md5s))
        if not keys:
            raise InvalidInput("give at least one MD5", field="md5s")
        async with self.storage.read() as tx:
            known = await repo.get_many_by_md5(tx, keys)
        watched = [
            p for p in known.values() if p.next_check_at and (p.status in (PaymentStatus.PENDING, PaymentStatus.TIMEOUT) or self._still_payable(p))
        ]
        for start in range(0, len(watched), BULK_LIMIT):
            chunk = watched[start : start + BULK_LIMIT]
            outcomes = await self.client.check_payments([p.md5 for p in chunk])
            for p in chunk:
                known[p.md5] = await self._apply(p, outcomes[p.md5], actor=actor)
        return {key: known.get(key) for key in keys}

    def _still_payable(self, payment: Payment) -> bool:
        """A cancelled payment whose KHQR can still be (or lately was) paid: it is still watched."""
        return (
            payment.status is PaymentStatus.CANCELLED
            and payment.late_watch_until is not None
            and self.clock.now() < payment.late_watch_until
        )

    async def _apply(self, payment: Payment, outcome: CheckOutcome, *, actor: Actor) -> Payment:
        async with self.storage.transaction() as tx:
            current = await repo.get(tx, payment.id)
            nxt = self.schedule.next_check_at(current, tx.now, self.allowance()) if current.next_check_at else None
            await apply_outcome(tx, current, outcome, actor=actor, next_check_at=nxt)
            return await repo.get(tx, payment.id)

    async def monitor(self, payment_id: str, *, timeout: float | None = None, priority: bool = False) -> Payment:
        """Wait until the payment leaves PENDING or ``timeout`` seconds pass; returns its state then.

        Driven by the poller's events, not a loop of requests; ``priority`` asks the poller to check
        it ahead of the schedule ("the customer says paid")."""
        limit = self.settings.payments.monitor_timeout_seconds if timeout is None else timeout
        if limit < 0:
            raise InvalidInput("timeout must not be negative", field="timeout")
        async with self.bus.subscription(lambda e: e.subject_id == payment_id) as sub:
            payment = await self.get(payment_id)
            if payment.status is not PaymentStatus.PENDING or limit == 0:
                return payment
            if priority:
                await self.request_check(payment_id, actor=Actor.daemon("monitor"))
            deadline = self.clock.monotonic() + limit
            while True:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    return await self.get(payment_id)
                getter = asyncio.ensure_future(sub.get())
                sleeper = asyncio.ensure_future(self.clock.sleep(min(left, 5.0)))
                try:
                    await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (getter, sleeper):
                        task.cancel()
                    await asyncio.gather(getter, sleeper, return_exceptions=True)
                payment = await self.get(payment_id)
                if payment.status is not PaymentStatus.PENDING:
                    return payment

    # --- operator decisions -----------------------------------------------------------------------

    async def cancel(self, payment_id: str, *, actor: Actor, reason: str = "cancelled") -> Payment:
        reason = (reason or "").strip() or "cancelled"
        async with self.storage.transaction() as tx:
            current = await repo.get(tx, payment_id)
            done = await self.cancel_in(tx, current, actor=actor, reason=reason)
            if done is None:
                raise InvalidTransition(f"payment {payment_id} is {current.status.value}: only a PENDING payment can be cancelled")
            return done

    async def cancel_in(self, tx: Tx, current: Payment, *, actor: Actor, reason: str) -> Payment | None:
        """Cancel a PENDING payment in the caller's transaction (None if it is not PENDING).

        Its KHQR can still be scanned and paid until it expires, so it stays watched until the
        expiry plus the late watch (``CheckSchedule``): a transfer found on it goes to NEEDS_REVIEW
        with an alert."""
        watch_until = current.expires_at + timedelta(minutes=self.settings.payments.late_watch_minutes)
        watched = replace(current, status=PaymentStatus.CANCELLED, late_watch_until=watch_until)
        return await repo.transition(
            tx,
            current.id,
            expected=[PaymentStatus.PENDING],
            to=PaymentStatus.CANCELLED,
            actor=actor,
            reason=reason,
            changes={
                "next_check_at": self.schedule.next_check_at(watched, tx.now, self.allowance()),
                "check_requested_at": None,
                "late_watch_until": watch_until,
            },
        )

    async def mark_paid(self, payment_id: str, *, actor: Actor, reason: str, bakong_hash: str | None = None) -> Payment:
        """An operator's decision that money arrived (e.g. seen in the bank app); audited with the reason."""
        reason = _require_reason(reason)
        changes: dict[str, Any] = {"next_check_at": None, "check_requested_at": None}
        async with self.storage.transaction() as tx:
            current = await repo.get(tx, payment_id)
            changes["paid_at"] = current.paid_at or tx.now
            if bakong_hash:
                changes["bakong_hash"] = bakong_hash.strip().lower()
            done = await repo.transition(
                tx,
                payment_id,
                expected=[PaymentStatus.PENDING, PaymentStatus.TIMEOUT],
                to=PaymentStatus.PAID,
                actor=actor,
                reason=reason,
                changes=changes,
                action="payment.mark_paid",
                event_extra={"manual": True},
            )
            if done is None:
                raise InvalidTransition(
                    f"payment {payment_id} is {current.status.value}: only PENDING or TIMEOUT can be marked paid"
                )
            return done

    async def resolve(self, payment_id: str, *, accept: bool, actor: Actor, reason: str) -> Payment:
        """Decide a NEEDS_REVIEW or PAID_LATE payment: accept (PAID) or reject (FAILED, refund outside)."""
        reason = _require_reason(reason)
        async with self.storage.transaction() as tx:
            current = await repo.get(tx, payment_id)
            changes: dict[str, Any] = {"next_check_at": None, "check_requested_at": None}
            found_hash = str((current.bakong_record or {}).get("hash") or "").lower()
            if accept and found_hash and not current.bakong_hash:
                # A payment put to review was not given its Bakong transaction (it might belong to
                # another payment): accepting it claims the transaction, once.
                other = await repo.find_by_hash(tx, found_hash)
                if other is not None and other.id != payment_id:
                    raise Conflict(
                        f"Bakong transaction {found_hash[:8]} already settled payment {other.id}: "
                        "accepting this one would count it twice; reject it instead"
                    )
                changes["bakong_hash"] = found_hash
            done = await repo.transition(
                tx,
                payment_id,
                expected=[PaymentStatus.NEEDS_REVIEW, PaymentStatus.PAID_LATE],
                to=PaymentStatus.PAID if accept else PaymentStatus.FAILED,
                actor=actor,
                reason=reason,
                changes=changes,
                action="payment.resolve",
                event_extra={"resolution": "accepted" if accept else "rejected"},
            )
            if done is None:
                raise InvalidTransition(
                    f"payment {payment_id} is {current.status.value}: only NEEDS_REVIEW or PAID_LATE can be resolved"
                )
            return done

    async def events_since(self, sequence: int, *, limit: int = 500, types: Iterable[str] | None = None) -> list[Any]:
        """The pull feed: events after ``sequence`` (all kinds, not only payments)."""
        if sequence < 0:
            raise InvalidInput("since must be a non-negative sequence number", field="since")
        wanted = list(types or [])
        unknown = [t for t in wanted if t not in ev.ALL_EVENT_TYPES]
        if unknown:
            raise InvalidInput(f"unknown event type {unknown[0]!r}", field="types")
        async with self.storage.read() as tx:
            return await journal.events_since(tx, sequence, limit=max(1, min(limit, 1000)), types=wanted or None)


def _require_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("a reason is required", field="reason")
    if len(text) > 500:
        raise InvalidInput("reason is longer than 500 characters", field="reason")
    return text


def _md5(value: str) -> str:
    text = str(value).strip().lower()
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidInput(f"{value!r} is not an MD5 (32 hexadecimal characters)", field="md5")
    return text


def _iso(dt: datetime | None) -> str:
    return dt.isoformat().replace("+00:00", "Z") if dt else ""
