"""What the console knows about the engine outside any one payment: the header's facts and the
active alerts. The App owns one ``ConsoleState`` and publishes it to the header and status bar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Alert", "ConsoleState", "EngineStatus"]


@dataclass(frozen=True)
class EngineStatus:
    """The header: where the console is and what it may still spend."""

    sandbox: bool
    environment: str
    database: str
    #: "here" (this console runs the workers), "daemon" (another process does), "nobody".
    workers: str = "nobody"
    workers_holder: str | None = None
    requests_left: int | None = None
    requests_budget: int | None = None
    token_days: int | None = None
    token_expired: bool = False


@dataclass(frozen=True)
class Alert:
    """One condition a person should know about, until it clears."""

    key: str
    message: str
    severity: str = "warning"
    since: datetime | None = None


@dataclass
class ConsoleState:
    status: EngineStatus
    alerts: dict[str, Alert] = field(default_factory=dict)
