"""Alerts an operator must not miss: the status bar is on screen (not under the footer) on every
screen that has one, and a token Bakong refused stays alerted until a new token is in use."""

from __future__ import annotations

from textual.widgets import Footer

from bakong_console.tui.widgets.alerts import AlertBar
from engine.clock import ManualClock
from engine.runtime import Engine
from tests.support.engine import run_for
from tests.tui.conftest import OPERATOR, console_app, quiet, shown, wait_until


async def test_the_status_bar_is_above_the_footer_on_every_screen(snapshot_engine: Engine) -> None:
    # Layout only: one database is enough.
    app = console_app(snapshot_engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await quiet(pilot, snapshot_engine)
        for mode in ("board", "cashier", "webhooks", "subscriptions", "audit"):
            await app.switch_mode(mode)
            await pilot.pause()
            screen = app.screen
            bar, footer = screen.query_one(AlertBar), screen.query_one(Footer)
            assert bar.region.height == 1 and footer.region.height == 1, mode
            # Two widgets docked to one edge overlap in Textual: the bar must sit on the footer.
            assert bar.region.bottom == footer.region.y, (mode, bar.region, footer.region)
            assert "No alerts" in shown(bar)


async def test_a_refused_token_stays_alerted_until_a_new_token_is_in_use(snapshot_engine: Engine, clock: ManualClock) -> None:
    # The console's own logic over the poller's state: one database is enough.
    engine = snapshot_engine
    sandbox = engine.sandbox
    assert sandbox is not None
    await engine.payments.initiate("5000", "KHR", actor=OPERATOR, reference="table-1")
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await quiet(pilot, engine)
        # Bakong answers errorCode 6 although the token's own expiry is months away.
        sandbox.faults = sandbox.faults.updated({"token_expired": True})
        await run_for(engine, clock, 6, step=2)  # the next scheduled check meets the refusal
        await wait_until(pilot, lambda: "token" in app.state.alerts, what="the token alert")
        assert engine.poller_state.paused_reason is not None
        assert any(n.title == "Bakong token expired" for n in app._notifications)
        # The header's periodic refresh must not take the alert away while polling is paused.
        app.refresh_status()
        await quiet(pilot, engine)
        assert app.state.alerts["token"].message == "Bakong token expired: polling paused until a new token is set"
        assert app.state.status.token_expired

        # A new token: the poller resumes and the alert clears at the next refresh.
        sandbox.faults = sandbox.faults.updated({"token_expired": False})
        await engine.client.set_token(await sandbox.renew_token())
        engine.poke("poller")
        await quiet(pilot, engine)
        assert engine.poller_state.paused_reason is None
        app.refresh_status()
        await quiet(pilot, engine)
        assert "token" not in app.state.alerts
        assert not app.state.status.token_expired
