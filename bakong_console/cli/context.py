"""What every sub-command shares: the global options and how to load settings from them."""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from engine.config import Settings, load_settings
from engine.records import Actor, ActorType

if TYPE_CHECKING:
    from engine.runtime import Engine


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
