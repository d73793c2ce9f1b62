"""``AlertBar``: the status bar of active alerts (Bakong unreachable or rate limited, token
expired, quota spent, webhook endpoint disabled, daemon heartbeat missing, payments to review).

Alerts also arrive as toasts when they start; the bar keeps them in view until they clear.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from bakong_console.times import clock_time
from bakong_console.tui.state import Alert

__all__ = ["AlertBar"]


class AlertBar(Static):
    """One line above the footer; says "no alerts" when there are none."""

    DEFAULT_CSS = """
    AlertBar {
        dock: bottom;
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    AlertBar.-warning { background: $warning 40%; color: $text; }
    AlertBar.-error { background: $error 60%; color: $text; text-style: bold; }
    """

    def on_mount(self) -> None:
        state = getattr(self.app, "state", None)
        if state is not None:
            self.show(state.alerts)
            self.app.alerts_signal.subscribe(self, self.show)  # type: ignore[attr-defined]

    def show(self, alerts: dict[str, Alert]) -> None:
        if not alerts:
            self.update("No alerts")
            self.set_class(False, "-warning")
            self.set_class(False, "-error")
            return
        worst = "error" if any(a.severity == "error" for a in alerts.values()) else "warning"
        text = Text("⚠ ")
        for i, alert in enumerate(sorted(alerts.values(), key=lambda a: (a.severity != "error", a.key))):
            if i:
                text.append(" · ")
            text.append(alert.message)
            if alert.since is not None:
                text.append(f" ({clock_time(alert.since)})")
        self.update(text)
        self.set_class(worst == "warning", "-warning")
        self.set_class(worst == "error", "-error")
