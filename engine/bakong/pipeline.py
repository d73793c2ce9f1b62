"""The request pipeline of the Bakong client: one metered, retried POST to one endpoint.

``RequestPipeline._send`` owns what happens to every request the client sends:

1. it is reserved in the ``RequestLedger`` before it is sent (retries too), so every process
   sharing the token shares one daily budget, and nothing at all is sent while Bakong's quota is
   latched; its outcome, status and duration are recorded against that reservation;
2. its answer becomes an ``Envelope`` or an exception from ``engine.errors`` (``parsing``); httpx's
   timeouts and transport errors become ``BakongUnreachable``, so no caller sees an httpx type;
3. it is retried with exponential backoff and full jitter on 5xx, timeouts and connection errors; a
   429 is retried after its ``Retry-After``; other 4xx are not retried;
4. on errorCode 17 (or a quota-like message) it latches the token exhausted until local midnight.

The class is the bottom layer of ``BakongClient`` (see ``client``), which sets the attributes
declared here; the token's renewal and the endpoints are the layers above it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import random
import sys
import time
from typing import Any, Literal

import httpx

from engine.bakong.budget import RequestLedger
from engine.bakong.environments import Endpoint
from engine.bakong.parsing import Envelope, interpret_response
from engine.bakong.token import NO_TOKEN_FINGERPRINT, BakongToken
from engine.clock import PHNOM_PENH, Clock, local_midnight_after
from engine.errors import (
    BakongError,
    BakongServerError,
    BakongUnreachable,
    QuotaExhausted,
    RateLimited,
)

__all__ = ["Auth", "RequestPipeline"]

log = logging.getLogger("engine.bakong")

#: How an endpoint is authenticated: the bearer token always, when there is one, or never.
Auth = Literal["required", "optional", "none"]


# httpcore asks ``import sniffio`` on every connection-pool operation (four times per request).
# When sniffio is not installed each attempt searches the whole sys.path again (~80 us apiece, a
# fifth of a request's CPU); remembering the miss makes it a dictionary lookup. Only a module that
# cannot be found is marked, so nothing that would import changes behaviour.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


class RequestPipeline:
    """Sends one request to one Bakong endpoint: budgeted, timed, mapped into ``engine.errors``, retried."""

    base_url: str
    daily_budget: int
    max_retries: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    max_retry_after_seconds: float
    _clock: Clock
    _ledger: RequestLedger
    _token: BakongToken | None
    _rng: random.Random
    _http: httpx.AsyncClient
    _urls: dict[Endpoint, httpx.URL]

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
