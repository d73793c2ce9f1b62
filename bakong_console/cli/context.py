"""What every sub-command shares: the global options and the settings they load, the engine a
command runs on, and the options and time formats that several commands take alike."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from engine.clock import PHNOM_PENH
from engine.config import Settings, load_settings
from engine.records import Actor, ActorType

if TYPE_CHECKING:
    from engine.runtime import Engine

T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
# The paging options of every `list`-like command.
LimitOpt = Annotated[int, typer.Option("--limit", help="Page size.")]
CursorOpt = Annotated[str | None, typer.Option("--cursor", help="Continue after a previous page.")]
JsonLinesOpt = Annotated[bool, typer.Option("--json", help="JSON lines, then the next cursor.")]


@dataclass
class CliState:
    config_path: str | None = None
    verbosity: int = 0
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings


def state(ctx: typer.Context) -> CliState:
    """The root's state, from any depth of sub-command."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def cli_actor() -> Actor:
    """The person at this shell, as the audit log names them."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Actor(ActorType.CLI, name)


@asynccontextmanager
async def open_engine(ctx: typer.Context, *, run_workers: bool = False) -> AsyncIterator[Engine]:
    """The engine configured for this command (the embedded default when there is no config)."""
    from engine.runtime import Engine

    async with Engine.open(state(ctx).settings(), run_workers=run_workers) as engine:
        yield engine


def with_engine(ctx: typer.Context, action: Callable[[Engine], Awaitable[T]]) -> T:
    """Run one action on this command's engine (opened, then closed) and return what it returns."""

    async def run() -> T:
        async with open_engine(ctx) as engine:
            return await action(engine)

    return asyncio.run(run())


def day_or_time(text: str) -> datetime:
    """A date (midnight in Asia/Phnom_Penh) or an ISO time (UTC unless it says otherwise), in UTC.

    Raises ValueError for anything else; each option words its own error around it."""
    if len(text) == 10:
        day = datetime.strptime(text, "%Y-%m-%d").date()
        return datetime.combine(day, time(0), PHNOM_PENH).astimezone(UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
