"""The filter lines of the audit log and the subscriptions screen: ``/`` focuses the line, Enter
reads the table through it, a mistake is shown under the line (the table stays as it was),
Escape clears both. And the times the console reads: spans and ISO instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from textual.widgets import DataTable, Input, Static

from bakong_console.tui.screens.audit import AuditScreen
from bakong_console.tui.screens.subscriptions import SubscriptionsScreen
from bakong_console.tui.time_input import parse_instant, parse_span
from engine.runtime import Engine
from tests.tui.conftest import OPERATOR, console_app, quiet, shown


async def test_the_audit_filter_line(snapshot_engine: Engine) -> None:
    # The console's own logic over the audit log: one database is enough.
    engine = snapshot_engine
    kept = (await engine.payments.initiate("1000", "KHR", actor=OPERATOR, reference="kept")).payment
    gone = (await engine.payments.initiate("2000", "KHR", actor=OPERATOR, reference="gone")).payment
    await engine.payments.cancel(gone.id, actor=OPERATOR, reason="customer left")
    everything = len(await engine.audit.list(limit=200))
    about_gone = [e.id for e in await engine.audit.list(subject_id=gone.id)]
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await app.switch_mode("audit")
        await quiet(pilot, engine)
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        table = screen.query_one(DataTable)
        error = screen.query_one("#audit-filter-error", Static)
        assert table.row_count == everything > 1

        await pilot.press("slash", *f"subject:{gone.id}", "enter")
        await quiet(pilot)
        assert [e.id for e in screen.entries] == about_gone and table.row_count == len(about_gone) >= 2
        assert table.has_focus and shown(error) == ""

        # A mistake: said under the line, the table as it was.
        await pilot.press("slash", "ctrl+u", *"colour:red", "enter")
        await quiet(pilot)
        assert shown(error) == "unknown filter 'colour': use action:, actor: or subject:"
        assert screen.filter == {"subject_id": gone.id} and table.row_count == len(about_gone)

        await pilot.press("escape")
        await quiet(pilot)
        assert screen.query_one("#audit-filter", Input).value == "" and shown(error) == ""
        assert table.row_count == everything and table.has_focus
        assert {e.subject_id for e in screen.entries} >= {kept.id, gone.id}


async def test_the_subscriptions_filter_line(snapshot_engine: Engine) -> None:
    engine = snapshot_engine
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await app.switch_mode("subscriptions")
        await quiet(pilot, engine)
        screen = app.screen
        assert isinstance(screen, SubscriptionsScreen)
        error = screen.query_one("#subscriptions-filter-error", Static)

        await pilot.press("slash", *"ends:soon", "enter")
        await quiet(pilot)
        assert shown(error) == "ends:soon is neither a duration (7d, 12h) nor a date (2026-02-01)"
        assert screen.criteria == {}

        await pilot.press("ctrl+u", *"plan:gold ends:7d", "enter")
        await quiet(pilot)
        assert shown(error) == ""
        assert screen.criteria == {"plan": "gold", "period_end_before": engine.clock.now() + timedelta(days=7)}
        assert screen.query_one(DataTable).has_focus

        await pilot.press("escape")
        await quiet(pilot)
        assert screen.criteria == {} and screen.query_one("#subscriptions-filter", Input).value == ""


@pytest.mark.parametrize(
    ("text", "span"),
    [("30m", timedelta(minutes=30)), ("12h", timedelta(hours=12)), ("7D", timedelta(days=7)), ("7", None), ("d", None), ("", None), ("1.5h", None)],
)
def test_spans(text: str, span: timedelta | None) -> None:
    assert parse_span(text) == span


def test_instants() -> None:
    assert parse_instant("2026-01-15T01:02:03Z") == datetime(2026, 1, 15, 1, 2, 3, tzinfo=UTC)
    assert parse_instant("2026-01-15T08:00+07:00") == datetime(2026, 1, 15, 1, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_instant("last week")
