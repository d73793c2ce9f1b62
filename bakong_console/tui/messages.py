"""The Textual messages the bridge posts for engine events.

Fast-changing ones coalesce (Toolong's idiom): when a newer message of the same kind is already
waiting in the queue, ``can_replace`` folds the older one into it, so a burst of payment changes
reaches the screens as one message carrying the latest event per payment.
"""

from __future__ import annotations

from textual.message import Message

from engine.records import Event

__all__ = ["AlertRaised", "AuditChanged", "PaymentsChanged", "SubscriptionsChanged", "WebhooksChanged"]


class PaymentsChanged(Message):
    """Payments changed in the engine: the newest event per payment id, in arrival order."""

    def __init__(self, changes: dict[str, Event]) -> None:
        super().__init__()
        self.changes = changes

    def can_replace(self, message: Message) -> bool:
        if isinstance(message, PaymentsChanged):
            merged = dict(self.changes)
            merged.update(message.changes)
            message.changes = merged
            return True
        return False


class AlertRaised(Message):
    """An ``alert.*`` event (Bakong unreachable, token expired, quota spent, endpoint disabled)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class _Changed(Message):
    """Something a screen shows changed; only the fact matters, so any newer one replaces it."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return type(message) is type(self)


class WebhooksChanged(_Changed):
    """A webhook endpoint or delivery changed."""


class SubscriptionsChanged(_Changed):
    """A subscription, plan or subscription invoice changed."""


class AuditChanged(_Changed):
    """Something was done (every change writes an audit row beside its event)."""
