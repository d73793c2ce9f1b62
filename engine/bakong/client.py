"""The Bakong Open API client: every endpoint, under a request budget, never leaking httpx or the token.

One ``BakongClient`` owns one ``httpx.AsyncClient`` (explicit timeouts; an injectable transport so
tests and the embedded sandbox run in-process through ``httpx.ASGITransport``). Each request:

1. is reserved in the ``RequestLedger`` before it is sent (retries too), so every process sharing
   the token shares one daily budget, and nothing at all is sent while Bakong's quota is latched;
2. is answered with a typed result or an exception from ``engine.errors`` (see ``parsing``);
3. is retried with exponential backoff and full jitter on 5xx, timeouts and connection errors; a
   429 is retried after its ``Retry-After``; other 4xx are not retried;
4. on errorCode 17 (or a quota-like message) latches the token exhausted until local midnight;
5. on errorCode 6 renews the token by e-mail once and retries once, else raises TokenExpired.

``check_payments`` is the poller's call: MD5s batched by 50 on the bulk endpoint while it works,
single checks while it answers HTML 403 (re-probed after ``bulk_retry_after_seconds``).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import logging
import random
import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import httpx

from engine import __version__
from engine.bakong.budget import BudgetUsage, RequestLedger
from engine.bakong.environments import Endpoint, base_url_for
from engine.bakong.models import (
    AccountInfo,
    CheckOutcome,
    CheckStatus,
    DeepLink,
    Diagnosis,
    DiagnosisKind,
    Transaction,
)
from engine.bakong.parsing import (
    Envelope,
    interpret_response,
)
from engine.bakong.payloads import (
    parse_account,
    parse_deeplink,
    parse_list,
    parse_token,
    parse_transaction,
)
from engine.bakong.token import NO_TOKEN_FINGERPRINT, BakongToken, TokenInfo, TokenStore
from engine.clock import PHNOM_PENH, Clock, local_midnight_after
from engine.config import BakongSettings
from engine.errors import (
    BadRequest,
    BakongAnswer,
    BakongError,
    BakongRefusal,
    BakongServerError,
    BakongUnreachable,
    BudgetExhausted,
    BulkEndpointBlocked,
    ConfigError,
    GeoBlocked,
    InvalidInput,
    QuotaExhausted,
    RateLimited,
    StaticQRNotSupported,
    TokenExpired,
    TransactionFailed,
    TransactionNotFound,
)

__all__ = ["BULK_LIMIT", "BakongClient"]

log = logging.getLogger("engine.bakong")

#: Bakong refuses bulk requests of more than 50 keys (errorCode 5).
BULK_LIMIT = 50
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_SHORT_HASH = re.compile(r"^[0-9a-f]{8}$")
#: A fixed MD5 nobody will ever pay: ``diagnose`` expects "not found" for it.
_PROBE_MD5 = hashlib.md5(b"bakong-console diagnose probe").hexdigest()

Auth = Literal["required", "optional", "none"]

# httpcore asks ``import sniffio`` on every connection-pool operation (four times per request).
# When sniffio is not installed each attempt searches the whole sys.path again (~80 us apiece, a
# fifth of a request's CPU); remembering the miss makes it a dictionary lookup. Only a module that
# cannot be found is marked, so nothing that would import changes behaviour.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


def _dedupe(keys: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for key in keys:
        seen.setdefault(key, None)
    return list(seen)


def _check_keys(keys: Iterable[str], pattern: re.Pattern[str], what: str) -> list[str]:
    out = []
    for key in keys:
        norm = str(key).strip().lower()
        if not pattern.match(norm):
            raise InvalidInput(f"{what} {key!r} is not valid", field=what.replace(" ", "_"))
        out.append(norm)
    return _dedupe(out)


class BakongClient:
    """The Bakong Open API, typed, budgeted and retried. Use as ``async with`` or call ``aclose``.

    ``ledger`` counts every request against ``daily_budget`` for the token's fingerprint;
    ``token_store`` keeps renewed and imported tokens (call ``load_token`` at start to adopt a
    stored one); ``email`` enables renewal. ``clock`` and ``rng`` drive the retry sleeps and their
    jitter. ``transport`` replaces the network (``httpx.ASGITransport(sandbox_app)`` in-process).
    """

    def __init__(
        self,
        *,
        base_url: str,
        clock: Clock,
        ledger: RequestLedger,
        token: str | None = None,
        email: str | None = None,
        token_store: TokenStore | None = None,
        daily_budget: int = 100,
        timeout_seconds: float = 15.0,
        connect_timeout_seconds: float = 5.0,
        max_retries: int = 2,
        bulk_retry_after_seconds: float = 3600.0,
        renew_days_before_expiry: int = 14,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        backoff_base_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        max_retry_after_seconds: float = 60.0,
        environment: str = "custom",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.environment = environment
        self.daily_budget = daily_budget
        self.max_retries = max_retries
        self.bulk_retry_after_seconds = bulk_retry_after_seconds
        self.renew_days_before_expiry = renew_days_before_expiry
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self._clock = clock
        self._ledger = ledger
        self._store = token_store
        self._email = (email or "").strip() or None
        self._token = BakongToken(token) if token and token.strip() else None
        self._token_generation = 0
        self._renew_lock = asyncio.Lock()
        self._rng = rng or random.Random()
        self._bulk_blocked_until: datetime | None = None
        self._hash_list_blocked_until: datetime | None = None
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds),
            transport=transport,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"bakong-console/{__version__}",
            },
            follow_redirects=False,
        )
        # Absolute URLs built once: merging a relative path costs a URL parse per request.
        self._urls = {endpoint: httpx.URL(self.base_url + endpoint.value) for endpoint in Endpoint}

    @classmethod
    def from_settings(
        cls,
        settings: BakongSettings,
        *,
        clock: Clock,
        ledger: RequestLedger,
        token_store: TokenStore | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        base_url: str | None = None,
        token: str | None = None,
    ) -> BakongClient:
        """A client configured by ``[bakong]``; ``base_url``/``token`` override it.

        For the built-in sandbox (environment "sandbox" without ``base_url``) pass
        ``transport=httpx.ASGITransport(app)`` and the sandbox's token; ``SANDBOX_URL`` is only a label.
        """
        return cls(
            base_url=base_url or base_url_for(settings),
            clock=clock,
            ledger=ledger,
            token=token if token is not None else settings.token,
            email=settings.email,
            token_store=token_store,
            daily_budget=settings.effective_daily_budget,
            timeout_seconds=settings.timeout_seconds,
            connect_timeout_seconds=settings.connect_timeout_seconds,
            max_retries=settings.max_retries,
            bulk_retry_after_seconds=settings.bulk_retry_after_seconds,
            renew_days_before_expiry=settings.renew_days_before_expiry,
            transport=transport,
            rng=rng,
            environment=settings.environment,
        )

    async def __aenter__(self) -> BakongClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"BakongClient(base_url={self.base_url!r}, environment={self.environment!r}, token={self.fingerprint!r})"

    # --- token ------------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """The current token's fingerprint (the request ledger's key); "no-token" without one."""
        return self._token.fingerprint if self._token else NO_TOKEN_FINGERPRINT

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def email(self) -> str | None:
        return self._email

    def token_info(self) -> TokenInfo | None:
        """Expiry and days left of the current token, read locally (no request)."""
        return self._token.info(self._clock.now()) if self._token else None

    async def load_token(self) -> TokenInfo | None:
        """Adopt the stored token when it outlives the configured one (a renewal made earlier)."""
        if self._store is None:
            return self.token_info()
        stored = await self._store.load()
        if stored and stored.strip():
            candidate = BakongToken(stored)
            if self._token is None or self._outlives(candidate, self._token):
                self._adopt(candidate)
        return self.token_info()

    @staticmethod
    def _outlives(candidate: BakongToken, current: BakongToken) -> bool:
        if candidate == current:
            return False
        if candidate.expires_at is None or current.expires_at is None:
            return True  # an explicit store write (import, renewal) wins over the config file
        return candidate.expires_at > current.expires_at

    def _adopt(self, token: BakongToken) -> None:
        self._token = token
        self._token_generation += 1

    async def set_token(self, token: str) -> TokenInfo:
        """Import a token by hand (kept through the token store); no request is spent."""
        new = BakongToken(token)
        if self._store is not None:
            await self._store.save(new.reveal())
        self._adopt(new)
        log.info("bakong token imported (fingerprint %s)", new.fingerprint)
        return new.info(self._clock.now())

    async def renew_token(self, email: str | None = None) -> TokenInfo:
        """Ask Bakong for a fresh token for the registered e-mail; adopts and stores it."""
        email = (email or self._email or "").strip()
        if not email:
            raise ConfigError("bakong.email is not set: it is needed to renew the Bakong token")
        if len(email) > 30:
            raise InvalidInput("Bakong accepts e-mail addresses of at most 30 characters", field="email")
        envelope = await self._send(Endpoint.RENEW_TOKEN, {"email": email}, auth="none")
        new = BakongToken(parse_token(envelope))
        if self._store is not None:
            await self._store.save(new.reveal())
        self._adopt(new)
        info = new.info(self._clock.now())
        log.warning("bakong token renewed (fingerprint %s, expires %s)", new.fingerprint, info.expires_at)
        return info

    def renewal_due(self) -> bool:
        """Whether the token expires within ``renew_days_before_expiry`` days (never for 0)."""
        info = self.token_info()
        if info is None or info.seconds_left is None or self.renew_days_before_expiry <= 0:
            return False
        return info.seconds_left <= self.renew_days_before_expiry * 86400

    async def renew_token_if_due(self) -> TokenInfo | None:
        """The renewer's scheduled call: renew when the token is close to expiry and an e-mail is set."""
        if not self._email or not self.renewal_due():
            return None
        return await self.renew_token()

    async def _ensure_token(self, auth: Auth) -> None:
        if auth != "required":
            return
        info = self.token_info()
        if info is not None and not info.expired:
            return
        if self._email:
            async with self._renew_lock:
                info = self.token_info()
                if info is None or info.expired:
                    await self.renew_token()
            return
        if info is None:
            raise TokenExpired("no Bakong token is configured (set bakong.token or BAKONG_CONSOLE_BAKONG_TOKEN)")
        raise TokenExpired(
            f"the Bakong token expired on {info.expires_at:%Y-%m-%d %H:%M} UTC and no e-mail is set to renew it"
        )

    async def _renew_after_rejection(self, generation: int) -> None:
        async with self._renew_lock:
            if self._token_generation != generation:
                return  # another task renewed while we waited
            await self.renew_token()

    # --- the request pipeline ---------------------------------------------------------------------

    async def _call(
        self,
        endpoint: Endpoint,
        payload: Any,
        *,
        auth: Auth = "required",
        renew: bool = True,
        max_retries: int | None = None,
    ) -> Envelope:
        await self._ensure_token(auth)
        generation = self._token_generation
        try:
            return await self._send(endpoint, payload, auth=auth, max_retries=max_retries)
        except TokenExpired as exc:
            if auth == "none" or not renew or not self._email:
                raise
            log.warning("bakong refused token %s on %s; renewing once", self.fingerprint, endpoint.label)
            try:
                await self._renew_after_rejection(generation)
            except BakongError as renew_exc:
                raise TokenExpired(
                    f"Bakong refused the token and renewing it failed: {renew_exc.message}",
                    error_code=exc.error_code,
                    http_status_code=exc.http_status_code,
                    endpoint=exc.endpoint,
                ) from None
        return await self._send(endpoint, payload, auth=auth, max_retries=max_retries)

    async def _send(
        self,
        endpoint: Endpoint,
        payload: Any,
        *,
        auth: Auth,
        max_retries: int | None = None,
    ) -> Envelope:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        retries = self.max_retries if max_retries is None else max_retries
        attempt = 0
        while True:
            token = self._token if auth != "none" else None
            fingerprint = token.fingerprint if token else NO_TOKEN_FINGERPRINT
            now = self._clock.now()
            reservation = await self._ledger.reserve(
                fingerprint, endpoint.label, now=now, daily_budget=self.daily_budget
            )
            headers = {"Authorization": f"Bearer {token.reveal()}"} if token is not None else None
            status: int | None = None
            started = time.perf_counter()
            error: BakongError
            try:
                response = await self._http.post(self._urls[endpoint], content=body, headers=headers)
                status = response.status_code
                retry_after = response.headers.get("retry-after") if status == 429 else None
                envelope = interpret_response(endpoint, status, response.content, retry_after=retry_after, now=now)
            except httpx.TimeoutException as exc:
                error = BakongUnreachable(
                    f"Bakong did not answer {endpoint.label} in time ({type(exc).__name__})", endpoint=endpoint.label
                )
            except httpx.HTTPError as exc:
                error = BakongUnreachable(
                    f"cannot reach Bakong at {self.base_url} ({type(exc).__name__})", endpoint=endpoint.label
                )
            except BakongError as exc:
                error = exc
            else:
                duration = (time.perf_counter() - started) * 1000
                await self._ledger.record(
                    reservation, outcome="ok", http_status=status, error_code=None, duration_ms=duration
                )
                log.debug("bakong %s -> %s in %.1f ms (token %s)", endpoint.label, status, duration, fingerprint)
                return envelope
            duration = (time.perf_counter() - started) * 1000
            await self._ledger.record(
                reservation,
                outcome=error.kind,
                http_status=status,
                error_code=error.error_code,
                duration_ms=duration,
            )
            log.debug(
                "bakong %s -> %s %s in %.1f ms (token %s)", endpoint.label, status, error.kind, duration, fingerprint
            )
            if isinstance(error, QuotaExhausted):
                until = local_midnight_after(now)
                await self._ledger.latch_exhausted(fingerprint, now=now, until=until)
                error.until = until
                log.warning(
                    "bakong quota spent for token %s; no request until %s",
                    fingerprint,
                    until.astimezone(PHNOM_PENH).isoformat(),
                )
                raise error
            delay = self._retry_delay(error, attempt) if attempt < retries else None
            if delay is None:
                raise error
            attempt += 1
            log.info("bakong %s: %s; retry %d in %.2f s", endpoint.label, error.kind, attempt, delay)
            await self._clock.sleep(delay)

    def _retry_delay(self, error: BakongError, attempt: int) -> float | None:
        if isinstance(error, RateLimited):
            if error.retry_after is None:
                return self._backoff(attempt)
            return error.retry_after if error.retry_after <= self.max_retry_after_seconds else None
        if isinstance(error, BakongUnreachable):
            return self._backoff(attempt)
        if isinstance(error, BakongServerError) and (error.http_status_code or 0) >= 500:
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform between 0 and the exponential ceiling."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * (2**attempt))
        return self._rng.uniform(0.0, ceiling)

    # --- single lookups ---------------------------------------------------------------------------

    async def _transaction(self, endpoint: Endpoint, payload: Any) -> Transaction:
        envelope = await self._call(endpoint, payload)
        return parse_transaction(envelope.data, endpoint=endpoint.label)

    async def check_transaction_by_md5(self, md5: str) -> Transaction:
        """The transfer that paid the KHQR with this MD5. Raises TransactionNotFound while unpaid."""
        (key,) = _check_keys([md5], _MD5, "md5")
        return await self._transaction(Endpoint.MD5, {"md5": key})

    async def check_transaction_by_hash(self, tx_hash: str) -> Transaction:
        """A transfer by its full 64-hex Bakong hash (audit and reconciliation)."""
        (key,) = _check_keys([tx_hash], _HASH, "hash")
        return await self._transaction(Endpoint.HASH, {"hash": key})

    async def check_transaction_by_short_hash(self, short_hash: str, amount: Decimal | int | str, currency: str) -> Transaction:
        """A transfer by the 8-character hash on a payer's receipt, with its amount and currency."""
        (key,) = _check_keys([short_hash], _SHORT_HASH, "short hash")
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
        keys = _check_keys(md5s, _MD5, "md5")
        return await self._check_list(Endpoint.MD5_LIST, keys, "md5") if keys else {}

    async def check_transactions_by_hash_list(self, hashes: Iterable[str]) -> dict[str, CheckOutcome]:
        """One outcome per full hash (50 per request), for reconciling payments already found."""
        keys = _check_keys(hashes, _HASH, "hash")
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
        keys = _check_keys(hashes, _HASH, "hash")
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
        (key,) = _check_keys([md5], _MD5, "md5")
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
        keys = _check_keys(md5s, _MD5, "md5")
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

    # --- other endpoints --------------------------------------------------------------------------

    async def generate_deeplink(
        self,
        qr: str,
        *,
        app_name: str | None = None,
        app_icon_url: str | None = None,
        callback_url: str | None = None,
    ) -> DeepLink:
        """A Bakong deep link that opens the KHQR in a banking app (source info: all three or none)."""
        if not qr or not qr.strip():
            raise InvalidInput("qr is required", field="qr")
        payload: dict[str, Any] = {"qr": qr}
        source = {"appName": app_name, "appIconUrl": app_icon_url, "appDeepLinkCallback": callback_url}
        given = [k for k, v in source.items() if v]
        if given and len(given) != len(source):
            raise InvalidInput("deep link source info needs app_name, app_icon_url and callback_url together", field="source_info")
        if given:
            payload["sourceInfo"] = source
        return parse_deeplink(await self._call(Endpoint.DEEPLINK, payload, auth="optional"))

    async def check_bakong_account(self, account_id: str) -> AccountInfo:
        """Whether a Bakong account exists and can receive; AccountNotFound when missing or malformed."""
        account = str(account_id).strip()
        if not account:
            raise InvalidInput("account id is required", field="account_id")
        return parse_account(account, await self._call(Endpoint.ACCOUNT, {"accountId": account}, auth="optional"))

    async def budget_usage(self) -> BudgetUsage:
        """Requests spent and left today for the current token (no request)."""
        return await self._ledger.usage(self.fingerprint, now=self._clock.now(), daily_budget=self.daily_budget)

    async def diagnose(self) -> Diagnosis:
        """Can we talk to Bakong right now? One sentence and a kind.

        Spends one metered request (none when the token, the budget or a quota latch already
        answers the question), never retries it and never renews on its answer; an expired token
        is renewed first when an e-mail is set, as any call would.
        """
        where = f"{self.environment} ({self.base_url})"
        info = self.token_info()
        if info is None and not self._email:
            return Diagnosis(DiagnosisKind.UNAUTHORIZED, f"No Bakong token is configured for {where}: set bakong.token.")
        if info is not None and info.expired and not self._email:
            return Diagnosis(
                DiagnosisKind.UNAUTHORIZED,
                f"The Bakong token expired on {info.expires_at:%Y-%m-%d}; renew it at api-bakong.nbc.gov.kh or set bakong.email.",
            )
        usage = await self.budget_usage()
        if usage.exhausted_until is not None:
            resume = usage.exhausted_until.astimezone(PHNOM_PENH)
            return Diagnosis(
                DiagnosisKind.OUT_OF_QUOTA,
                f"Bakong said the daily quota is spent; no request is sent until {resume:%Y-%m-%d %H:%M} Phnom Penh time.",
            )
        if usage.remaining <= 0:
            return Diagnosis(
                DiagnosisKind.OUT_OF_QUOTA,
                f"Our daily budget of {usage.budget} Bakong requests is spent; it resets at midnight Phnom Penh time.",
            )
        kind, sentence = DiagnosisKind.FINE, ""
        try:
            await self._call(Endpoint.MD5, {"md5": _PROBE_MD5}, renew=False, max_retries=0)
        except BakongAnswer:
            kind = DiagnosisKind.FINE  # a JSON answer about a transaction: the path and the token work
        except (GeoBlocked, BulkEndpointBlocked):
            kind, sentence = DiagnosisKind.GEO_BLOCKED, (
                f"Bakong at {where} answered an HTML 403: this machine's IP is outside Cambodia (or the path "
                "is closed); run from a Cambodian IP or through your own relay."
            )
        except TokenExpired as exc:
            kind, sentence = DiagnosisKind.UNAUTHORIZED, f"Bakong at {where} refused the token ({exc.message})."
        except (QuotaExhausted, BudgetExhausted) as exc:
            kind, sentence = DiagnosisKind.OUT_OF_QUOTA, f"Out of quota at {where} ({exc.message})."
        except BakongUnreachable as exc:
            kind, sentence = DiagnosisKind.UNREACHABLE, f"Bakong at {where} is unreachable ({exc.message})."
        except BakongError as exc:
            kind, sentence = DiagnosisKind.DEGRADED, f"Bakong at {where} answers but is failing ({exc.message})."
        after = await self.budget_usage()
        spent = max(0, after.used - usage.used)
        if kind is DiagnosisKind.FINE:
            info = self.token_info()
            expiry = (
                f"; the token expires in {info.days_left} days"
                if info is not None and info.days_left is not None
                else ""
            )
            sentence = (
                f"Bakong at {where} answers and accepts the token; {after.remaining} of {after.budget} "
                f"requests left today{expiry}."
            )
        return Diagnosis(kind, sentence, requests_spent=spent)


def _refuse_rest(results: dict[str, CheckOutcome], keys: Iterable[str], error: BakongRefusal) -> None:
    for key in keys:
        if key not in results:
            results[key] = CheckOutcome(key, CheckStatus.REFUSED, message=error.message, error=error)
