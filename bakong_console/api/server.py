"""How to serve the API with uvicorn inside the engine's event loop (``bakong-console serve``).

``uvicorn_config`` turns uvicorn's own proxy-header handling off: uvicorn would otherwise
believe ``X-Forwarded-For`` from 127.0.0.1 and rewrite the client address before the API sees
it, letting a local client choose the address that IP blocks and the audit log record. The API
applies ``api.trusted_proxies`` itself (``bakong_console.api.security.ClientAddress``). Nor does
uvicorn configure logging: its lines go through the process's handler (``bakong_console.logs``).

The HTTP parser is httptools where it is installed (an install dependency on CPython), else h11.

``settle_heap`` is called once the engine and the app are built: the objects that live as long as
the process (modules, SQLAlchemy's and FastAPI's machinery, the engine) are moved out of the
cycle collector's reach, and the youngest generation is collected less often. Without it a full
collection walked all of them about every two seconds under load (about 100 ms each, in the p99)
and collections cost 110-136 µs per status request; with it about 30 µs.
"""

from __future__ import annotations

import gc
from importlib.util import find_spec
from typing import Any

import uvicorn
from fastapi import FastAPI

from engine.config import ApiSettings

__all__ = ["GEN0_THRESHOLD", "HTTP_PARSER", "settle_heap", "uvicorn_config"]

#: uvicorn's HTTP protocol: the C parser when installed, the pure-Python one otherwise.
HTTP_PARSER = "httptools" if find_spec("httptools") is not None else "h11"


#: Allocations between two collections of the youngest generation (CPython's default is 700): a
#: request allocates a few hundred objects, so the default collected every request or two.
GEN0_THRESHOLD = 20_000


def settle_heap() -> None:
    """After start-up: freeze what exists (never scanned again) and collect the young less often.
    Once per process: what a later call would freeze (a second engine in one process, in tests)
    is no longer start-up state."""
    if gc.get_threshold()[0] == GEN0_THRESHOLD:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def uvicorn_config(app: FastAPI, settings: ApiSettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn Config for ``create_app(engine)`` on ``settings.host:settings.port``."""
    options: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        lifespan="off",
        http=HTTP_PARSER,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        access_log=False,
        # uvicorn's own logging config gives its loggers plain-text handlers of their own; without
        # it they reach the root handler, so `[logging] format = "json"` covers them too.
        log_config=None,
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)
