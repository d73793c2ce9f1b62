"""The plan catalogue in the database: add, read, change and archive plans, each change audited.

A plan's code is unique (``Conflict`` on a second one) and never changes; its price, cycle and
trial may, for renewals billed and subscriptions created afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert as sql_insert
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine.db.journal import audit
from engine.db.models import PlanRow
from engine.db.storage import Tx
from engine.db.subscriptions.conversions import plan_event_data, to_plan
from engine.errors import Conflict, NotFound
from engine.records import Actor, Plan

__all__ = ["archive_plan", "get_plan", "get_plan_by_code", "insert_plan", "list_plans", "plans_by_id", "update_plan"]


async def insert_plan(
    tx: Tx, *, actor: Actor, code: str, name: str, price_minor: int, currency: str, cycle_days: int, trial_days: int
) -> Plan:
    values = dict(
        id=tx.ids.new("plan"),
        code=code,
        name=name,
        price_minor=price_minor,
        currency=currency,
        cycle_days=cycle_days,
        trial_days=trial_days,
        created_at=tx.now,
        updated_at=tx.now,
        archived_at=None,
    )
    try:
        async with tx.session.begin_nested():
            await tx.session.execute(sql_insert(PlanRow), values)
    except IntegrityError:
        raise Conflict(f"a plan with code {code!r} already exists") from None
    plan = to_plan(PlanRow(**values))
    await audit(tx, actor, "plan.create", "plan", plan.id, after=plan_event_data(plan))
    return plan


async def get_plan(tx: Tx, plan_id: str) -> Plan:
    row = await tx.session.get(PlanRow, plan_id)
    if row is None:
        raise NotFound(f"no plan {plan_id}")
    return to_plan(row)


async def get_plan_by_code(tx: Tx, code: str) -> Plan:
    row = await tx.session.scalar(select(PlanRow).where(PlanRow.code == code))
    if row is None:
        raise NotFound(f"no plan with code {code!r}")
    return to_plan(row)


async def plans_by_id(tx: Tx, ids: Iterable[str | None]) -> dict[str, Plan]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = (await tx.session.scalars(select(PlanRow).where(PlanRow.id.in_(wanted)))).all()
    return {r.id: to_plan(r) for r in rows}


async def list_plans(tx: Tx, *, include_archived: bool = False) -> list[Plan]:
    stmt = select(PlanRow)
    if not include_archived:
        stmt = stmt.where(PlanRow.archived_at.is_(None))
    rows = (await tx.session.scalars(stmt.order_by(PlanRow.currency, PlanRow.price_minor, PlanRow.code))).all()
    return [to_plan(r) for r in rows]


async def update_plan(tx: Tx, code: str, *, actor: Actor, changes: dict[str, Any], action: str = "plan.update") -> Plan:
    """Change a plan's name, price, cycle or trial (future subscriptions and renewals only)."""
    before = await get_plan_by_code(tx, code)
    await tx.session.execute(
        update(PlanRow)
        .where(PlanRow.id == before.id)
        .values(**changes, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    row = await tx.session.get(PlanRow, before.id, populate_existing=True)
    after = to_plan(row)
    await audit(tx, actor, action, "plan", after.id, before=plan_event_data(before), after=plan_event_data(after))
    return after


async def archive_plan(tx: Tx, code: str, *, actor: Actor) -> Plan:
    plan = await get_plan_by_code(tx, code)
    if plan.archived_at is not None:
        return plan
    return await update_plan(tx, code, actor=actor, changes={"archived_at": tx.now}, action="plan.archive")
