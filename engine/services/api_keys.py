"""API keys: create (the plaintext is returned once), list, revoke, and authenticate a request.

A key reads ``bk_<prefix>_<secret>``: the 8-character prefix names the key in lists and finds its
row; the secret is 32 random bytes from the OS. Only ``sha256:<hex>`` of the whole key is stored
(the key carries 256 bits of entropy, so a fast hash is enough: there is nothing to brute-force),
and the presented key's hash is compared with ``hmac.compare_digest``.

``authenticate`` keeps a verified key in memory for ``AUTH_CACHE_SECONDS`` so a busy API does not
read the key row on every request: a key revoked by another process stops working within that
time (at once in this process).

A failed authentication is named in logs by ``key_prefix_of`` (the public prefix, never the
secret); ``record_block`` writes the audit row of an address blocked for failing too often.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable

from engine.clock import Clock
from engine.crypto import NO_DIGEST, secret_digest
from engine.db import api_keys as repo
from engine.db import journal
from engine.db.storage import Storage
from engine.errors import Conflict, InvalidInput, Unauthorized
from engine.records import Actor, ActorType, ApiKey

__all__ = ["AUTH_CACHE_SECONDS", "ApiKeyService", "SCOPES", "key_prefix_of"]

#: Every scope a key can hold, and what it allows.
SCOPES: dict[str, str] = {
    "payments:write": "create and cancel payments",
    "payments:read": "payment status, history, monitor and bulk check",
    "subscriptions:write": "create, upgrade, downgrade and cancel subscriptions",
    "subscriptions:read": "subscription status",
    "events:read": "the events feed",
}

AUTH_CACHE_SECONDS = 5.0
#: ``last_used_at`` is written at most this often per key and process.
TOUCH_INTERVAL_SECONDS = 60.0

_KEY_RE = re.compile(r"^bk_([0-9a-z]{8})_([A-Za-z0-9_-]{43})$")
_PRESENTED_PREFIX_RE = re.compile(r"^bk_([0-9a-z]{8})_")
_PREFIX_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def key_prefix_of(presented: str | None) -> str:
    """What a log or audit row may say about a presented key: ``bk_<prefix>``, never the secret."""
    if not presented:
        return "(none)"
    match = _PRESENTED_PREFIX_RE.match(presented)
    return f"bk_{match.group(1)}" if match else "(not a key)"


def _new_key() -> tuple[str, str]:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    return prefix, f"bk_{prefix}_{secrets.token_urlsafe(32)}"


def _clean_name(name: str) -> str:
    text = str(name or "").strip()
    if not text:
        raise InvalidInput("an API key needs a name", field="name")
    if len(text) > 128:
        raise InvalidInput("an API key name is at most 128 characters", field="name")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidInput("an API key name must not contain control characters", field="name")
    return text


def normalize_scopes(scopes: Iterable[str] | None) -> tuple[str, ...]:
    """Known scopes, deduplicated, in the canonical order; None means every scope."""
    if scopes is None:
        return tuple(SCOPES)
    wanted = [s.strip() for s in scopes if s and s.strip()]
    if not wanted:
        raise InvalidInput("give at least one scope", field="scopes")
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise InvalidInput(f"unknown scope {unknown[0]!r}: use {', '.join(SCOPES)}", field="scopes")
    return tuple(s for s in SCOPES if s in wanted)


class ApiKeyService:
    def __init__(self, storage: Storage, *, clock: Clock) -> None:
        self.storage = storage
        self.clock = clock
        self._verified: dict[str, tuple[ApiKey, str, float]] = {}
        self._touched: dict[str, float] = {}

    async def create(self, name: str, scopes: Iterable[str] | None = None, *, actor: Actor) -> tuple[ApiKey, str]:
        """A new key and its plaintext (shown once, never stored). ``scopes=None``: every scope."""
        name = _clean_name(name)
        wanted = normalize_scopes(scopes)
        for _ in range(3):  # a prefix collision (40 random bits) is retried with a fresh key
            prefix, plaintext = _new_key()
            try:
                async with self.storage.transaction() as tx:
                    key = await repo.insert(
                        tx, actor=actor, name=name, prefix=prefix, secret_hash=secret_digest(plaintext), scopes=wanted
                    )
                return key, plaintext
            except Conflict as exc:
                if "prefix" not in str(exc):
                    raise
        raise Conflict("could not allocate a unique API key prefix")  # pragma: no cover

    async def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        async with self.storage.read() as tx:
            return await repo.list_keys(tx, include_revoked=include_revoked)

    async def get(self, key_id: str) -> ApiKey:
        async with self.storage.read() as tx:
            return await repo.get(tx, key_id)

    async def revoke(self, key_id: str, *, actor: Actor, reason: str | None = None) -> ApiKey:
        async with self.storage.transaction() as tx:
            key = await repo.revoke(tx, key_id, actor=actor, reason=reason)
        self._verified.pop(key.prefix, None)
        return key

    async def authenticate(self, presented: str) -> ApiKey:
        """The active key this plaintext belongs to; anything else is ``Unauthorized``."""
        match = _KEY_RE.match(presented or "")
        if match is None:
            raise Unauthorized("invalid API key")
        prefix = match.group(1)
        digest = secret_digest(presented)
        now = self.clock.monotonic()
        cached = self._verified.get(prefix)
        if cached is not None and now - cached[2] < AUTH_CACHE_SECONDS:
            key, stored = cached[0], cached[1]
        else:
            async with self.storage.read() as tx:
                found = await repo.get_by_prefix(tx, prefix)
            if found is None:
                hmac.compare_digest(digest, NO_DIGEST)
                raise Unauthorized("invalid API key")
            key, stored = found
            if key.active:
                self._verified[prefix] = (key, stored, now)
            else:
                self._verified.pop(prefix, None)
        if not hmac.compare_digest(digest, stored) or not key.active:
            raise Unauthorized("invalid API key")
        await self._touch(key, now)
        return key

    async def record_block(self, ip: str, *, key_prefix: str, failures: int, seconds: float, reason: str) -> None:
        """The audit row of ``ip`` blocked for ``seconds`` after ``failures`` failed authentications."""
        async with self.storage.transaction(events=False) as tx:
            await journal.audit(
                tx,
                Actor(ActorType.SYSTEM, "api", source_ip=ip),
                "api.client_blocked",
                "client_ip",
                ip,
                after={"key_prefix": key_prefix, "failures": failures, "block_seconds": round(seconds)},
                reason=reason,
            )

    async def _touch(self, key: ApiKey, now: float) -> None:
        last = self._touched.get(key.id)
        if last is not None and now - last < TOUCH_INTERVAL_SECONDS:
            return
        self._touched[key.id] = now
        async with self.storage.transaction() as tx:
            await repo.touch(tx, key.id, tx.now)
