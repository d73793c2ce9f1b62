"""``PaymentService``: the one object the faces, the workers and the other services call for payments.

Its parts are its base classes, one module each (creation, queries, checks, decisions): a method
is found on the class as before, with no forwarding call in between (``initiate`` is the create
hot path). This module owns only the construction: the storage, settings, clock, Bakong client,
event bus and check schedule the parts share.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.bakong.client import BakongClient
from engine.bus import EventBus
from engine.clock import Clock
from engine.config import Settings
from engine.db.storage import Storage
from engine.services.payments.checks import PaymentChecks
from engine.services.payments.creation import IssuedCodes, PaymentCreation
from engine.services.payments.decisions import PaymentDecisions
from engine.services.payments.queries import PaymentQueries
from engine.services.schedule import Allowance, CheckSchedule
from engine.records import Payment

__all__ = ["PaymentService"]


class PaymentService(PaymentCreation, PaymentQueries, PaymentChecks, PaymentDecisions):
    """Payment use cases: initiate, read and search, check now, monitor, bulk check, cancel, mark paid, resolve."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Clock,
        client: BakongClient,
        bus: EventBus,
        schedule: CheckSchedule,
        allowance: Callable[[], Allowance | None] = lambda: None,
        poke_poller: Callable[[Payment | None], None] = lambda payment: None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.client = client
        self.bus = bus
        self.schedule = schedule
        self.allowance = allowance
        self.poke_poller = poke_poller
        self.issued = IssuedCodes()
