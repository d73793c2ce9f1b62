"""The console's own servers for the payer's pages: the checkout on ``[web] host:port`` and its
terminal's customer display on ``[display] host:port`` while the console runs.

`serve` mounts both kinds of pages in its API app; a console serves them itself, so a payer's page
and the counter's display work with no daemon at all. A port that cannot be taken (another
console, a daemon on it) is logged and the console carries on without: the pages are served
wherever else the engine runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn

from bakong_console.web.app import create_web_app
from engine.runtime import Engine

__all__ = ["console_display_server", "console_web_server"]

log = logging.getLogger("bakong_console.web")

STOP_SECONDS = 5.0


async def _serve(server: uvicorn.Server, what: str, where: str) -> bool:
    try:
        await server.serve()
    except SystemExit:  # uvicorn's answer to a port it cannot bind
        log.warning("%s is not served by this console: %s is taken", what, where)
        return False
    return True


@contextlib.asynccontextmanager
async def _pages_server(engine: Engine, page: str, *, enabled: bool, host: str, port: int, what: str) -> AsyncIterator[str | None]:
    if not enabled:
        yield None
        return
    app = create_web_app(engine, (page,))
    # As `serve` runs the API: no proxy headers believed, no Server header, quiet.
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="off", proxy_headers=False, server_header=False,
        log_level="warning", access_log=False, log_config=None,  # its lines through the console's log handler
    )  # fmt: skip
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the console's are installed
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    task = asyncio.create_task(_serve(server, what, where), name=f"console.{page}")
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    url = f"http://{where}" if server.started else None
    if url:
        log.info("%s is served on %s/%s/", what, url, page)
    try:
        yield url
    finally:
        app.state.web.close()  # ends open event streams, which uvicorn would wait for
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, STOP_SECONDS)


@contextlib.asynccontextmanager
async def console_web_server(engine: Engine) -> AsyncIterator[str | None]:
    """Serve the checkout pages while the block runs; yields their base URL (None when
    ``web.enabled`` is off or the address could not be taken)."""
    web = engine.settings.web
    async with _pages_server(engine, "pay", enabled=web.enabled, host=web.host, port=web.port, what="the checkout page") as url:
        yield url


@contextlib.asynccontextmanager
async def console_display_server(engine: Engine) -> AsyncIterator[str | None]:
    """Serve the customer display while the block runs; yields its base URL (None when
    ``display.enabled`` is off or the address could not be taken)."""
    display = engine.settings.display
    async with _pages_server(
        engine, "display", enabled=display.enabled, host=display.host, port=display.port, what="the customer display"
    ) as url:
        yield url
