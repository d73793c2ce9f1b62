"""The plan catalogue subscription tests sell on, added in the order a test names them (the
order fixes the seeded ids of everything created after)."""

from __future__ import annotations

from collections.abc import Iterable

from engine.records import Actor, Plan
from engine.runtime import Engine

# code: (name, price in major units, currency, cycle days, trial days)
PLANS: dict[str, tuple[str, str, str, int, int]] = {
    "basic": ("Basic", "20000", "KHR", 30, 0),
    "pro": ("Pro", "50000", "KHR", 30, 0),
    "max": ("Max", "80000", "KHR", 30, 0),
    "trial": ("Basic with trial", "20000", "KHR", 30, 7),
    "usd": ("Dollar plan", "5.00", "USD", 30, 0),
    "weekly": ("Weekly", "5000", "KHR", 7, 0),
}


async def add_plans(engine: Engine, actor: Actor, codes: Iterable[str] = ("basic", "pro", "trial", "usd")) -> dict[str, Plan]:
    """Add the named plans from the catalogue, one after another, as ``actor``."""
    return {code: await engine.subscriptions.add_plan(code, *PLANS[code], actor=actor) for code in codes}
