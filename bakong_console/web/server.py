"""The console's own server for the payer's pages: ``[web] host:port`` while the console runs.

`serve` mounts the pages in its API app; a console serves them itself, so a payer's page works
with no daemon at all. A port that cannot be taken (another console, a daemon on it) is logged
and the console carries on without: the pages are served wherever else the engine runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn

from bakong_console.web.app import create_web_app
from engine.runtime import Engine

__all__ = ["console_web_server"]

log = logging.getLogger("bakong_console.web")

STOP_SECONDS = 5.0


async def _serve(server: uvicorn.Server, where: str) -> bool:
    try:
        await server.serve()
    except SystemExit:  # uvicorn's answer to a port it cannot bind
        log.warning("the payer's pages are not served by this console: %s is taken", where)
        return False
    return True


@contextlib.asynccontextmanager
async def console_web_server(engine: Engine) -> AsyncIterator[str | None]:
    """Serve the payer's pages while the block runs; yields their base URL (None when
    ``web.enabled`` is off or the address could not be taken)."""
    web = engine.settings.web
    if not web.enabled:
        yield None
        return
    app = create_web_app(engine)
    # As `serve` runs the API: no proxy headers believed, no Server header, quiet.
    config = uvicorn.Config(
        app, host=web.host, port=web.port, lifespan="off", proxy_headers=False, server_header=False,
        log_level="warning", access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the console's are installed
    where = f"{web.host}:{web.port}"
    task = asyncio.create_task(_serve(server, where), name="console.web")
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    url = f"http://{where}" if server.started else None
    if url:
        log.info("the payer's pages are served on %s/pay/", url)
    try:
        yield url
    finally:
        app.state.web.close()  # ends open event streams, which uvicorn would wait for
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, STOP_SECONDS)
