"""SubscriptionService rules, driven pass by pass: the renewer is run by hand and KHQRs are
settled with ``mark_paid`` on the manual clock. Every test on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from engine import events as ev
from engine.clock import ManualClock
from engine.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from engine.records import PaymentStatus, Plan, SubscriptionStatus as S
from engine.runtime import Engine
from engine.workers.renewer import Renewer
from tests.subscriptions.conftest import BACKEND, OPERATOR, event_types, mark_paid, subscribe_paid
from tests.support.engine import events_for

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


async def renew(engine: Engine) -> Renewer:
    """One renewer pass (and its follow-ups while it asks for more)."""
    renewer = Renewer(engine.subscriptions)
    while await renewer.run_once() == 0.0:
        pass
    return renewer


async def active(engine: Engine, user: str, plan: str) -> str:
    """A subscription whose first payment is made: ACTIVE."""
    await subscribe_paid(engine, user, plan)
    await renew(engine)
    view = await engine.subscriptions.status(user)
    assert view.status is S.ACTIVE
    return view.id


# --- plans ---------------------------------------------------------------------------------------


async def test_plans_add_list_update_archive(quiet_engine: Engine) -> None:
    subs = quiet_engine.subscriptions
    plan = await subs.add_plan("gold", "Gold", "12.50", "USD", None, 14, actor=OPERATOR)
    assert (plan.price_minor, plan.currency, plan.cycle_days, plan.trial_days) == (1250, "USD", 30, 14)
    assert plan.display_price == "12.50 USD"
    with pytest.raises(Conflict):
        await subs.add_plan("gold", "Gold again", "1", "USD", actor=OPERATOR)
    updated = await subs.update_plan("gold", actor=OPERATOR, price="15", name="Gold+")
    assert (updated.price_minor, updated.name) == (1500, "Gold+")
    archived = await subs.archive_plan("gold", actor=OPERATOR)
    assert archived.archived_at is not None
    assert [p.code for p in await subs.list_plans()] == []
    assert [p.code for p in await subs.list_plans(include_archived=True)] == ["gold"]
    with pytest.raises(InvalidInput) as err:
        await subs.create("user-1", "gold", BACKEND)
    assert err.value.field == "plan"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("Bad Code", "x", "1", "KHR"), "code"),
        (("ok", "", "1", "KHR"), "name"),
        (("ok", "x", "0", "KHR"), "price"),
        (("ok", "x", "1.5", "KHR"), "price"),  # whole riel
        (("ok", "x", "1.005", "USD"), "price"),
        (("ok", "x", 1.5, "USD"), "price"),  # floats are refused
        (("ok", "x", "1", "EUR"), "currency"),
        (("ok", "x", "1", "KHR", 0), "cycle_days"),
        (("ok", "x", "1", "KHR", 30, -1), "trial_days"),
    ],
)
async def test_plan_input_is_validated(quiet_engine: Engine, args: tuple, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        await quiet_engine.subscriptions.add_plan(*args, actor=OPERATOR)
    assert err.value.field == field


# --- create, status ------------------------------------------------------------------------------


async def test_create_issues_the_first_invoice_and_activates_when_paid(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    view = await subs.create("user-1", "basic", BACKEND)
    assert view.status is S.INCOMPLETE and not view.has_access
    assert view.period_start is None and view.subscription.incomplete_until == clock.now() + 24 * HOUR
    (item,) = view.open_invoices
    assert item.invoice.kind == "initial" and item.payment is not None
    payment = item.payment
    assert (payment.amount_minor, payment.currency, payment.subscription_id, payment.invoice_id) == (20_000, "KHR", view.id, item.invoice.id)
    assert payment.idempotency_key == f"invoice:{item.invoice.id}"
    assert payment.expires_at == clock.now() + 24 * HOUR, "the first KHQR lasts the whole window"

    with pytest.raises(Conflict):
        await subs.create("user-1", "pro", BACKEND)

    clock.advance(3600)
    await mark_paid(quiet_engine, payment.id)
    paid_at = (await quiet_engine.payments.get(payment.id)).paid_at
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert view.status is S.ACTIVE and view.has_access
    assert (view.period_start, view.period_end) == (paid_at, paid_at + 30 * DAY), "the first period starts when paid"
    assert await event_types(quiet_engine, view.id) == [ev.SUBSCRIPTION_CREATED, ev.SUBSCRIPTION_ACTIVATED]
    assert [(h.from_status, h.to_status) for h in await subs.history(view.id)] == [(None, "INCOMPLETE"), ("INCOMPLETE", "ACTIVE")]


async def test_unpaid_incomplete_expires_after_the_window(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    view = await subs.create("user-1", "basic", BACKEND)
    clock.advance(23 * 3600)
    await renew(quiet_engine)
    assert (await subs.status("user-1")).status is S.INCOMPLETE
    clock.advance(2 * 3600)  # the window and its KHQR both ended an hour ago
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert view.status is S.EXPIRED and view.open_invoices == ()
    assert (await subs.invoices(view.id))[0].invoice.status == "VOID"
    # a new subscription is possible now
    assert (await subs.create("user-1", "basic", BACKEND)).status is S.INCOMPLETE


async def test_status_and_validation_errors(quiet_engine: Engine, quiet_plans: dict[str, Plan]) -> None:
    subs = quiet_engine.subscriptions
    with pytest.raises(NotFound):
        await subs.status("nobody")
    with pytest.raises(NotFound):
        await subs.create("user-1", "nope", BACKEND)
    for bad in ("", " ", "x" * 101, "a\nb"):
        with pytest.raises(InvalidInput) as err:
            await subs.create(bad, "basic", BACKEND)
        assert err.value.field == "user_id"
    with pytest.raises(NotFound):
        await subs.upgrade("nobody", "pro", BACKEND)


# --- upgrade -------------------------------------------------------------------------------------


async def test_preview_creates_nothing_and_upgrade_applies_only_when_paid(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    sub_id = await active(quiet_engine, "user-1", "basic")
    start = (await subs.status("user-1")).period_start
    assert start is not None
    clock.set(start + 20 * DAY)  # 10 of 30 days left: 30000 / 3 = 10000
    before = await events_for(quiet_engine, sub_id)
    quote = await subs.preview_upgrade("user-1", "pro")
    assert (quote.from_plan, quote.to_plan, quote.amount_minor, quote.currency) == ("basic", "pro", 10_000, "KHR")
    assert quote.display_amount == "10,000 KHR"
    assert await events_for(quiet_engine, sub_id) == before
    assert len(await subs.invoices(sub_id)) == 1

    change = await subs.upgrade("user-1", "pro", BACKEND)
    assert not change.applied and change.invoice is not None and change.payment is not None
    assert change.payment.amount_minor == 10_000
    assert change.payment.expires_at <= start + 30 * DAY
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert view.plan.code == "basic" and view.pending_change == "upgrade"

    # a second upgrade replaces the first: its invoice is voided and its KHQR cancelled
    second = await subs.upgrade("user-1", "max", BACKEND)
    assert second.payment is not None and second.payment.amount_minor == 20_000
    assert (await quiet_engine.payments.get(change.payment.id)).status is PaymentStatus.CANCELLED
    await mark_paid(quiet_engine, second.payment.id)
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert (view.plan.code, view.subscription.price_minor, view.pending_change) == ("max", 80_000, None)
    assert (view.period_start, view.period_end) == (start, start + 30 * DAY)
    types = await event_types(quiet_engine, sub_id)
    assert types.count(ev.SUBSCRIPTION_UPGRADE_PENDING) == 2 and types.count(ev.SUBSCRIPTION_UPGRADED) == 1


async def test_the_voided_upgrade_khqr_paid_anyway_goes_to_review_and_changes_no_plan(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    await active(quiet_engine, "user-1", "basic")
    first = await subs.upgrade("user-1", "pro", BACKEND)
    second = await subs.upgrade("user-1", "max", BACKEND)  # e.g. a client retry with another plan
    assert first.payment is not None and second.payment is not None
    voided = await quiet_engine.payments.get(first.payment.id)
    assert voided.status is PaymentStatus.CANCELLED and voided.late_watch_until is not None and voided.next_check_at
    assert quiet_engine.sandbox is not None
    await quiet_engine.sandbox.pay(qr=first.payment.khqr)
    found, _ = await quiet_engine.payments.check_now(first.payment.id, actor=OPERATOR)
    assert found.status is PaymentStatus.NEEDS_REVIEW
    assert [e.type for e in await events_for(quiet_engine, first.payment.id)][-2:] == [
        ev.PAYMENT_NEEDS_REVIEW, ev.ALERT_PAID_AFTER_CANCEL,
    ]  # fmt: skip
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert (view.plan.code, view.pending_change, view.pending_plan.code) == ("basic", "upgrade", "max")


@pytest.mark.parametrize(
    ("plan", "error", "field"),
    [
        ("basic", InvalidInput, "plan"),  # the current plan
        ("usd", InvalidInput, "plan"),  # another currency
        ("weekly", InvalidInput, "plan"),  # another cycle length (and cheaper)
        ("trial", InvalidInput, "plan"),  # same price is fine... but it is the same price: see below
    ],
)
async def test_upgrade_refusals(
    quiet_engine: Engine, quiet_plans: dict[str, Plan], plan: str, error: type, field: str
) -> None:
    await active(quiet_engine, "user-1", "basic")
    if plan == "trial":
        # an equal price costs nothing: applied at once
        change = await quiet_engine.subscriptions.upgrade("user-1", "trial", BACKEND)
        assert change.applied and change.quote.amount_minor == 0 and change.view.plan.code == "trial"
        return
    with pytest.raises(error) as err:
        await quiet_engine.subscriptions.preview_upgrade("user-1", plan)
    assert err.value.field == field


async def test_upgrade_to_a_cheaper_plan_is_refused(quiet_engine: Engine, quiet_plans: dict[str, Plan]) -> None:
    await active(quiet_engine, "user-1", "pro")
    with pytest.raises(InvalidInput, match="use downgrade"):
        await quiet_engine.subscriptions.upgrade("user-1", "basic", BACKEND)


async def test_upgrade_refused_once_the_next_period_is_paid(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    await active(quiet_engine, "user-1", "basic")
    end = (await subs.status("user-1")).period_end
    assert end is not None
    clock.set(end - 2 * DAY)
    await renew(quiet_engine)
    renewal = (await subs.status("user-1")).open_invoice("renewal")
    assert renewal is not None and renewal.payment is not None
    await mark_paid(quiet_engine, renewal.payment.id)
    await renew(quiet_engine)
    with pytest.raises(Conflict, match="already paid"):
        await subs.upgrade("user-1", "pro", BACKEND)


async def test_unpaid_upgrade_lapses_at_period_end(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    sub_id = await active(quiet_engine, "user-1", "basic")
    end = (await subs.status("user-1")).period_end
    assert end is not None
    clock.set(end - 10 * DAY)
    change = await subs.upgrade("user-1", "pro", BACKEND)
    clock.set(end - DAY)
    await renew(quiet_engine)
    renewal = (await subs.status("user-1")).open_invoice("renewal")
    assert renewal is not None and renewal.payment is not None
    await mark_paid(quiet_engine, renewal.payment.id)
    clock.set(end + HOUR)
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert (view.status, view.plan.code, view.pending_change) == (S.ACTIVE, "basic", None)
    assert change.invoice is not None
    assert [i.invoice.status for i in await subs.invoices(sub_id) if i.invoice.kind == "upgrade"] == ["VOID"]
    assert ev.SUBSCRIPTION_UPGRADE_WITHDRAWN in await event_types(quiet_engine, sub_id)


# --- downgrade, withdraw -------------------------------------------------------------------------


async def test_downgrade_reprices_an_open_renewal_with_a_fresh_khqr(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    sub_id = await active(quiet_engine, "user-1", "pro")
    end = (await subs.status("user-1")).period_end
    assert end is not None
    clock.set(end - 2 * DAY)
    await renew(quiet_engine)
    old = (await subs.status("user-1")).open_invoice("renewal")
    assert old is not None and old.payment is not None and old.invoice.amount_minor == 50_000

    view = await subs.downgrade("user-1", "basic", BACKEND)
    assert view.pending_change == "downgrade" and view.subscription.pending_change_at == end
    new = view.open_invoice("renewal")
    assert new is not None and new.payment is not None
    assert new.invoice.id == old.invoice.id and new.invoice.amount_minor == 20_000
    assert new.payment.amount_minor == 20_000 and new.payment.id != old.payment.id
    assert new.payment.idempotency_key == f"invoice:{old.invoice.id}:after:{old.payment.id}"
    assert (await quiet_engine.payments.get(old.payment.id)).status is PaymentStatus.CANCELLED
    due = [e for e in await events_for(quiet_engine, sub_id) if e.type == ev.SUBSCRIPTION_RENEWAL_DUE]
    assert [e.payload["invoice"]["amount_minor"] for e in due] == [50_000, 20_000]

    # withdrawn: back to the current plan's price, again with a fresh KHQR
    view = await subs.withdraw_change("user-1", BACKEND)
    again = view.open_invoice("renewal")
    assert view.pending_change is None and again is not None and again.payment is not None
    assert again.invoice.amount_minor == 50_000 and again.payment.id not in (old.payment.id, new.payment.id)
    with pytest.raises(InvalidTransition):
        await subs.withdraw_change("user-1", BACKEND)
    types = await event_types(quiet_engine, sub_id)
    assert ev.SUBSCRIPTION_DOWNGRADE_SCHEDULED in types and ev.SUBSCRIPTION_DOWNGRADE_WITHDRAWN in types


async def test_downgrade_replaces_a_pending_upgrade_and_vice_versa(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    await active(quiet_engine, "user-1", "pro")
    change = await subs.upgrade("user-1", "max", BACKEND)
    assert change.payment is not None
    view = await subs.downgrade("user-1", "basic", BACKEND)
    assert (view.pending_change, view.pending_plan.code) == ("downgrade", "basic")
    assert (await quiet_engine.payments.get(change.payment.id)).status is PaymentStatus.CANCELLED
    assert view.open_invoice("upgrade") is None
    change = await subs.upgrade("user-1", "max", BACKEND)
    view = await subs.status("user-1")
    assert (view.pending_change, view.pending_plan.code) == ("upgrade", "max")
    with pytest.raises(InvalidInput, match="use upgrade"):
        await subs.downgrade("user-1", "max", BACKEND)


async def test_downgrade_after_the_next_period_is_paid_waits_for_its_end(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    await active(quiet_engine, "user-1", "pro")
    end = (await subs.status("user-1")).period_end
    assert end is not None
    clock.set(end - DAY)
    await renew(quiet_engine)
    renewal = (await subs.status("user-1")).open_invoice("renewal")
    assert renewal is not None and renewal.payment is not None
    await mark_paid(quiet_engine, renewal.payment.id)
    await renew(quiet_engine)
    view = await subs.downgrade("user-1", "basic", BACKEND)
    assert view.subscription.pending_change_at == end + 30 * DAY
    clock.set(end + HOUR)
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert (view.plan.code, view.pending_change) == ("pro", "downgrade")
    clock.set(end + 28 * DAY)
    await renew(quiet_engine)
    nxt = (await subs.status("user-1")).open_invoice("renewal")
    assert nxt is not None and nxt.invoice.amount_minor == 20_000
    await mark_paid(quiet_engine, nxt.payment.id)  # type: ignore[union-attr]
    clock.set(end + 30 * DAY + HOUR)
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert (view.plan.code, view.subscription.price_minor, view.pending_change) == ("basic", 20_000, None)


# --- cancel, resume ------------------------------------------------------------------------------


async def test_cancel_at_period_end_then_resume_reopens_the_renewal(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    sub_id = await active(quiet_engine, "user-1", "basic")
    end = (await subs.status("user-1")).period_end
    assert end is not None
    clock.set(end - 2 * DAY)
    await renew(quiet_engine)
    renewal = (await subs.status("user-1")).open_invoice("renewal")
    assert renewal is not None and renewal.payment is not None

    view = await subs.cancel("user-1", BACKEND, reason="too expensive")
    assert view.status is S.ACTIVE and view.subscription.cancel_at_period_end
    assert view.subscription.cancel_reason == "too expensive" and view.open_invoices == ()
    assert (await quiet_engine.payments.get(renewal.payment.id)).status is PaymentStatus.CANCELLED
    assert (await subs.cancel("user-1", BACKEND)).subscription.cancel_at_period_end, "cancelling twice is harmless"
    with pytest.raises(InvalidTransition):
        await subs.downgrade("user-1", "basic", BACKEND)

    view = await subs.resume("user-1", BACKEND)
    assert not view.subscription.cancel_at_period_end
    reopened = view.open_invoice("renewal")
    assert reopened is not None and reopened.payment is not None
    assert reopened.invoice.id == renewal.invoice.id and reopened.payment.status is PaymentStatus.PENDING
    assert reopened.payment.id != renewal.payment.id
    with pytest.raises(InvalidTransition):
        await subs.resume("user-1", BACKEND)

    # cancelled again, and this time the period ends: CANCELLED at the period end
    await subs.cancel("user-1", BACKEND, reason="moving away")
    clock.set(end + HOUR)
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert view.status is S.CANCELLED and view.subscription.cancelled_at == end and not view.has_access
    types = await event_types(quiet_engine, sub_id)
    assert Counter(types)[ev.SUBSCRIPTION_CANCEL_SCHEDULED] == 2
    assert types[-1] == ev.SUBSCRIPTION_CANCELLED and ev.SUBSCRIPTION_RESUMED in types


async def test_cancel_now(quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]) -> None:
    subs = quiet_engine.subscriptions
    await active(quiet_engine, "user-1", "basic")
    change = await subs.upgrade("user-1", "pro", BACKEND)
    clock.advance(60)
    view = await subs.cancel("user-1", BACKEND, at_period_end=False, reason="fraud")
    assert view.status is S.CANCELLED and view.subscription.cancelled_at == clock.now()
    assert view.subscription.cancel_reason == "fraud" and view.open_invoices == ()
    assert (await quiet_engine.payments.get(change.payment.id)).status is PaymentStatus.CANCELLED  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await subs.cancel("user-1", BACKEND)


async def test_cancelling_an_incomplete_subscription_ends_it_now(quiet_engine: Engine, quiet_plans: dict[str, Plan]) -> None:
    view = await quiet_engine.subscriptions.create("user-1", "basic", BACKEND)
    view = await quiet_engine.subscriptions.cancel("user-1", BACKEND)
    assert view.status is S.CANCELLED


# --- renewal -------------------------------------------------------------------------------------


async def test_plan_price_change_keeps_running_periods(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    await active(quiet_engine, "user-1", "basic")
    await subs.update_plan("basic", actor=OPERATOR, price="25000")
    view = await subs.status("user-1")
    assert view.subscription.price_minor == 20_000, "the running period keeps its price"
    assert view.period_end is not None
    clock.set(view.period_end - DAY)
    await renew(quiet_engine)
    renewal = (await subs.status("user-1")).open_invoice("renewal")
    assert renewal is not None and renewal.invoice.amount_minor == 25_000, "the next period takes the new price"


async def test_past_due_paid_during_grace_renews_from_the_old_period_end(
    quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]
) -> None:
    subs = quiet_engine.subscriptions
    sub_id = await active(quiet_engine, "user-1", "basic")
    end = (await subs.status("user-1")).period_end
    assert end is not None
    clock.set(end + HOUR)
    await renew(quiet_engine)  # bills and, the period being over, marks it PAST_DUE
    view = await subs.status("user-1")
    assert view.status is S.PAST_DUE and view.subscription.grace_until == end + 7 * DAY
    item = view.open_invoice("renewal")
    assert item is not None and item.payment is not None
    assert item.payment.expires_at <= end + 7 * DAY
    clock.set(end + 3 * DAY)
    await mark_paid(quiet_engine, item.payment.id)
    await renew(quiet_engine)
    view = await subs.status("user-1")
    assert view.status is S.ACTIVE
    assert (view.period_start, view.period_end) == (end, end + 30 * DAY), "not from when it was paid"
    assert view.subscription.grace_until is None
    types = await event_types(quiet_engine, sub_id)
    assert types[-2:] == [ev.SUBSCRIPTION_PAST_DUE, ev.SUBSCRIPTION_RENEWED]


# --- list ----------------------------------------------------------------------------------------


async def test_list_filters_and_pages(quiet_engine: Engine, clock: ManualClock, quiet_plans: dict[str, Plan]) -> None:
    subs = quiet_engine.subscriptions
    for n in range(5):
        await active(quiet_engine, f"user-{n}", "basic" if n % 2 else "pro")
        clock.advance(60)
    await subs.create("user-9", "basic", BACKEND)
    page, cursor = await subs.list(limit=4)
    assert [v.user_id for v in page] == ["user-9", "user-4", "user-3", "user-2"] and cursor
    rest, end = await subs.list(limit=4, cursor=cursor)
    assert [v.user_id for v in rest] == ["user-1", "user-0"] and end is None
    assert [v.user_id for v in (await subs.list(status="incomplete"))[0]] == ["user-9"]
    assert {v.user_id for v in (await subs.list(plan="pro"))[0]} == {"user-0", "user-2", "user-4"}
    first_end = min(v.period_end for v in page + rest if v.period_end)
    assert [v.user_id for v in (await subs.list(period_end_before=first_end + timedelta(seconds=1)))[0]] == ["user-0"]
    (incomplete,) = (await subs.list(status=S.INCOMPLETE))[0]
    assert incomplete.open_invoice("initial") is not None
    with pytest.raises(InvalidInput):
        await subs.list(status="nope")
    with pytest.raises(InvalidInput):
        await subs.list(cursor="garbage!")


async def test_plans_from_the_config_are_added_updated_and_kept_in_step(engine_settings, clock: ManualClock) -> None:  # noqa: ANN001
    from dataclasses import replace

    from engine.config import PlanSeed
    from tests.support.engine import open_engine

    seeds = [PlanSeed(code="pro", name="Pro", price="9.99"), PlanSeed(code="basic", name="Basic", price="40000", currency="KHR", cycle_days=7)]
    settings = replace(engine_settings, subscriptions=replace(engine_settings.subscriptions, plans=seeds))
    async with open_engine(settings, clock, run_workers=False) as engine:
        plans = {p.code: p for p in await engine.subscriptions.list_plans()}
        assert (plans["pro"].price_minor, plans["pro"].currency, plans["pro"].cycle_days) == (999, "USD", 30)
        assert (plans["basic"].price_minor, plans["basic"].currency, plans["basic"].cycle_days) == (40000, "KHR", 7)
        audit = await engine.audit.list(action="plan.create")
        assert sorted((a.actor_type, a.actor) for a in audit) == [("system", "config"), ("system", "config")]
        # opening again with the same config changes nothing
        assert await engine.subscriptions.sync_plans(seeds, actor=OPERATOR) == {"pro": "unchanged", "basic": "unchanged"}

    seeds[0] = PlanSeed(code="pro", name="Pro+", price="12.50", trial_days=7)
    settings = replace(settings, subscriptions=replace(settings.subscriptions, plans=seeds))
    async with open_engine(settings, clock, run_workers=False) as engine:
        pro = await engine.subscriptions.get_plan("pro")
        assert (pro.name, pro.price_minor, pro.trial_days) == ("Pro+", 1250, 7)
        with pytest.raises(InvalidInput, match="plan basic is priced in KHR; the config says USD"):
            await engine.subscriptions.sync_plans([PlanSeed(code="basic", name="Basic", price="4.00")], actor=OPERATOR)
        assert (await engine.subscriptions.get_plan("basic")).price_minor == 40000
