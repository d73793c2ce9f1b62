"""``ConsoleContext``: what the console's screens, dialogs and widgets may ask of the App they run
in — the engine, who is at the keys, a few settings, the console state and its signals, and the
App's few services (open a payment, clear an alert, the one error handler).

``app.py`` builds its modes from the screens, so a screen that imported the App class back would
close an import circle and could reach anything the App has. A screen declares
``app: ConsoleContext`` instead, and Textual's ``self.app`` stays the way in. ``BakongConsoleApp``
satisfies the protocol structurally; ``tests/tui/test_context.py`` holds it to that and holds
screens, dialogs and widgets to never importing ``tui.app``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from textual.screen import Screen
    from textual.signal import Signal

    from bakong_console.tui.state import Alert, ConsoleState, EngineStatus
    from engine.records import Actor, Event
    from engine.runtime import Engine

__all__ = ["ConsoleContext"]

ScreenResult = TypeVar("ScreenResult")


class ConsoleContext(Protocol):
    """The console App as its screens, dialogs and widgets see it."""

    # --- the engine and who acts through it ------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The open engine (the App is handed it and never closes it)."""
        ...

    @property
    def actor(self) -> Actor:
        """Who the audit log names for what is done at this console."""
        ...

    @property
    def sandbox(self) -> bool:
        """True when payments can be paid through the built-in sandbox from the console."""
        ...

    # --- settings ---------------------------------------------------------------------------------

    @property
    def bell_on_paid(self) -> bool: ...

    @property
    def status_seconds(self) -> float:
        """How often the header (and the webhooks screen) re-read what has no event (real seconds)."""
        ...

    @property
    def tick_seconds(self) -> float:
        """How often countdowns repaint (real seconds; the time shown comes from the engine clock)."""
        ...

    @property
    def watch_seconds(self) -> float:
        """How often the board re-reads the payments on screen that are still being checked."""
        ...

    # --- console state and the signals that publish engine events ---------------------------------

    @property
    def state(self) -> ConsoleState: ...

    @property
    def payments_signal(self) -> Signal[dict[str, Event]]: ...

    @property
    def status_signal(self) -> Signal[EngineStatus]: ...

    @property
    def alerts_signal(self) -> Signal[dict[str, Alert]]: ...

    @property
    def webhooks_signal(self) -> Signal[Event]: ...

    @property
    def subscriptions_signal(self) -> Signal[Event]: ...

    @property
    def audit_signal(self) -> Signal[Event]: ...

    # --- the App's services -----------------------------------------------------------------------

    def open_payment(self, payment_id: str) -> None:
        """Push the detail screen of one payment over the current screen."""
        ...

    def clear_alert(self, key: str) -> None: ...

    def show_error(self, exc: BaseException, *, action: str = "do that", source: object | None = None) -> None:
        """The one error handler (``work.engine_work`` sends every worker failure here)."""
        ...

    # --- the Textual App calls the screens make ---------------------------------------------------

    @property
    def screen(self) -> Screen[object]: ...

    def push_screen(
        self, screen: Screen[ScreenResult], callback: Callable[[ScreenResult | None], Any] | None = None
    ) -> Any: ...

    def bell(self) -> None: ...
