"""`bakong-console serve`: the engine headless — workers under leases, a heartbeat, the HTTP API.

A plain asyncio program (the uvicorn/hypercorn shape): signal handlers set a stop event; on it the
API stops accepting, the workers finish the batch in hand, release their leases, and the process
exits 0 within ``daemon.stop_timeout_seconds``. Killed outright, it loses nothing: every change is
committed before it is acted on, and another process (or the restarted one) takes the leases over
once they lapse.

``event_loop_factory`` gives ``serve`` uvloop's event loop where it is installed (an install
dependency on the platforms that have it), else asyncio's own; uvicorn picks httptools as its
HTTP parser the same way (``http="auto"``), else h11.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.db import state as engine_state
from engine.extras import require_extras
from engine.runtime import Engine

__all__ = ["HEARTBEAT_STATE", "event_loop_factory", "run_daemon"]

log = logging.getLogger("bakong_console.daemon")

HEARTBEAT_STATE = "daemon.heartbeat"


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when uvloop is installed, else None (asyncio's default loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _heartbeat(engine: Engine, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        statuses = {s.name: {"holding": s.holding, "iterations": s.iterations, "failures": s.failures} for s in engine.worker_statuses()}
        try:
            async with engine.storage.transaction() as tx:
                await engine_state.set_state(
                    tx, HEARTBEAT_STATE, {"holder": engine.holder, "pid": os.getpid(), "at": tx.now.isoformat(), "workers": statuses}
                )
            usage = await engine.client.budget_usage()
            log.info(
                "heartbeat",
                extra={"fields": {"holder": engine.holder, "workers": statuses, "bakong_requests_left": usage.remaining}},
            )
        except Exception as exc:  # a heartbeat must never take the daemon down
            log.warning("heartbeat failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


async def _serve_api(server: Any, settings: Settings) -> None:
    """uvicorn's ``serve``, with its ``sys.exit(1)`` on a failed start (port taken) turned into
    an ordinary failure: the daemon then stops its workers cleanly and exits 1."""
    try:
        await server.serve()
    except SystemExit:
        raise RuntimeError(f"the HTTP API could not listen on {settings.api.host}:{settings.api.port}") from None


async def run_daemon(
    settings: Settings,
    *,
    clock: Clock | None = None,
    with_api: bool | None = None,
    on_ready: Callable[[Engine], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until SIGINT/SIGTERM (or ``stop`` is set); returns the exit code."""
    serve_api = settings.api.enabled if with_api is None else with_api
    # Before anything starts: a missing optional package (Redis) is one line, not a traceback.
    require_extras(settings, serving_api=serve_api)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with Engine.open(settings, clock=clock or SystemClock(), run_workers=True) as engine:
            info = engine.info
            log.info(
                "daemon started",
                extra={
                    "fields": {
                        "holder": engine.holder, "environment": info.environment, "sandbox": info.sandbox,
                        "database": info.database, "event_loop": type(loop).__module__.partition(".")[0],
                    }
                },  # fmt: skip
            )
            tasks = [asyncio.create_task(_heartbeat(engine, settings.daemon.heartbeat_seconds, stop), name="daemon.heartbeat")]
            server = None
            api = None
            if serve_api:
                import uvicorn

                from bakong_console.api.app import create_app
                from bakong_console.api.server import settle_heap, uvicorn_config

                api = create_app(engine)
                settle_heap()
                server = uvicorn.Server(uvicorn_config(api, settings.api))
                server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # ours are installed
                tasks.append(asyncio.create_task(_serve_api(server, settings), name="daemon.api"))
                log.info(
                    "HTTP API on http://%s:%d/api/docs", settings.api.host, settings.api.port,
                    extra={"fields": {"http_parser": server.config.http}},
                )  # fmt: skip
            if on_ready is not None:
                on_ready(engine)
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            log.info("daemon stopping: finishing the batch in hand and releasing leases")
            stop.set()
            if server is not None:
                api.state.web.close()  # ends the payer pages' event streams, which uvicorn would wait for
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            stopper.cancel()
            if api is not None:
                await api.state.api.aclose()
            failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
            for task in failed:
                log.error("%s failed: %s", task.get_name(), task.exception())
        log.info("daemon stopped")
        return 1 if failed else 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
