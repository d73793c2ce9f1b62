"""The plan catalogue: add, sync with the config, list, read, change and archive plans.

A plan's price is given in major units ("5.00" USD, "20000" KHR) and kept in minor units; its
code is its name for good. A change to a plan never touches a period already running: renewals
billed and subscriptions created afterwards take the new terms. An archived plan takes no new
subscriptions or changes; those on it keep renewing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from engine.config import PlanSeed, SubscriptionSettings
from engine.db import subscriptions as repo
from engine.db.storage import Storage, Tx
from engine.errors import Conflict, InvalidInput, NotFound
from engine.money import check_currency, parse_amount, to_major, to_minor
from engine.records import Actor, Plan

__all__ = ["MAX_CYCLE_DAYS", "MAX_TRIAL_DAYS", "PlanCatalogue"]

_PLAN_CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_CYCLE_DAYS = 3660
MAX_TRIAL_DAYS = 3660


class PlanCatalogue:
    """The plans subscriptions are billed on."""

    def __init__(self, storage: Storage, terms: SubscriptionSettings) -> None:
        self.storage = storage
        self.terms = terms

    async def add(
        self,
        code: str,
        name: str,
        price: Decimal | int | str,
        currency: str,
        cycle_days: int | None = None,
        trial_days: int = 0,
        *,
        actor: Actor,
    ) -> Plan:
        """A new plan; ``price`` in major units ("5.00" USD, "20000" KHR), per cycle."""
        code = _clean_code(code)
        name = _clean_name(name)
        currency = check_currency(currency)
        price_minor = _price_minor(price, currency)
        cycle = _days(self.terms.cycle_days if cycle_days is None else cycle_days, "cycle_days", 1, MAX_CYCLE_DAYS)
        trial = _days(trial_days, "trial_days", 0, MAX_TRIAL_DAYS)
        async with self.storage.transaction() as tx:
            return await repo.insert_plan(
                tx, actor=actor, code=code, name=name, price_minor=price_minor, currency=currency, cycle_days=cycle, trial_days=trial
            )

    async def sync(self, seeds: Sequence[PlanSeed], *, actor: Actor) -> dict[str, str]:
        """Bring the plans named in the config in step with it: each code is "added", "updated"
        or "unchanged". A plan whose currency differs from its seed is refused (its running
        subscriptions were billed in it); nothing is archived or deleted."""
        done: dict[str, str] = {}
        for seed in seeds:
            code = _clean_code(seed.code)
            cycle = seed.cycle_days or None
            try:
                plan = await self.get(code)
            except NotFound:
                try:
                    await self.add(code, seed.name, seed.price, seed.currency, cycle, seed.trial_days, actor=actor)
                    done[code] = "added"
                    continue
                except Conflict:  # another process added it first: compare with theirs
                    plan = await self.get(code)
            if plan.currency != check_currency(seed.currency):
                raise InvalidInput(
                    f"plan {code} is priced in {plan.currency}; the config says {seed.currency}: "
                    "add a plan with a new code instead",
                    field="subscriptions.plans",
                )
            wanted = {
                "name": _clean_name(seed.name),
                "price_minor": _price_minor(seed.price, plan.currency),
                "cycle_days": cycle or self.terms.cycle_days,
                "trial_days": seed.trial_days,
            }
            current = {"name": plan.name, "price_minor": plan.price_minor, "cycle_days": plan.cycle_days, "trial_days": plan.trial_days}
            if wanted == current:
                done[code] = "unchanged"
                continue
            await self.update(
                code, actor=actor, name=wanted["name"], price=to_major(wanted["price_minor"], plan.currency),
                cycle_days=wanted["cycle_days"], trial_days=wanted["trial_days"],
            )  # fmt: skip
            done[code] = "updated"
        return done

    async def list(self, *, include_archived: bool = False) -> list[Plan]:
        async with self.storage.read() as tx:
            return await repo.list_plans(tx, include_archived=include_archived)

    async def get(self, code: str) -> Plan:
        async with self.storage.read() as tx:
            return await repo.get_plan_by_code(tx, str(code).strip())

    async def update(
        self,
        code: str,
        *,
        actor: Actor,
        name: str | None = None,
        price: Decimal | int | str | None = None,
        cycle_days: int | None = None,
        trial_days: int | None = None,
    ) -> Plan:
        """Change a plan. Running periods keep their price and length; renewals billed from now on
        and new subscriptions take the new terms."""
        async with self.storage.transaction() as tx:
            plan = await repo.get_plan_by_code(tx, str(code).strip())
            changes: dict[str, Any] = {}
            if name is not None:
                changes["name"] = _clean_name(name)
            if price is not None:
                changes["price_minor"] = _price_minor(price, plan.currency)
            if cycle_days is not None:
                changes["cycle_days"] = _days(cycle_days, "cycle_days", 1, MAX_CYCLE_DAYS)
            if trial_days is not None:
                changes["trial_days"] = _days(trial_days, "trial_days", 0, MAX_TRIAL_DAYS)
            if not changes:
                raise InvalidInput("nothing to change: give a name, price, cycle_days or trial_days", field="plan")
            return await repo.update_plan(tx, plan.code, actor=actor, changes=changes)

    async def archive(self, code: str, *, actor: Actor) -> Plan:
        """No new subscriptions or changes to this plan; existing subscriptions keep renewing on it."""
        async with self.storage.transaction() as tx:
            return await repo.archive_plan(tx, str(code).strip(), actor=actor)

    async def usable(self, tx: Tx, code: str) -> Plan:
        """The plan a subscription may be created on or moved to (not archived)."""
        plan = await repo.get_plan_by_code(tx, str(code or "").strip())
        if plan.archived_at is not None:
            raise InvalidInput(f"plan {plan.code!r} is archived", field="plan")
        return plan


def _clean_code(code: str) -> str:
    text = str(code or "").strip()
    if not _PLAN_CODE.match(text):
        raise InvalidInput(
            f"plan code {code!r} must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="code",
        )
    return text


def _clean_name(name: str) -> str:
    text = str(name or "").strip()
    if not text:
        raise InvalidInput("plan name is required", field="name")
    if len(text) > 128 or any(ord(c) < 32 for c in text):
        raise InvalidInput("plan name must be at most 128 printable characters", field="name")
    return text


def _price_minor(price: Decimal | int | str, currency: str) -> int:
    if isinstance(price, float):
        raise InvalidInput("price must be exact (a decimal string), not a float", field="price")
    try:
        minor = parse_amount(price, currency) if isinstance(price, str) else to_minor(price, currency)
    except InvalidInput as exc:
        raise InvalidInput(exc.message.replace("amount", "price"), field="price") from None
    if minor <= 0:
        raise InvalidInput("price must be greater than zero", field="price")
    return minor


def _days(value: int, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a whole number of days", field=field)
    if not low <= value <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}", field=field)
    return value
