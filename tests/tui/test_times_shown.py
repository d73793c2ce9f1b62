"""The console writes times as Phnom Penh time labelled +07 (the shared ``bakong_console.times``):
a payment's detail and an alert's start, on SQLite and PostgreSQL."""

from __future__ import annotations

from textual.widgets import Static

from bakong_console.tui.screens.detail import PaymentDetailScreen
from bakong_console.tui.state import Alert
from bakong_console.tui.widgets.alerts import AlertBar
from engine.clock import ManualClock
from engine.runtime import Engine
from tests.tui.conftest import OPERATOR, console_app, quiet, shown, wait_until


async def test_the_detail_and_the_alert_line_label_their_times(engine: Engine, clock: ManualClock) -> None:
    # 03:00 UTC is 10:00 in Phnom Penh.
    await engine.payments.initiate("2500", "KHR", actor=OPERATOR, reference="table-1")
    app = console_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await quiet(pilot, engine)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PaymentDetailScreen), what="the detail screen")
        detail = app.screen
        await quiet(pilot)
        fields = shown(detail.query_one("#detail-fields", Static))
        assert "2026-01-15 10:00:00 +07 by cli:sokha" in fields
        assert "Expires            2026-01-15 10:15:00 +07" in fields
        timeline = shown(detail.query_one("#detail-timeline", Static))
        assert "2026-01-15 10:00:00 +07" in timeline

        app.set_alert(Alert("bakong", "Bakong: connection timed out", "error", clock.now()))
        await pilot.pause()
        assert "Bakong: connection timed out (10:00:00 +07)" in str(detail.query_one(AlertBar).render())
