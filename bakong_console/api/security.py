"""Who is calling: the client's address, the API key, its scopes and its rate limit.

``require(scope)`` is the dependency every authenticated route declares. In order it:

1. resolves the client IP (``X-Forwarded-For`` is believed only from ``api.trusted_proxies``);
2. refuses an IP that is blocked for failing authentication (429 ``client-blocked``);
3. reads the key from ``X-API-Key`` or ``Authorization: Bearer``; a missing or wrong key is a 401
   and counts toward the IP's block (each failure and each block is a ``bakong_console.api.security``
   log line with the address, the key's prefix and the reason; each block also an audit row);
4. counts the request against the key's per-minute limit (429 ``rate-limited`` with Retry-After;
   ``api.rate_limit_per_minute = 0`` turns the limit off);
5. checks the scope (403 ``forbidden``).

It returns a ``Principal`` whose ``actor`` (API key name + source IP) is written to the audit
log by every change the request makes.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from bakong_console.api.problems import ClientBlocked, UnreadableForwardedFor, problems
from engine.errors import BakongConsoleError, ConfigError, Forbidden, RateLimitExceeded, Unauthorized
from engine.records import Actor, ActorType, ApiKey
from engine.services.api_keys import key_prefix_of

#: Failed authentications and blocks: address, key prefix (never the key), reason.
security_log = logging.getLogger("bakong_console.api.security")

__all__ = [
    "REQUIRE_PROBLEMS",
    "SECURITY_SCHEMES",
    "ClientAddress",
    "Principal",
    "hop_address",
    "keyed_problems",
    "require",
    "required_scope",
]

#: The OpenAPI security schemes ``require`` accepts (the app's schema lists them, and lists either
#: as enough for every route that requires a scope). The dependency reads the two headers itself:
#: FastAPI's security classes as sub-dependencies cost every request about a tenth of its time.
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "ApiKeyHeader": {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": "An API key (`bakong-console keys create`).",
    },
    "BearerKey": {"type": "http", "scheme": "bearer", "description": "The same API key as a bearer token."},
}  # fmt: skip

#: The problem statuses ``require`` itself answers: an unreadable address forwarded by a trusted
#: proxy (400), no key or a bad one (401), the wrong scope (403), over the key's rate limit or from a
#: blocked address (429), the key store unavailable (503).
REQUIRE_PROBLEMS = (400, 401, 403, 429, 503)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def hop_address(hop: str) -> str | None:
    """The IP of one ``X-Forwarded-For`` hop written ``ip``, ``ip:port``, ``[ipv6]`` or
    ``[ipv6]:port`` (proxies write all four); None when it is none of them."""
    text = hop.strip()
    bracketed = text.startswith("[")
    if bracketed:
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has two colons or more
        host, _, port = text.partition(":")
        if not port.isdigit():
            return None
    else:
        host = text
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if bracketed and ip.version != 6:
        return None
    return str(ip)


class ClientAddress:
    """The client's IP: the peer, or the right-most untrusted ``X-Forwarded-For`` hop when the
    peer is a trusted proxy (each proxy appends the address it saw; the left part is the
    client's own claim and can be forged).

    A hop the trusted proxy wrote that is not an address (with or without a port) refuses the
    request (400): charging it to the proxy's own address would let a few bad keys from anyone
    behind the proxy block everyone behind it."""

    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        networks: list[IpNetwork] = []
        for entry in trusted_proxies:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ConfigError(f"api.trusted_proxies: {entry!r} is not an IP address or network") from None
        self.networks = tuple(networks)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def of(self, request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        if not self.networks or not self._trusted(peer):
            return peer
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            address = hop_address(hop)
            if address is None:
                raise UnreadableForwardedFor(
                    f"X-Forwarded-For holds {hop[:64]!r}, which is not an IP address (with or without a port)"
                )
            if not self._trusted(address):
                return address
        return peer


@dataclass(frozen=True)
class Principal:
    key: ApiKey
    actor: Actor
    ip: str


def _presented(request: Request) -> str | None:
    """The key from ``X-API-Key``, else from ``Authorization: Bearer <key>``."""
    headers = request.headers
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


async def _failed_authentication(ctx: Any, ip: str, presented: str | None, reason: str) -> None:
    """Log the failure (address, key prefix, reason); block the address after too many, with a
    log line and an audit row."""
    prefix = key_prefix_of(presented)
    security_log.warning("API authentication failed: address=%s key=%s reason=%s", ip, prefix, reason)
    seconds = await ctx.limiter.auth_failed(ip)
    if seconds <= 0:
        return
    ctx.metrics.ip_blocks += 1
    failures = ctx.settings.auth_failures_before_block
    security_log.warning(
        "API address blocked: address=%s key=%s reason=%s failures=%d seconds=%d", ip, prefix, reason, failures, round(seconds)
    )
    try:
        await ctx.keys.record_block(ip, key_prefix=prefix, failures=failures, seconds=seconds, reason=reason)
    except BakongConsoleError as err:  # the block holds; the client still learns its key failed
        security_log.error("API address blocked but not audited: address=%s (%s)", ip, err.kind)


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """The dependency that admits a request holding an API key with ``scope``."""

    async def authorize(request: Request) -> Principal:
        ctx = request.app.state.api
        ip = ctx.addresses.of(request)
        wait = await ctx.limiter.blocked_for(ip)
        if wait > 0:
            ctx.metrics.blocked_requests += 1
            raise ClientBlocked(
                "this address failed authentication too many times and is blocked", retry_after=wait
            )
        presented = _presented(request)
        try:
            if not presented:
                raise Unauthorized("send an API key in the X-API-Key header or as Authorization: Bearer")
            key = await ctx.keys.authenticate(presented)
        except Unauthorized as exc:
            ctx.metrics.auth_failures += 1
            await _failed_authentication(ctx, ip, presented, "no API key" if not presented else exc.message)
            raise
        limit = ctx.settings.rate_limit_per_minute
        decision = await ctx.limiter.hit(f"key:{key.id}", limit=limit) if limit > 0 else None
        request.state.rate = decision
        if decision is not None and not decision.allowed:
            ctx.metrics.rate_limited += 1
            raise RateLimitExceeded(
                f"more than {decision.limit} requests per minute for this API key", retry_after=decision.retry_after
            )
        if scope not in key.scopes:
            raise Forbidden(f"this API key lacks the {scope} scope")
        return Principal(key, Actor(ActorType.API_KEY, key.name, source_ip=ip), ip)

    authorize.required_scope = scope  # type: ignore[attr-defined]
    return authorize


def required_scope(call: Callable[..., object] | None) -> str | None:
    """The scope a dependency made by ``require`` admits, or None for any other callable."""
    return getattr(call, "required_scope", None)


def keyed_problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route that declares ``require``: the problems of the key check
    (``REQUIRE_PROBLEMS``) and the route's own ``codes``, in status order."""
    return problems(*sorted({*REQUIRE_PROBLEMS, *codes}))
