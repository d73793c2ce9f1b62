"""One loopback HTTP server for a whole test session that serves whichever Bakong sandbox the
current test points it at (``switch.target = app``): real HTTP without a server per test."""

from __future__ import annotations

from typing import Any


class SwitchableApp:
    """One ASGI app for the session's server that forwards to the current test's sandbox."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)
