"""A real HTTP receiver on loopback for webhook tests: records every request, answers as scripted.

It runs in the test's own event loop (asyncio streams, HTTP/1.1 keep-alive), so a test can hold a
request open (``hold()``), script answers per request (``script``), and read back exactly the
bytes and headers that arrived.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def type(self) -> str:
        return self.json["type"]


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    #: Send the body with Transfer-Encoding: chunked instead of Content-Length.
    chunked: bool = False


class Receiver:
    """``async with Receiver() as r``: listens on 127.0.0.1, ``r.url`` is where to send."""

    def __init__(self, *, tls: Any = None) -> None:
        self._tls = tls
        self.requests: list[Received] = []
        #: Answers for the next requests, in order; when empty, ``default`` answers.
        self.script: list[Answer] = []
        self.default: Answer | Callable[[Received], Answer] = Answer(200, body=b"ok")
        self._server: asyncio.base_events.Server | None = None
        self._held: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self.holding = asyncio.Event()
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        #: TCP connections accepted so far.
        self.connections = 0
        #: Close a kept-alive connection, unanswered, when a second request arrives on it (what a
        #: server that timed the idle connection out looks like to the client).
        self.drop_reused = False
        self.dropped = 0

    @property
    def url(self) -> str:
        return self.url_for("/hooks")

    def url_for(self, path: str) -> str:
        return f"{'https' if self._tls else 'http'}://{'localhost' if self._tls else '127.0.0.1'}:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def hold(self) -> None:
        """Keep the next requests waiting (no answer) until ``release()``."""
        self._held = asyncio.Event()
        self.holding.clear()

    def release(self) -> None:
        if self._held is not None:
            self._held.set()
            self._held = None

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.requests if r.type == event_type]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.requests) < count:
            if loop.time() > deadline:
                raise AssertionError(f"receiver got {len(self.requests)} requests, expected {count}")
            await asyncio.sleep(0.005)

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        served = 0
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if self.drop_reused and served:
                    self.dropped += 1
                    return
                served += 1
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = Received(method, path, headers, body)
                self.requests.append(received)
                self.arrived.set()
                if self._held is not None:
                    held = self._held
                    self.holding.set()
                    await held.wait()
                if self.script:
                    answer = self.script.pop(0)
                else:
                    answer = self.default(received) if callable(self.default) else self.default
                head = [f"HTTP/1.1 {answer.status} X"]
                head.append("transfer-encoding: chunked" if answer.chunked else f"content-length: {len(answer.body)}")
                head += [f"{k}: {v}" for k, v in answer.headers.items()]
                payload = answer.body
                if answer.chunked:
                    pieces = [payload[i : i + 700] for i in range(0, len(payload), 700)]
                    payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


class ThreadedReceiver:
    """A ``Receiver`` on its own event loop in a thread, for synchronous tests (the CLI's
    ``asyncio.run`` blocks the test's thread while it sends)."""

    def __init__(self) -> None:
        import threading

        self.receiver: Receiver | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        self.receiver = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self.receiver

    async def _start(self) -> Receiver:
        return await Receiver().__aenter__()

    def __exit__(self, *exc: object) -> None:
        assert self.receiver is not None
        asyncio.run_coroutine_threadsafe(self.receiver.__aexit__(None, None, None), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
