"""Plans, subscriptions and subscription invoices in the database.

One import for the services and the renewer (``from engine.db import subscriptions as repo``);
each part lives in the module that owns it:

- ``conversions`` — rows into records; plan, subscription and invoice data for audit rows and events;
- ``plans`` — the plan catalogue;
- ``rows`` — subscription rows: create, ``transition`` (the one way they change), history, search;
- ``invoices`` — invoices (unique per subscription, kind and period start) and their KHQR payments;
- ``renewals`` — the renewer's batch reads and its batch insert of renewal invoices.
"""

from __future__ import annotations

# One namespace made of the modules' public names, as asyncio builds its own.
from engine.db.subscriptions import conversions, invoices, plans, renewals, rows
from engine.db.subscriptions.conversions import *  # noqa: F403
from engine.db.subscriptions.invoices import *  # noqa: F403
from engine.db.subscriptions.plans import *  # noqa: F403
from engine.db.subscriptions.renewals import *  # noqa: F403
from engine.db.subscriptions.rows import *  # noqa: F403

__all__ = [*conversions.__all__, *invoices.__all__, *plans.__all__, *renewals.__all__, *rows.__all__]
