"""Serving the sandbox over real HTTP: in a background thread (tests, benches, an embedded
console) or in the foreground (``bakong-console sandbox serve``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

__all__ = ["ThreadedServer", "serve_forever"]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP
    # (proto 0 would leave Nagle on and cost a delayed ACK, ~40 ms, per answer).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class ThreadedServer:
    """An ASGI app served by uvicorn on its own event loop in a daemon thread.

    ``port=0`` picks a free port; ``url`` says where it listens once started. Use as a context
    manager, or ``start()``/``stop()``.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self.app = app
        self.host = host
        self._sock = _bind(host, port)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level=log_level,
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"sandbox-server-{self.port}", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    def start(self, timeout: float = 10.0) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the sandbox server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start in time")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_forever(app: Any, *, host: str = "127.0.0.1", port: int = 8787, log_level: str = "info") -> None:
    """Serve ``app`` in the foreground until interrupted (SIGINT/SIGTERM stop it gracefully)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="off", timeout_graceful_shutdown=5)
