"""Web fixtures: the engine with its workers on real time (a clock the test can move forward),
`serve`'s app (API + payer pages) on a loopback port, API keys, and Debian's Chromium driven by
Playwright (never `playwright install`).

Chromium is /usr/bin/chromium (`.ci/run` installs it). Without it these tests skip locally and
fail in CI (``CI=true``), like the PostgreSQL tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bakong_console.api import create_app
from bakong_console.api.server import uvicorn_config
from engine.clock import SystemClock
from engine.config import Settings
from engine.records import Actor, ActorType
from engine.runtime import Engine
from tests.support.net import free_port
from tests.support.settings import make_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KHMER_NAME = "ហាងសាកល្បង"


class MovableClock(SystemClock):
    """Real time, plus whatever the test moved it forward (expiry and grace without waiting)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.offset

    def forward(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)



@pytest.fixture
def web_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def display_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def web_settings(tmp_path: Path, web_overrides: dict[str, Any], display_overrides: dict[str, Any]) -> Settings:
    return make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'web.db'}",
        # Checks every second from the first: a sandbox payment is found within about a second.
        payments={"tick_seconds": 0.2, "dense_interval_seconds": 1.0, "jitter": 0.0},
        web={"redirect_seconds": 1.5, **web_overrides},
        merchant={"name_alternate": KHMER_NAME, "city_alternate": "ភ្នំពេញ"},
        display={"language": "en", **display_overrides},
    )


@dataclass
class Served:
    engine: Engine
    clock: MovableClock
    base_url: str
    key: str
    client: httpx.AsyncClient
    created: list[dict[str, Any]] = field(default_factory=list)

    async def create(self, **body: Any) -> dict[str, Any]:
        """POST /api/payments/create; the payment's data (with checkout_url)."""
        body = {"amount": "12.50", "currency": "USD", **body}
        response = await self.client.post("/api/payments/create", json=body, headers={"X-API-Key": self.key})
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        self.created.append(data)
        return data

    def url(self, path: str) -> str:
        return self.base_url + path


@contextlib.asynccontextmanager
async def listening(config: uvicorn.Config, *, before_stop: Any = None) -> AsyncIterator[int]:
    """Serve ``config``'s app on a free loopback port in this event loop; yields the port."""
    port = free_port()
    config.host, config.port = "127.0.0.1", port
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "the server did not start"
        yield port
    finally:
        if before_stop is not None:
            before_stop()
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture
async def served(web_settings: Settings) -> AsyncIterator[Served]:
    clock = MovableClock()
    async with Engine.open(web_settings, clock=clock, run_workers=True, migrate=True, holder="web-test") as engine:
        _, key = await engine.api_keys.create("shop-backend", None, actor=Actor(ActorType.CLI, "test"))
        app = create_app(engine)
        try:
            # Open event streams end first: uvicorn waits for open responses before it stops.
            async with listening(uvicorn_config(app, web_settings.api), before_stop=app.state.web.close) as port:
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                    yield Served(engine, clock, base, key, client)
        finally:
            await app.state.api.aclose()


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI requires the browser tests to run", pytrace=False)
        pytest.skip(message)


@dataclass
class Browser:
    """One Chromium with one context; screenshots go to ``shots`` and are listed on failure."""

    context: Any
    shots: Path
    csp_violations: list[str] = field(default_factory=list)
    taken: list[Path] = field(default_factory=list)

    async def page(self) -> Any:
        page = await self.context.new_page()
        page.on("console", lambda msg: self._console(msg.text))
        return page

    def _console(self, text: str) -> None:
        if "Content Security Policy" in text or "Refused to" in text:
            self.csp_violations.append(text)

    async def shot(self, page: Any, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        print(f"screenshot: {path}")  # shown by pytest when the test fails
        return path


async def _shop_page(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b"<!doctype html><title>shop</title><h1>The shop</h1>"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def shop() -> AsyncIterator[str]:
    """The shop's site (any path answers a page saying "The shop"): its base URL."""
    async with listening(uvicorn.Config(_shop_page, lifespan="off", log_level="warning")) as port:
        yield f"http://localhost:{port}"


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    require_chromium()
    from playwright.async_api import async_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = await chromium.new_context(viewport={"width": 480, "height": 960}, locale="en-US")
            yield Browser(context, shots)
        finally:
            await chromium.close()
