"""The whole life of a subscription on the injected clock, across several periods, paid through
the built-in sandbox and found by the poller: trial -> active -> renewal paid -> upgrade
mid-cycle -> downgrade scheduled and applied -> renewal unpaid -> past due -> expired."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from engine import events as ev
from engine.clock import ManualClock
from engine.records import PaymentStatus, Plan, SubscriptionStatus as S
from engine.runtime import Engine
from tests.subscriptions.conftest import BACKEND, advance_to, event_types, pay
from tests.support.engine import events_for

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


async def test_full_lifecycle(engine: Engine, clock: ManualClock, plans: dict[str, Plan]) -> None:
    subs = engine.subscriptions
    t0 = clock.now()

    # --- trial: free for 7 days, no KHQR yet
    view = await subs.create("user-1", "trial", BACKEND)
    assert view.status is S.TRIALING and view.has_access
    assert (view.period_start, view.period_end) == (t0, t0 + 7 * DAY)
    assert view.subscription.trial_end == t0 + 7 * DAY
    assert view.open_invoices == ()
    sub_id = view.id

    # --- the first paid period is billed renewal_lead_days (3) before the trial ends
    await advance_to(engine, clock, t0 + 4 * DAY - HOUR)
    assert (await subs.status("user-1")).open_invoices == ()
    await advance_to(engine, clock, t0 + 4 * DAY + HOUR)
    view = await subs.status("user-1")
    first = view.open_invoice("renewal")
    assert first is not None and first.payment is not None
    assert (first.invoice.period_start, first.invoice.period_end) == (t0 + 7 * DAY, t0 + 37 * DAY)
    assert first.invoice.amount_minor == 20_000 and first.payment.amount_minor == 20_000
    due = [e for e in await events_for(engine, sub_id) if e.type == ev.SUBSCRIPTION_RENEWAL_DUE]
    assert len(due) == 1
    assert due[0].payload["invoice"]["payment"]["khqr"] == first.payment.khqr
    assert due[0].payload["invoice"]["payment"]["md5"] == first.payment.md5
    assert due[0].payload["invoice"]["payment"]["deep_link"]

    # paid ahead of the trial end: still TRIALING until the paid period starts
    await pay(engine, clock, first.payment)
    view = await subs.status("user-1")
    assert view.status is S.TRIALING and view.open_invoices == ()

    # --- trial ends: ACTIVE for the paid period, which starts where the trial ended
    await advance_to(engine, clock, t0 + 7 * DAY + HOUR)
    view = await subs.status("user-1")
    assert view.status is S.ACTIVE
    assert (view.period_start, view.period_end) == (t0 + 7 * DAY, t0 + 37 * DAY)

    # --- renewal paid: the next period starts where the last ended (not when paid)
    await advance_to(engine, clock, t0 + 34 * DAY + HOUR)
    renewal = (await subs.status("user-1")).open_invoice("renewal")
    assert renewal is not None and renewal.payment is not None
    await advance_to(engine, clock, t0 + 35 * DAY)
    await pay(engine, clock, renewal.payment)
    await advance_to(engine, clock, t0 + 37 * DAY + HOUR)
    view = await subs.status("user-1")
    assert view.status is S.ACTIVE
    assert (view.period_start, view.period_end) == (t0 + 37 * DAY, t0 + 67 * DAY)

    # --- upgrade mid-cycle: 19 days 17 hours of 30 left -> 30000 * 1702800 / 2592000 = 19708.3 -> 19708
    await advance_to(engine, clock, t0 + 47 * DAY + 7 * HOUR)
    quote = await subs.preview_upgrade("user-1", "pro")
    assert (quote.remaining_seconds, quote.cycle_seconds, quote.amount_minor) == (1_702_800, 2_592_000, 19_708)
    change = await subs.upgrade("user-1", "pro", BACKEND)
    assert not change.applied and change.invoice is not None and change.payment is not None
    assert change.payment.amount_minor == 19_708 and change.quote.amount_minor == 19_708
    view = await subs.status("user-1")
    assert view.pending_change == "upgrade" and view.plan.code == "trial" and view.pending_plan.code == "pro"
    await pay(engine, clock, change.payment)
    view = await subs.status("user-1")
    assert view.plan.code == "pro" and view.subscription.price_minor == 50_000 and view.pending_change is None
    assert (view.period_start, view.period_end) == (t0 + 37 * DAY, t0 + 67 * DAY), "an upgrade keeps the period"

    # --- downgrade: scheduled for the next period start, billed at the cheaper price, applied then
    view = await subs.downgrade("user-1", "basic", BACKEND)
    assert view.pending_change == "downgrade" and view.subscription.pending_change_at == t0 + 67 * DAY
    assert view.plan.code == "pro"
    await advance_to(engine, clock, t0 + 64 * DAY + HOUR)
    renewal = (await subs.status("user-1")).open_invoice("renewal")
    assert renewal is not None and renewal.payment is not None
    assert renewal.invoice.amount_minor == 20_000 and renewal.invoice.plan_id == plans["basic"].id
    await pay(engine, clock, renewal.payment)
    await advance_to(engine, clock, t0 + 66 * DAY)
    assert (await subs.status("user-1")).plan.code == "pro", "the downgrade waits for the period end"
    await advance_to(engine, clock, t0 + 67 * DAY + HOUR)
    view = await subs.status("user-1")
    assert view.plan.code == "basic" and view.subscription.price_minor == 20_000 and view.pending_change is None
    assert (view.period_start, view.period_end) == (t0 + 67 * DAY, t0 + 97 * DAY)

    # --- renewal unpaid: PAST_DUE at period end (access kept), reminders, EXPIRED at grace end
    await advance_to(engine, clock, t0 + 97 * DAY + HOUR)
    view = await subs.status("user-1")
    assert view.status is S.PAST_DUE and view.has_access
    assert view.subscription.grace_until == t0 + 104 * DAY
    past_due = [e for e in await events_for(engine, sub_id) if e.type == ev.SUBSCRIPTION_PAST_DUE]
    assert len(past_due) == 1
    fresh = past_due[0].payload["invoice"]["payment"]
    assert fresh["khqr"] and fresh["id"] != renewal.payment.id
    # the renewal_due KHQR timed out after a day; the past-due one is live
    assert (await engine.payments.get(fresh["id"])).status is PaymentStatus.PENDING

    await advance_to(engine, clock, t0 + 103 * DAY + 12 * HOUR)
    view = await subs.status("user-1")
    assert view.status is S.PAST_DUE
    reminders = [e for e in await events_for(engine, sub_id) if e.type == ev.SUBSCRIPTION_REMINDER]
    assert len(reminders) == 3  # every 48 hours of the 7-day grace
    assert len({r.payload["invoice"]["payment"]["id"] for r in reminders}) == 3, "a fresh KHQR each time"

    await advance_to(engine, clock, t0 + 104 * DAY + HOUR)
    view = await subs.status("user-1")
    assert view.status is S.EXPIRED and not view.has_access
    assert view.open_invoices == ()

    # --- the record: each change once, in order, with history and audit
    types = await event_types(engine, sub_id)
    counts = Counter(types)
    assert counts[ev.SUBSCRIPTION_RENEWAL_DUE] == 4
    for once in (
        ev.SUBSCRIPTION_TRIAL_STARTED, ev.SUBSCRIPTION_ACTIVATED, ev.SUBSCRIPTION_UPGRADE_PENDING, ev.SUBSCRIPTION_UPGRADED,
        ev.SUBSCRIPTION_DOWNGRADE_SCHEDULED, ev.SUBSCRIPTION_DOWNGRADED, ev.SUBSCRIPTION_PAST_DUE, ev.SUBSCRIPTION_EXPIRED,
    ):  # fmt: skip
        assert counts[once] == 1, (once, types)
    assert counts[ev.SUBSCRIPTION_RENEWED] == 2
    assert types[0] == ev.SUBSCRIPTION_TRIAL_STARTED and types[-1] == ev.SUBSCRIPTION_EXPIRED
    history = [(h.from_status, h.to_status) for h in await subs.history(sub_id)]
    assert history == [
        (None, "TRIALING"), ("TRIALING", "ACTIVE"), ("ACTIVE", "PAST_DUE"), ("PAST_DUE", "EXPIRED"),
    ]  # fmt: skip
    invoices = await subs.invoices(sub_id)
    assert [(i.invoice.kind, i.invoice.status, i.invoice.amount_minor) for i in invoices] == [
        ("renewal", "PAID", 20_000), ("renewal", "PAID", 20_000), ("upgrade", "PAID", 19_708),
        ("renewal", "PAID", 20_000), ("renewal", "VOID", 20_000),
    ]  # fmt: skip
