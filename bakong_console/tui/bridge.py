"""The one bridge from the engine to the console: committed events in, Textual messages out.

``engine.bus.listen`` calls us for every committed event, from this process or any other (the
bus tails the events table), in sequence order, on the app's own event loop. We sort them into
messages and post them to the App; the messages coalesce in the App's queue when they come
faster than the screens apply them.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App

from bakong_console.tui.messages import AlertRaised, AuditChanged, PaymentsChanged, SubscriptionsChanged, WebhooksChanged
from engine.bus import EventBus
from engine.records import Event

__all__ = ["EngineBridge"]

_WEBHOOK_SUBJECTS = ("webhook_endpoint", "webhook_delivery", "webhook")
_SUBSCRIPTION_SUBJECTS = ("subscription", "plan", "subscription_invoice", "invoice")


class EngineBridge:
    """Listens on the engine's bus while the console runs."""

    def __init__(self, app: App[object], bus: EventBus) -> None:
        self.app = app
        self.bus = bus
        #: The sequence of the last event seen (the console's position in the feed).
        self.last_sequence = 0
        self._unlisten: Callable[[], None] | None = None

    def start(self) -> None:
        if self._unlisten is None:
            self._unlisten = self.bus.listen(self._on_event)

    def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def _on_event(self, event: Event) -> None:
        self.last_sequence = event.sequence
        post = self.app.post_message
        if event.type.startswith("alert."):
            post(AlertRaised(event))
        if event.subject_type == "payment":
            post(PaymentsChanged({event.subject_id: event}))
        elif event.subject_type in _WEBHOOK_SUBJECTS or event.type.startswith("webhook."):
            post(WebhooksChanged(event))
        elif event.subject_type in _SUBSCRIPTION_SUBJECTS or event.type.startswith("subscription."):
            post(SubscriptionsChanged(event))
        post(AuditChanged(event))
