"""Running the console for real: open the engine (with its workers) and the servers of the payer's
pages (``[web]`` and ``[display]``, ``bakong_console.web.server``), run the App, close both however the App ends —
``q``, Ctrl+C, SIGTERM, SIGHUP or SIGINT — so the worker leases are released and another process
can take the jobs over at once.

While the App owns the terminal, log records go to ``console.log`` in the data directory
instead of stderr (a log line on stderr would tear the screen); the error dialog points there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from engine.clock import Clock
from engine.config import Settings, data_dir

__all__ = ["console_log_path", "run_console"]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def console_log_path() -> Path:
    return data_dir() / "console.log"


@contextlib.contextmanager
def _log_to_file(path: Path):  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    saved = root.handlers[:]
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved
        handler.close()


async def run_console(settings: Settings, *, clock: Clock | None = None) -> int:
    """Open the engine, run the console until it is quit or signalled, close the engine."""
    from bakong_console.tui.app import create_app
    from bakong_console.web.server import console_display_server, console_web_server
    from engine.runtime import Engine

    loop = asyncio.get_running_loop()
    with _log_to_file(console_log_path()):
        async with (
            Engine.open(settings, clock=clock, run_workers=True) as engine,
            console_web_server(engine),
            console_display_server(engine),
        ):
            app = create_app(engine)

            def stop(signum: int) -> None:
                logging.getLogger("bakong_console.tui").info("console stopping on signal %d", signum)
                app.exit(0)

            for sig in _STOP_SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, stop, sig)
            try:
                # A hung-up terminal can make the driver's last writes fail; the engine still closes.
                with contextlib.suppress(OSError):
                    await app.run_async()
            finally:
                for sig in _STOP_SIGNALS:
                    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                        loop.remove_signal_handler(sig)
    _forget_hung_up_terminal()
    return app.return_code or 0


def _forget_hung_up_terminal() -> None:
    """After a hangup, what is still buffered for the terminal can never be written, and Python's
    last flush at exit would fail and turn a clean stop into exit status 120: send it to
    /dev/null instead."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except OSError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, stream.fileno())
            finally:
                os.close(devnull)
            with contextlib.suppress(OSError):
                stream.flush()
        except ValueError:  # closed or detached: nothing left to flush
            continue
