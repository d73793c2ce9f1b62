"""The Bakong Open API client: every endpoint, under a request budget, never leaking httpx or the token.

One ``BakongClient`` owns one ``httpx.AsyncClient`` (explicit timeouts; an injectable transport so
tests and the embedded sandbox run in-process through ``httpx.ASGITransport``). It is built in
layers, each in its own module:

- ``pipeline``: every request reserved in the ``RequestLedger`` before it is sent, answered with a
  typed result or an ``engine.errors`` exception, retried with backoff and jitter, and the quota
  latched until local midnight on errorCode 17;
- ``token_renewal``: the current token, imported or renewed by e-mail, and renewed once on
  errorCode 6;
- ``lookups``: transactions by MD5, hash, short hash and reference, and in bulk (the poller's
  ``check_payments``, the reconciler's ``recheck_hashes``);
- this module: the client's configuration, the remaining endpoints (deep links, accounts) and
  ``diagnose``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import Any

import httpx

from engine import __version__
from engine.bakong.budget import BudgetUsage, RequestLedger
from engine.bakong.environments import Endpoint, base_url_for
from engine.bakong.lookups import TransactionLookups
from engine.bakong.models import AccountInfo, DeepLink, Diagnosis, DiagnosisKind
from engine.bakong.payloads import parse_account, parse_deeplink
from engine.bakong.token import BakongToken, TokenStore
from engine.clock import PHNOM_PENH, Clock
from engine.config import BakongSettings
from engine.errors import (
    BakongAnswer,
    BakongError,
    BakongUnreachable,
    BudgetExhausted,
    BulkEndpointBlocked,
    GeoBlocked,
    InvalidInput,
    QuotaExhausted,
    TokenExpired,
)

__all__ = ["BakongClient"]

#: A fixed MD5 nobody will ever pay: ``diagnose`` expects "not found" for it.
_PROBE_MD5 = hashlib.md5(b"bakong-console diagnose probe").hexdigest()


class BakongClient(TransactionLookups):
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
        self._bulk_blocked_until = None
        self._hash_list_blocked_until = None
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
