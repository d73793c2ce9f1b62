"""The HTTP/1.1 transport under the webhook client: asyncio streams, h11, a keep-alive pool.

Webhook delivery is many small POSTs to few origins. httpx's default transport (httpcore over
anyio) re-examines every pooled connection on each request and costs well over a millisecond of
CPU per request at the concurrency the deliverer uses; this transport does the same job with
h11's parser (the one httpcore uses) directly on asyncio streams, roughly ten times cheaper.
It plugs into ``httpx.AsyncClient(transport=...)``: requests, responses, headers, errors and
timeouts stay httpx's. Proxies configured in the environment still go through httpx's own
transport (the client mounts those itself).

Connections are kept per origin (LIFO, so the warmest is reused) for ``KEEPALIVE_SECONDS`` idle.
A reused connection the server closed meanwhile fails before any answer arrives; the request is
then sent once more on a fresh connection (the server never saw it, or the receiver dedupes on
``webhook-id`` anyway).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h11
import httpx

__all__ = ["KEEPALIVE_SECONDS", "StreamTransport"]

KEEPALIVE_SECONDS = 5.0
MAX_IDLE_PER_ORIGIN = 64
READ_SIZE = 65536

Origin = tuple[str, str, int]


class _StaleConnection(Exception):
    """A kept-alive connection was closed by the server before it answered anything."""


@dataclass(eq=False)
class _Connection:
    origin: Origin
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    h11: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0
    reused: bool = False
    #: Whether the server sent anything in the current exchange (a reused connection that fails
    #: before that was closed by the server while idle).
    answered: bool = False
    eof: bool = False

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof() and self.h11.our_state is h11.IDLE

    async def next_event(self) -> h11.Event | type[h11.NEED_DATA]:
        """The next h11 event from the server, reading as needed."""
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(READ_SIZE)
            if data:
                self.answered = True
            elif self.eof:
                raise h11.RemoteProtocolError("the server closed the connection")
            else:
                self.eof = True
            self.h11.receive_data(data)  # b"" tells h11 the server closed the connection


class _ResponseBody(httpx.AsyncByteStream):
    """The answer's body, read from the connection as it is iterated; closing it hands a cleanly
    finished connection back to the pool (or closes it)."""

    def __init__(self, transport: StreamTransport, connection: _Connection, request: httpx.Request) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._request = request
        self._finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None or self._finished:
            return
        while True:
            try:
                event = await connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=self._request) from None
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=self._request) from None
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._finished = True
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("the server closed the connection mid-answer", request=self._request)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._finished and connection.h11.our_state is h11.DONE and connection.h11.their_state is h11.DONE:
            connection.h11.start_next_cycle()
            self._transport._release(connection)
        else:
            connection.close()


class StreamTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 for ``httpx.AsyncClient``: one keep-alive pool per origin, TLS with ``tls``."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, keepalive_seconds: float = KEEPALIVE_SECONDS) -> None:
        self._tls = tls
        self._keepalive = keepalive_seconds
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            import certifi

            self._tls = ssl.create_default_context(cafile=certifi.where())
        return self._tls

    def _release(self, connection: _Connection) -> None:
        if self._closed or not connection.usable:
            connection.close()
            return
        stack = self._idle.setdefault(connection.origin, [])
        if len(stack) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        stack.append(connection)

    def _take_idle(self, origin: Origin) -> _Connection | None:
        stack = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while stack:
            connection = stack.pop()
            if connection.usable and now - connection.idle_since < self._keepalive:
                connection.reused = True
                return connection
            connection.close()
        return None

    async def _open(self, origin: Origin, request: httpx.Request) -> _Connection:
        scheme, host, port = origin
        try:
            if scheme == "https":
                reader, writer = await asyncio.open_connection(host, port, ssl=self._tls_context(), server_hostname=host)
            else:
                reader, writer = await asyncio.open_connection(host, port)
        except ssl.SSLError as exc:
            raise httpx.ConnectError(f"TLS: {exc.reason or exc}", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from None
        return _Connection(origin, reader, writer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.TransportError("the transport is closed", request=request)
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        origin: Origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        body = await request.aread()
        connection = self._take_idle(origin)
        if connection is not None:
            try:
                return await self._exchange(connection, request, body)
            except _StaleConnection:
                pass
        connection = await self._open(origin, request)
        try:
            return await self._exchange(connection, request, body)
        except _StaleConnection:
            raise httpx.RemoteProtocolError("the server closed the connection without answering", request=request) from None

    async def _exchange(self, connection: _Connection, request: httpx.Request, body: bytes) -> httpx.Response:
        """Send the request and read the answer's head; the body is read by the response stream."""
        connection.answered = False
        try:
            head = h11.Request(method=request.method, target=request.url.raw_path, headers=list(request.headers.raw))
            connection.writer.write(connection.h11.send(head) + connection.h11.send(h11.Data(data=body)) + connection.h11.send(h11.EndOfMessage()))
            await connection.writer.drain()
            while True:
                event = await connection.next_event()
                if isinstance(event, h11.Response):
                    break
                if isinstance(event, h11.InformationalResponse):
                    continue
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before the response")
        except (h11.RemoteProtocolError, OSError) as exc:
            connection.close()
            if connection.reused and not connection.answered:
                raise _StaleConnection from None
            if isinstance(exc, OSError):
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        except h11.LocalProtocolError as exc:
            connection.close()
            raise httpx.LocalProtocolError(str(exc), request=request) from None
        except BaseException:
            connection.close()  # cancelled mid-exchange: the connection's state is unknown
            raise
        return httpx.Response(
            status_code=event.status_code,
            headers=list(event.headers),
            stream=_ResponseBody(self, connection, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(event.reason)},
        )

    async def aclose(self) -> None:
        self._closed = True
        for stack in self._idle.values():
            for connection in stack:
                connection.close()
        self._idle.clear()
