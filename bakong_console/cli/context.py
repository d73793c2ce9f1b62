"""What every sub-command shares: the global options and how to load settings from them."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from engine.config import Settings, load_settings


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
