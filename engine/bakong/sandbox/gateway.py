"""What stands before every Bakong path of the sandbox: injected faults, the token, the daily quota.

``BakongGateway._serve`` serves one request to one Bakong endpoint in Bakong's order: the latency
fault, then HTML 403s (geo-block, a blocked bulk or hash list path), hangs ending in 504, 5xx,
429 with ``Retry-After``, the maintenance page, malformed bodies; then the token (401 with
errorCode 6) and the daily quota (errorCode 17, per token and Bakong day); a forced errorCode;
and only then the JSON body, handed to the endpoint's handler.

The gateway also keeps the one token the sandbox accepts (``token``, ``renew_token``). Latency and
hangs are real time (``asyncio.sleep``): they model the network. Everything Bakong would time-stamp
or meter per day uses the injected clock.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from starlette.responses import Response

from engine.bakong.budget import bakong_day
from engine.bakong.environments import Endpoint
from engine.bakong.sandbox.faults import SandboxFaults
from engine.bakong.sandbox.tokens import issue_token
from engine.bakong.sandbox.wire import JSON, MAINTENANCE_PAGE, MALFORMED_BODIES, MSG_UNAUTHORIZED, envelope, html
from engine.bakong.token import read_jwt_claims
from engine.clock import Clock

__all__ = ["Auth", "BakongGateway", "Handler"]

#: How a Bakong path is authenticated: the bearer token always, when one is sent, or never.
Auth = Literal["required", "optional", "none"]
#: A Bakong endpoint's handler: the request's JSON body in, the answer out.
Handler = Callable[[Any], Awaitable[Response]]


class BakongGateway:
    """The faults, the accepted token and the daily quota, applied to each request before its handler."""

    clock: Clock
    rng: random.Random
    secret: bytes
    faults: SandboxFaults
    stats: Counter[str]
    on_token_renewed: Callable[[str], Awaitable[None]] | None
    _quota_used: dict[tuple[str, date], int]
    _token: str
    _authorization: str
    _token_exp: float | None

    @property
    def token(self) -> str:
        """The one token the sandbox accepts right now."""
        return self._token

    def _set_token(self, token: str) -> None:
        self._token = token
        self._authorization = f"Bearer {token}"
        exp = (read_jwt_claims(token) or {}).get("exp")
        self._token_exp = float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None

    async def renew_token(self) -> str:
        """Issue a fresh 90-day token; the previous one stops working."""
        self._set_token(issue_token(self.secret, now=self.clock.now(), rng=self.rng))
        if self.on_token_renewed is not None:
            await self.on_token_renewed(self._token)
        return self._token

    def _authorized(self, header: str | None) -> bool:
        # constant time: the sandbox shows a relay or a test how a bearer token is checked
        if header is None or not hmac.compare_digest(header.encode(), self._authorization.encode()):
            return False
        return self._token_exp is None or self.clock.now().timestamp() < self._token_exp

    async def _serve(
        self,
        endpoint: Endpoint,
        handler: Handler,
        auth: Auth,
        header: str | None,
        read_body: Callable[[], Awaitable[bytes]],
    ) -> Response:
        faults = self.faults
        stats = self.stats
        stats[endpoint.label] += 1
        stats["total"] += 1
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if (
            faults.geo_blocked
            or (faults.bulk_blocked and endpoint is Endpoint.MD5_LIST)
            or (faults.hash_list_blocked and endpoint is Endpoint.HASH_LIST)
        ):
            return html(403)
        rng = self.rng
        if faults.timeout_rate and rng.random() < faults.timeout_rate:
            await asyncio.sleep(faults.hang_seconds)
            return html(504)
        if faults.error_rate and rng.random() < faults.error_rate:
            return html(faults.server_error_status)
        if faults.rate_limit_rate and rng.random() < faults.rate_limit_rate:
            return html(429, headers={"retry-after": str(faults.retry_after_seconds)})
        if faults.html_rate and rng.random() < faults.html_rate:
            return html(200, MAINTENANCE_PAGE)
        if faults.malformed_rate and rng.random() < faults.malformed_rate:
            return Response(MALFORMED_BODIES[faults.malformed_kind], media_type=JSON)
        if auth != "none":
            if header is not None or auth == "required":
                if faults.token_expired or not self._authorized(header):
                    return envelope(6, MSG_UNAUTHORIZED, status=401)
                if faults.daily_quota:
                    key = (self._token, bakong_day(self.clock.now()))
                    used = self._quota_used.get(key, 0) + 1
                    self._quota_used[key] = used
                    if used > faults.daily_quota:
                        return envelope(
                            17, f"Daily request limit of {faults.daily_quota} exceeded. Please try again tomorrow."
                        )
        if faults.force_error_code is not None:
            return envelope(faults.force_error_code, faults.force_error_message)
        body = await read_body()
        try:
            payload = json.loads(body, parse_float=Decimal) if body.strip() else None
        except (ValueError, UnicodeDecodeError):
            return envelope(5, "Request body must be JSON.", status=400)
        return await handler(payload)
