"""The Bakong client's transaction lookups: single, bulk, and the poller's and reconciler's calls.

Every lookup key is checked and normalised before a request is spent (MD5s, full and short hashes,
references). ``check_payments`` is the poller's call: MD5s batched by 50 on the bulk endpoint
while it works, single checks while it answers HTML 403 (re-probed after
``bulk_retry_after_seconds``). ``recheck_hashes`` is the reconciler's: hash lists while that
endpoint works, single hash checks while it is blocked (re-probed the next Bakong day), within a
request allowance. Answers already paid for are never thrown away: once some keys were answered, a
refusal of the whole call marks the rest REFUSED.

The layer of ``BakongClient`` above ``TokenRenewal`` (see ``client``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.bakong.environments import Endpoint
from engine.bakong.models import CheckOutcome, CheckStatus, Transaction
from engine.bakong.payloads import parse_list, parse_transaction
from engine.bakong.token_renewal import TokenRenewal
from engine.clock import local_midnight_after
from engine.errors import (
    BadRequest,
    BakongAnswer,
    BakongRefusal,
    BulkEndpointBlocked,
    InvalidInput,
    StaticQRNotSupported,
    TransactionFailed,
    TransactionNotFound,
)

__all__ = ["BULK_LIMIT", "TransactionLookups", "check_keys"]

log = logging.getLogger("engine.bakong")

#: Bakong refuses bulk requests of more than 50 keys (errorCode 5).
BULK_LIMIT = 50
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_SHORT_HASH = re.compile(r"^[0-9a-f]{8}$")


def _dedupe(keys: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for key in keys:
        seen.setdefault(key, None)
    return list(seen)


def check_keys(keys: Iterable[str], pattern: re.Pattern[str], what: str) -> list[str]:
    out = []
    for key in keys:
        norm = str(key).strip().lower()
        if not pattern.match(norm):
            raise InvalidInput(f"{what} {key!r} is not valid", field=what.replace(" ", "_"))
        out.append(norm)
    return _dedupe(out)



class TransactionLookups(TokenRenewal):
    """Transfers by MD5, hash, short hash or reference; MD5s and hashes in bulk, as outcomes."""

    bulk_retry_after_seconds: float
    _bulk_blocked_until: datetime | None
    _hash_list_blocked_until: datetime | None

    async def _transaction(self, endpoint: Endpoint, payload: Any) -> Transaction:
        envelope = await self._call(endpoint, payload)
        return parse_transaction(envelope.data, endpoint=endpoint.label)

    async def check_transaction_by_md5(self, md5: str) -> Transaction:
        """The transfer that paid the KHQR with this MD5. Raises TransactionNotFound while unpaid."""
        (key,) = check_keys([md5], _MD5, "md5")
        return await self._transaction(Endpoint.MD5, {"md5": key})

    async def check_transaction_by_hash(self, tx_hash: str) -> Transaction:
        """A transfer by its full 64-hex Bakong hash (audit and reconciliation)."""
        (key,) = check_keys([tx_hash], _HASH, "hash")
        return await self._transaction(Endpoint.HASH, {"hash": key})

    async def check_transaction_by_short_hash(self, short_hash: str, amount: Decimal | int | str, currency: str) -> Transaction:
        """A transfer by the 8-character hash on a payer's receipt, with its amount and currency."""
        (key,) = check_keys([short_hash], _SHORT_HASH, "short hash")
        code = str(currency).strip().upper()
        if code not in ("KHR", "USD"):
            raise InvalidInput(f"unsupported currency {currency!r}: use KHR or USD", field="currency")
        try:
            value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
        except ArithmeticError:
            raise InvalidInput(f"amount {amount!r} is not a number", field="amount") from None
        if not value.is_finite() or value <= 0:
            raise InvalidInput(f"amount {amount!r} must be a positive number", field="amount")
        # Written by hand so the amount travels as the exact decimal literal, never via a float.
        body = f'{{"hash":{json.dumps(key)},"amount":{value:f},"currency":{json.dumps(code)}}}'.encode()
        return await self._transaction(Endpoint.SHORT_HASH, body)

    async def check_transaction_by_instruction_ref(self, instruction_ref: str) -> Transaction:
        """A transfer by the payer bank's instruction reference (not a merchant's bill number)."""
        ref = self._ref(instruction_ref, "instruction_ref")
        return await self._transaction(Endpoint.INSTRUCTION_REF, {"instructionRef": ref})

    async def check_transaction_by_external_ref(self, external_ref: str) -> Transaction:
        """A transfer by the payer bank's external reference (e.g. ``100FT…``)."""
        ref = self._ref(external_ref, "external_ref")
        return await self._transaction(Endpoint.EXTERNAL_REF, {"externalRef": ref})

    @staticmethod
    def _ref(value: str, field: str) -> str:
        ref = str(value).strip()
        if not ref or len(ref) > 255:
            raise InvalidInput(f"{field} must be 1 to 255 characters", field=field)
        return ref

    # --- bulk lookups -----------------------------------------------------------------------------

    def _note_bulk_blocked(self) -> None:
        self._bulk_blocked_until = self._clock.now() + timedelta(seconds=self.bulk_retry_after_seconds)
        log.warning(
            "bakong bulk MD5 endpoint answers HTML 403; single checks until %s", self._bulk_blocked_until.isoformat()
        )

    @property
    def bulk_blocked_until(self) -> datetime | None:
        """Until when ``check_payments`` uses single checks because the bulk endpoint was blocked."""
        if self._bulk_blocked_until is not None and self._bulk_blocked_until <= self._clock.now():
            return None
        return self._bulk_blocked_until

    @property
    def hash_list_blocked_until(self) -> datetime | None:
        """Until when reconciliation checks hashes singly because the hash list endpoint was blocked."""
        if self._hash_list_blocked_until is not None and self._hash_list_blocked_until <= self._clock.now():
            self._hash_list_blocked_until = None
        return self._hash_list_blocked_until

    async def _list_chunk(
        self, endpoint: Endpoint, chunk: Sequence[str], key_field: str, *, max_retries: int | None = None
    ) -> dict[str, CheckOutcome]:
        try:
            envelope = await self._call(endpoint, list(chunk), max_retries=max_retries)
        except BulkEndpointBlocked:
            if endpoint is Endpoint.HASH_LIST:
                # reconciliation runs once a night: probing again before the next day spends its share
                now = self._clock.now()
                self._hash_list_blocked_until = max(
                    now + timedelta(seconds=self.bulk_retry_after_seconds), local_midnight_after(now)
                )
                log.warning("bakong hash list endpoint answers HTML 403; single hash checks until %s",
                            self._hash_list_blocked_until.isoformat())
            else:
                self._note_bulk_blocked()
            raise
        if endpoint is Endpoint.MD5_LIST:
            self._bulk_blocked_until = None
        return parse_list(envelope.data, chunk, key_field=key_field, endpoint=endpoint)

    async def _check_list(self, endpoint: Endpoint, keys: list[str], key_field: str) -> dict[str, CheckOutcome]:
        results: dict[str, CheckOutcome] = {}
        for start in range(0, len(keys), BULK_LIMIT):
            chunk = keys[start : start + BULK_LIMIT]
            try:
                results.update(await self._list_chunk(endpoint, chunk, key_field))
            except BakongRefusal as exc:
                if not results:
                    raise
                _refuse_rest(results, keys[start:], exc)
                break
        return results

    async def check_transactions_by_md5_list(self, md5s: Iterable[str]) -> dict[str, CheckOutcome]:
        """One outcome per MD5 from the bulk endpoint (50 per request; longer lists are split).

        A refusal before any answer raises it (BulkEndpointBlocked for an HTML 403); a refusal after
        some chunks were answered marks the rest REFUSED with that error.
        """
        keys = check_keys(md5s, _MD5, "md5")
        return await self._check_list(Endpoint.MD5_LIST, keys, "md5") if keys else {}

    async def check_transactions_by_hash_list(self, hashes: Iterable[str]) -> dict[str, CheckOutcome]:
        """One outcome per full hash (50 per request), for reconciling payments already found."""
        keys = check_keys(hashes, _HASH, "hash")
        return await self._check_list(Endpoint.HASH_LIST, keys, "hash") if keys else {}

    async def _check_hash_once(self, tx_hash: str) -> CheckOutcome:
        try:
            tx = parse_transaction((await self._call(Endpoint.HASH, {"hash": tx_hash}, max_retries=0)).data,
                                   endpoint=Endpoint.HASH.label)
        except TransactionNotFound as exc:
            return CheckOutcome(tx_hash, CheckStatus.NOT_FOUND, message=exc.message)
        except TransactionFailed as exc:
            return CheckOutcome(tx_hash, CheckStatus.FAILED, message=exc.message)
        except (BakongAnswer, BadRequest) as exc:
            return CheckOutcome(tx_hash, CheckStatus.REFUSED, message=exc.message, error=exc)
        return CheckOutcome(tx_hash, CheckStatus.PAID, transaction=tx, raw=tx.raw)

    async def recheck_hashes(
        self, hashes: Iterable[str], *, max_requests: int
    ) -> tuple[dict[str, CheckOutcome], int, BakongRefusal | None]:
        """Re-check transfers already found, by their full hashes (reconciliation), spending at
        most ``max_requests`` requests: 50 hashes per hash list request while that endpoint
        works, one per single hash check while it answers HTML 403 (re-probed the next Bakong
        day, and not before ``bulk_retry_after_seconds``). No request is retried: a hash left unanswered waits for
        the next pass. Returns the outcomes learned, the requests sent and the refusal that
        stopped the pass early (quota, budget, token, unreachable...), if one did."""
        keys = check_keys(hashes, _HASH, "hash")
        results: dict[str, CheckOutcome] = {}
        spent = 0
        pending = keys
        while pending and spent < max_requests:
            try:
                if self.hash_list_blocked_until is None and len(pending) > 1:
                    chunk = pending[:BULK_LIMIT]
                    spent += 1
                    try:
                        results.update(await self._list_chunk(Endpoint.HASH_LIST, chunk, "hash", max_retries=0))
                    except BulkEndpointBlocked:
                        continue
                    pending = pending[len(chunk) :]
                else:
                    spent += 1
                    results[pending[0]] = await self._check_hash_once(pending[0])
                    pending = pending[1:]
            except BakongRefusal as exc:
                return results, spent, exc
        return results, spent, None

    # --- the poller's call ------------------------------------------------------------------------

    async def check_payment(self, md5: str) -> CheckOutcome:
        """One MD5 by a single request, as an outcome (call-wide refusals raise)."""
        (key,) = check_keys([md5], _MD5, "md5")
        try:
            tx = await self.check_transaction_by_md5(key)
        except TransactionNotFound as exc:
            return CheckOutcome(key, CheckStatus.NOT_FOUND, message=exc.message)
        except StaticQRNotSupported as exc:
            return CheckOutcome(key, CheckStatus.STATIC_QR, message=exc.message)
        except TransactionFailed as exc:
            return CheckOutcome(key, CheckStatus.FAILED, message=exc.message)
        except BakongAnswer as exc:  # pragma: no cover - the three above are the only answers
            return CheckOutcome(key, CheckStatus.REFUSED, message=exc.message, error=exc)
        except BadRequest as exc:
            return CheckOutcome(key, CheckStatus.REFUSED, message=exc.message, error=exc)
        return CheckOutcome(key, CheckStatus.PAID, transaction=tx, raw=tx.raw)

    async def check_payments(self, md5s: Iterable[str]) -> dict[str, CheckOutcome]:
        """The outcome of every MD5: PAID (with its Transaction), NOT_FOUND, STATIC_QR, FAILED or REFUSED.

        Batches of 50 go to the bulk endpoint while it works; while it answers HTML 403 (for
        ``bulk_retry_after_seconds`` after each such answer) each MD5 is checked singly. A refusal
        of the whole call (quota, budget, token, geo-block, 429, 5xx, unreachable) raises it when
        nothing was learned yet; once some MD5s were answered, the rest come back REFUSED with that
        error, so answers already paid for are never thrown away.
        """
        keys = check_keys(md5s, _MD5, "md5")
        results: dict[str, CheckOutcome] = {}
        pending = keys
        bulk_refused = False  # one HTML 403 per call is enough, whatever the retry window
        while pending:
            try:
                if not bulk_refused and self.bulk_blocked_until is None:
                    chunk = pending[:BULK_LIMIT]
                    try:
                        results.update(await self._list_chunk(Endpoint.MD5_LIST, chunk, "md5"))
                    except BulkEndpointBlocked:
                        bulk_refused = True
                        continue
                    pending = pending[len(chunk) :]
                else:
                    results[pending[0]] = await self.check_payment(pending[0])
                    pending = pending[1:]
            except BakongRefusal as exc:
                if not results:
                    raise
                _refuse_rest(results, pending, exc)
                break
        return {key: results[key] for key in keys}


def _refuse_rest(results: dict[str, CheckOutcome], keys: Iterable[str], error: BakongRefusal) -> None:
    for key in keys:
        if key not in results:
            results[key] = CheckOutcome(key, CheckStatus.REFUSED, message=error.message, error=error)
