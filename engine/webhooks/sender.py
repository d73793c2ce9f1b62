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
import zlib
from collections.abc import AsyncIterator, Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy
import certifi
import httpx

from engine import __version__
from engine.clock import Clock
from engine.webhooks.message import OutgoingMessage
from engine.webhooks.policy import AttemptResult, parse_retry_after
from engine.webhooks.signing import sign

__all__ = ["EXCERPT_BYTES", "OutgoingMessage", "WebhookSender"]

#: How much of a receiver's answer is kept in the attempt log.
EXCERPT_BYTES = 1024
#: Connections per pool shard (see ``_ShardedTransport``).
SHARD_CONNECTIONS = 4


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that tells its shard when it is closed (the connection is free again)."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            await self._inner.aclose()
        finally:
            if release is not None:
                release()


class _ShardedTransport(httpx.AsyncBaseTransport):
    """Several small connection pools behind one client.

    httpcore's pool looks at every connection it holds (and, for each, at all the others) each
    time a request starts or ends; at 16 concurrent deliveries that bookkeeping costs more than
    the request itself. Pools of at most ``SHARD_CONNECTIONS`` connections keep it small, while
    every HTTP detail stays httpx's own.
    """

    def __init__(self, max_connections: int) -> None:
        count = max(1, -(-max_connections // SHARD_CONNECTIONS))
        limits = httpx.Limits(max_connections=SHARD_CONNECTIONS, max_keepalive_connections=SHARD_CONNECTIONS)
        tls = ssl.create_default_context(cafile=certifi.where())  # one trust store for every shard
        self._shards = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(count)]
        self._load = [0] * count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._pick(request.url)
        self._load[index] += 1

        def release() -> None:
            self._load[index] -= 1

        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, release),
            extensions=response.extensions,
        )

    def _pick(self, url: httpx.URL) -> int:
        """The origin's home shard if it has a free connection, else the next one that has, else
        the least busy: an endpoint keeps reusing the same few kept-alive connections."""
        count = len(self._shards)
        home = zlib.crc32(f"{url.scheme}://{url.host}:{url.port}".encode()) % count
        for step in range(count):
            index = (home + step) % count
            if self._load[index] < SHARD_CONNECTIONS:
                return index
        return min(range(count), key=self._load.__getitem__)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class WebhookSender:
    """POST signed messages through one shared client, with a total deadline per attempt."""

    def __init__(
        self,
        *,
        clock: Clock,
        timeout_seconds: float = 15.0,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.clock = clock
        self.timeout_seconds = timeout_seconds
        self.max_connections = max_connections
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_seconds),
                follow_redirects=False,
                transport=self._transport or _ShardedTransport(self.max_connections),
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
        headers = {
            "content-type": "application/json",
            "webhook-id": message.msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(message.msg_id, timestamp, message.body, message.secrets),
        }
        t0 = time.perf_counter()
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
