"""A small client for a running sandbox's control paths (``/sandbox/...``): pay, faults, stats.

Used by ``bakong-console sandbox pay|faults|stats`` and by benchmarks, so the faces never touch
httpx. Failures are ``engine.errors`` types: an unreachable sandbox is BakongUnreachable, a refused
payment InvalidInput.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from engine.errors import BakongUnreachable, InvalidInput, MalformedResponse

__all__ = ["DEFAULT_SANDBOX_URL", "SandboxControl"]

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8787"


class SandboxControl:
    """Talks to a sandbox's control paths at ``url`` (or in-process through ``transport``)."""

    def __init__(self, url: str = DEFAULT_SANDBOX_URL, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout_seconds: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, transport=transport, timeout=timeout_seconds)

    async def __aenter__(self) -> SandboxControl:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        content = json.dumps(body, default=_json_default).encode() if body is not None else None
        try:
            response = await self._http.request(
                method, path, content=content, headers={"Content-Type": "application/json"} if content else None
            )
        except httpx.HTTPError as exc:
            raise BakongUnreachable(f"no sandbox answers at {self.url} ({type(exc).__name__})") from None
        try:
            data = response.json()
        except ValueError:
            raise MalformedResponse(f"{self.url}{path} answered HTTP {response.status_code} without JSON") from None
        if response.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            raise InvalidInput(message or f"the sandbox refused: HTTP {response.status_code}")
        if not isinstance(data, dict):
            raise MalformedResponse(f"{self.url}{path} answered JSON that is not an object")
        return data

    async def pay(
        self,
        *,
        qr: str | None = None,
        md5: str | None = None,
        amount: Decimal | str | None = None,
        currency: str | None = None,
        to_account: str | None = None,
        wrong_amount: bool = False,
        late_seconds: float | None = None,
        paid_at_ms: int | None = None,
        from_account: str | None = None,
        fail: bool = False,
    ) -> dict[str, Any]:
        """Pay a KHQR (or an MD5) as a bank app would; returns the recorded transfer."""
        body: dict[str, Any] = {
            "qr": qr,
            "md5": md5,
            "amount": str(amount) if amount is not None else None,
            "currency": currency,
            "to_account": to_account,
            "wrong_amount": wrong_amount or None,
            "late_seconds": late_seconds,
            "paid_at_ms": paid_at_ms,
            "from_account": from_account,
            "fail": fail or None,
        }
        data = await self._request("POST", "/sandbox/pay", {k: v for k, v in body.items() if v is not None})
        return data["transfer"]

    async def faults(self, changes: dict[str, Any] | None = None, *, reset: bool = False) -> dict[str, Any]:
        """Read, change or reset (``reset=True``) the faults; returns the faults now in force."""
        if changes is None and not reset:
            return (await self._request("GET", "/sandbox/faults"))["faults"]
        body = dict(changes or {})
        if reset:
            body["reset"] = True
        return (await self._request("POST", "/sandbox/faults", body))["faults"]

    async def stats(self) -> dict[str, Any]:
        return await self._request("GET", "/sandbox/stats")

    async def reset_stats(self) -> dict[str, Any]:
        return await self._request("POST", "/sandbox/stats/reset")

    async def transfers(self, limit: int = 50) -> list[dict[str, Any]]:
        return (await self._request("GET", f"/sandbox/transfers?limit={int(limit)}"))["transfers"]

    async def info(self) -> dict[str, Any]:
        return await self._request("GET", "/sandbox/info")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
