"""Sending one signed webhook over HTTP: the shared client, the headers, the answer as a result.

``WebhookSender`` owns the one ``httpx.AsyncClient`` every delivery shares (created on first use,
closed with the engine). ``send`` signs the body bytes it is given with every valid secret of the
endpoint, POSTs exactly those bytes, and turns whatever happens (an answer, a timeout, a refused
connection) into an ``AttemptResult``: it never raises for a failed delivery.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from engine import __version__
from engine.clock import Clock
from engine.errors import WebhookError
from engine.webhooks.message import OutgoingMessage
from engine.webhooks.policy import AttemptResult, parse_retry_after
from engine.webhooks.signing import sign
from engine.webhooks.transport import StreamTransport

__all__ = ["EXCERPT_BYTES", "OutgoingMessage", "WebhookSender"]

#: How much of a receiver's answer is kept in the attempt log.
EXCERPT_BYTES = 1024


class WebhookSender:
    """POST signed messages through one shared client, with a total deadline per attempt.

    ``tls`` replaces the default trust store (certifi) for HTTPS endpoints; ``transport`` replaces
    the HTTP transport altogether (tests, or an operator's own).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        timeout_seconds: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.clock = clock
        self.timeout_seconds = timeout_seconds
        self._transport = transport
        self._tls = tls
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_seconds),
                follow_redirects=False,
                transport=self._transport or StreamTransport(tls=self._tls),
                headers={"User-Agent": f"bakong-console-webhooks/{__version__}"},
                # every message stands alone: nothing a receiver sets is sent back with the next one
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def send(self, message: OutgoingMessage) -> AttemptResult:
        """One attempt. Signed with this attempt's timestamp; the body is sent byte for byte."""
        started_at = self.clock.now()
        timestamp = int(started_at.timestamp())
        t0 = time.perf_counter()
        try:
            signature = sign(message.msg_id, timestamp, message.body, message.secrets)
        except WebhookError as exc:  # a stored secret that is not a whsec_ secret: nothing is sent
            return AttemptResult(message.delivery_id, message.endpoint_id, started_at, 0.0, None, None, f"cannot sign: {exc.message}")
        headers = {
            "content-type": "application/json",
            "webhook-id": message.msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with self.client.stream("POST", message.url, content=message.body, headers=headers) as response:
                    status = response.status_code
                    retry_after = parse_retry_after(response.headers.get("retry-after"), started_at)
                    excerpt = await _read_excerpt(response)
        except TimeoutError:
            error = f"no answer within {self.timeout_seconds:g} s"
        except httpx.TimeoutException:
            error = f"no answer within {self.timeout_seconds:g} s"
        except httpx.ConnectError as exc:
            error = f"cannot connect: {_first_line(exc) or 'connection refused'}"
        except httpx.InvalidURL as exc:
            error = f"invalid URL: {_first_line(exc)}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {_first_line(exc) or 'transport error'}"
        except OSError as exc:
            error = f"{type(exc).__name__}: {_first_line(exc)}"
        duration_ms = (time.perf_counter() - t0) * 1000.0
        return AttemptResult(
            delivery_id=message.delivery_id,
            endpoint_id=message.endpoint_id,
            started_at=started_at,
            duration_ms=round(duration_ms, 3),
            status_code=status,
            response_excerpt=excerpt,
            error=error,
            retry_after=retry_after,
        )


async def _read_excerpt(response: httpx.Response) -> str | None:
    """The start of the answer's body (never the whole of a large one)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= EXCERPT_BYTES:
            break
    if not size:
        return None
    return b"".join(chunks)[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
