"""The HTTP API that the main backend calls: payments, subscriptions, events, health, metrics.

Build it with ``create_app(engine)`` on an open engine; see ``bakong_console.api.app``.
"""

from bakong_console.api.app import ApiContext, create_app

__all__ = ["ApiContext", "create_app"]
