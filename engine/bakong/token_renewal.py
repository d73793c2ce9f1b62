"""The Bakong client's token: adopt a stored or imported one, renew it, and call with it.

``TokenRenewal`` keeps the client's current ``BakongToken``: ``load_token`` adopts a stored token
that outlives the configured one, ``set_token`` imports one by hand, ``renew_token`` asks Bakong
for a fresh one by e-mail (and keeps it in the ``TokenStore``). ``_call`` is the authenticated
call every endpoint goes through: an expired token is renewed before the request when an e-mail is
set; on errorCode 6 the token is renewed once (one renewal for all tasks that saw it refused) and
the request retried once, else ``TokenExpired`` is raised.

The layer above ``RequestPipeline`` and below the endpoints (``lookups``, ``client``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from engine.bakong.environments import Endpoint
from engine.bakong.parsing import Envelope
from engine.bakong.payloads import parse_token
from engine.bakong.pipeline import Auth, RequestPipeline
from engine.bakong.token import NO_TOKEN_FINGERPRINT, BakongToken, TokenInfo, TokenStore
from engine.errors import BakongError, ConfigError, InvalidInput, TokenExpired

__all__ = ["TokenRenewal"]

log = logging.getLogger("engine.bakong")


class TokenRenewal(RequestPipeline):
    """The current token, its import and renewal, and the authenticated call that renews once."""

    renew_days_before_expiry: int
    _store: TokenStore | None
    _email: str | None
    _token_generation: int
    _renew_lock: asyncio.Lock

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
