"""Console fixtures: a whole engine on the manual clock (workers, embedded sandbox, seeded ids)
and the console over it, built by the same ``create_app`` the CLI uses.

Pilot tests run on SQLite and PostgreSQL. Snapshot tests run on a SQLite file under the isolated
home (so the header's database path reads the same on every machine), with the fixed clock,
seeded ids, cursor blink and animations off, at a fixed terminal size.

How a snapshot test runs the console (``shoot``): pytest-textual-snapshot takes the screenshot
with ``App.run()``, which starts a new event loop (``asyncio.run``), and an open engine (database
pool, workers, event bus) only works on the loop that opened it. So snapshot tests are sync: the
engine is opened by the async ``snapshot_engine`` fixture on pytest-asyncio's loop, the data is
seeded on that loop (``on_loop``), and the app is handed that same loop through Textual's own
``App.run(loop=...)`` argument. The fixture closes the engine on it afterwards, leases released.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from textual.pilot import Pilot
from rich.console import Console
from textual.content import Content
from textual.widgets import Input, Static
from textual.worker import WorkerCancelled, WorkerFailed

from bakong_console.tui.app import BakongConsoleApp, create_app
from engine.clock import ManualClock
from engine.config import Settings
from engine.records import Actor, ActorType
from engine.runtime import Engine
from tests.support.engine import open_engine, settle
from tests.support.settings import make_settings

T = TypeVar("T")
#: ``shoot(size, run_before)``: take the console's screenshot and compare it with its SVG.
Shoot = Callable[..., bool]

CASHIER = Actor(ActorType.CASHIER, "dara")
OPERATOR = Actor(ActorType.CLI, "sokha")


@asynccontextmanager
async def open_console_engine(settings: Settings, clock: ManualClock, *, seed: int = 7) -> AsyncIterator[Engine]:
    async with open_engine(settings, clock, holder="test-console", seed=seed) as engine:
        await settle(engine)
        yield engine


@pytest.fixture
async def engine(engine_settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    """An engine on ``engine_settings``, holding its leases under the console's holder name."""
    async with open_console_engine(engine_settings, clock) as eng:
        yield eng


@pytest.fixture
def snapshot_settings(isolated_home: Path) -> Settings:
    """SQLite under the isolated home: the header shows ``sqlite:~/data/console.db`` everywhere."""
    (isolated_home / "data").mkdir(exist_ok=True)
    return make_settings(f"sqlite+aiosqlite:///{isolated_home / 'data' / 'console.db'}")


@pytest.fixture
async def snapshot_engine(snapshot_settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    async with open_console_engine(snapshot_settings, clock) as eng:
        yield eng


def console_app(engine: Engine, **options: Any) -> BakongConsoleApp:
    """The console as the CLI builds it, with timers that never fire during a test (tests
    refresh explicitly) and animations off."""
    options = {"actor": CASHIER, "status_seconds": 3600.0, "tick_seconds": 3600.0, "watch_seconds": 3600.0, **options}
    app = create_app(engine, **options)
    app.animation_level = "none"
    return app


async def wait_until(pilot: Pilot[Any], condition: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition") -> None:
    """Let the app run until ``condition()`` holds (synchronisation, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def shown(static: Static, width: int = 200) -> str:
    """The text a Static shows (Rich renderables included), for assertions."""
    content = static.content
    if isinstance(content, str):
        return content
    if isinstance(content, Content):
        return content.plain
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(content)
    return console.export_text()


async def workers_done(app: Any) -> None:
    """Wait for the app's workers; a cancelled one (replaced by a newer one) is done too."""
    while True:
        try:
            await app.workers.wait_for_complete()
            return
        except (WorkerCancelled, WorkerFailed):
            continue


async def quiet(pilot: Pilot[Any], engine: Engine | None = None) -> None:
    """Wait until the app's workers are done and the engine is parked on its clock."""
    app = pilot.app
    for _ in range(3):
        await workers_done(app)
        if engine is not None:
            await settle(engine)
        await pilot.pause()
    await workers_done(app)
    await pilot.pause()


async def still(pilot: Pilot[Any]) -> None:
    """Make the screen still for a screenshot: no blinking cursors, nothing scheduled."""
    for node in pilot.app.screen.query(Input):
        node.cursor_blink = False
    await workers_done(pilot.app)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


# --- snapshots --------------------------------------------------------------------------------------


@pytest.fixture
async def engine_loop(snapshot_engine: Engine) -> asyncio.AbstractEventLoop:
    """The loop ``snapshot_engine`` was opened on (pytest-asyncio's): the console runs on it."""
    return asyncio.get_running_loop()


@pytest.fixture
def on_loop(engine_loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run one coroutine (seeding) on the engine's loop, from a sync test."""
    return engine_loop.run_until_complete


@pytest.fixture
def shoot(snap_compare: Any, snapshot_engine: Engine, engine_loop: asyncio.AbstractEventLoop) -> Shoot:
    """``shoot(size, run_before)``: the console over ``snapshot_engine``, compared with its SVG."""

    def take(size: tuple[int, int], run_before: Callable[[Pilot[Any]], Awaitable[None]] | None = None) -> bool:
        app = console_app(snapshot_engine)
        # See the module docstring: the app must run on the loop the engine was opened on.
        app.run = partial(BakongConsoleApp.run, app, loop=engine_loop)  # type: ignore[method-assign]

        async def before(pilot: Pilot[Any]) -> None:
            await settled(pilot, snapshot_engine)
            if run_before is not None:
                await run_before(pilot)
            await settled(pilot, snapshot_engine)
            await still(pilot)

        return bool(snap_compare(app, terminal_size=size, run_before=before))

    return take


async def settled(pilot: Pilot[Any], engine: Engine) -> None:
    """``quiet`` with fewer rounds: each Pilot pause waits for the process to go idle (a tenth
    of a second), and twelve snapshots pay for every one of them."""
    for _ in range(2):
        await workers_done(pilot.app)
        await settle(engine)
        await pilot.pause()
    await workers_done(pilot.app)
