"""Install extras: the optional packages a configuration needs, and which of them are missing.

A normal install (``pip install bakong-console``) carries what the defaults use. A setting that
needs more names its extra (``pip install 'bakong-console[redis]'``); ``config check``, the doctor
and ``serve`` ask here, so a missing package is one clear line before anything starts rather
than a traceback once the API is up.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.config import Settings
from engine.errors import ConfigError

__all__ = ["MissingExtra", "missing_extras", "require_extras"]


@dataclass(frozen=True)
class MissingExtra:
    """A setting whose value needs a package this installation lacks."""

    #: The setting that needs it, as written in the config (``api.rate_limit_backend``).
    setting: str
    #: The importable module that is missing.
    module: str
    #: The install extra that brings it.
    extra: str

    @property
    def install(self) -> str:
        return f"pip install 'bakong-console[{self.extra}]'"

    @property
    def message(self) -> str:
        return f"{self.setting} needs the {self.module!r} package, which is not installed: {self.install}"


def missing_extras(
    settings: Settings, *, serving_api: bool | None = None, find_spec: Callable[[str], Any] = importlib.util.find_spec
) -> list[MissingExtra]:
    """What these settings need that cannot be imported here. ``serving_api`` says whether the HTTP
    API runs (default: ``api.enabled``); ``find_spec`` is injectable for tests."""
    needed: list[MissingExtra] = []
    api = settings.api.enabled if serving_api is None else serving_api
    if api and settings.api.rate_limit_backend != "memory":
        needed.append(MissingExtra("api.rate_limit_backend", "redis", "redis"))
    return [extra for extra in needed if not _importable(extra.module, find_spec)]


def require_extras(
    settings: Settings, *, serving_api: bool | None = None, find_spec: Callable[[str], Any] = importlib.util.find_spec
) -> None:
    """Raise ``ConfigError`` naming the first missing package and how to install it."""
    missing = missing_extras(settings, serving_api=serving_api, find_spec=find_spec)
    if missing:
        where = f"{settings.source}: " if settings.source else ""
        raise ConfigError(where + missing[0].message)


def _importable(module: str, find_spec: Callable[[str], Any]) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False
