"""Going live against a production-like Bakong: the sandbox served over real loopback HTTP on the
real clock (its tokens are valid now, its answers carry a real ``Date`` header), reached as the
"custom" environment, the way an operator reaches a relay: tests/conftest.py's session server,
pointed at each test's own sandbox."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.bakong.sandbox import BakongSandbox, InMemoryTransferStore, SandboxFaults, ThreadedServer, create_sandbox_app
from engine.clock import SystemClock
from tests.support.sandbox_server import SwitchableApp

EMAIL = "owner@example.com"


@dataclass
class LiveBakong:
    url: str
    sandbox: BakongSandbox
    token_file: Path

    @property
    def token(self) -> str:
        return self.sandbox.token

    def set_faults(self, **changes: Any) -> None:
        self.sandbox.faults = self.sandbox.faults.updated(changes)

    def requests(self, label: str = "total") -> int:
        return self.sandbox.stats[label]


@pytest.fixture
def bakong(loopback_server: tuple[ThreadedServer, SwitchableApp], tmp_path: Path) -> LiveBakong:
    server, switch = loopback_server
    app = create_sandbox_app(InMemoryTransferStore(), clock=SystemClock(), email=EMAIL, faults=SandboxFaults(), rng=random.Random(5))
    switch.target = app
    token_file = tmp_path / "bakong.token"
    token_file.write_text(app.state.sandbox.token + "\n", encoding="utf-8")
    return LiveBakong(server.url, app.state.sandbox, token_file)


def setup_flags(bakong: LiveBakong, *extra: str, database: str = "sqlite") -> list[str]:
    """Every answer as a flag: a shop going live through a relay (the sandbox)."""
    return [
        "setup", "--yes",
        "--environment", "custom", "--base-url", bakong.url,
        "--token-file", str(bakong.token_file), "--email", EMAIL,
        "--merchant-name", "Dara Coffee", "--city", "Siem Reap", "--account", "dara_coffee@aclb",
        "--currency", "USD", "--database", database,
        "--hours", "mon-fri=07:00-21:00", "--hours", "sat=08:00-12:00, 13:00-22:00", "--hours", "sun=closed",
        "--expected-payments-per-day", "60",
        *extra,
    ]  # fmt: skip
