"""The setup screen (Pilot): each answer is checked as it is typed with the reason under its field,
nothing is written while one is wrong, a valid form writes a 0600 file that loads and shows
Bakong's verdict; and one snapshot of the screen as an operator first meets it."""

from __future__ import annotations

import random
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from bakong_console.tui.screens.setup import SetupScreen, field_id
from bakong_console.tui.setup_app import SetupApp
from bakong_console.tui.widgets.khqr_code import KHQRCode
from engine import khqr
from engine.bakong.sandbox import issue_token
from engine.clock import ManualClock
from engine.config import load_settings
from engine.services.setup import SetupSession
from tests.golive.conftest import EMAIL, LiveBakong
from tests.tui.conftest import shown, wait_until, workers_done

SIZE = (120, 40)


def _session(home: Path, **kwargs: Any) -> SetupSession:
    return SetupSession(home / "config" / "bakong-console" / "config.toml", **kwargs)


def _answers(session: SetupSession, bakong: LiveBakong) -> dict[str, str]:
    answers = session.defaults()
    answers.update({"environment": "custom", "base_url": bakong.url, "token": bakong.token, "email": EMAIL})
    return answers


def message(app: SetupApp, name: str) -> str:
    return shown(app.screen.query_one(f"#{field_id(name)}-message", Static))


async def type_into(pilot: Pilot[Any], name: str, text: str) -> None:
    """Replace a field's text by typing, as a person would."""
    widget = pilot.app.screen.query_one(f"#{field_id(name)}", Input)
    widget.focus()
    widget.value = ""
    await pilot.press(*text)
    await pilot.pause()


async def test_bad_answers_are_explained_under_their_field_and_nothing_is_written(bakong: LiveBakong, isolated_home: Path) -> None:
    session = _session(isolated_home)
    app = SetupApp(session, _answers(session, bakong))
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, SetupScreen)
        await type_into(pilot, "merchant.name", "A name far too long for a KHQR")
        assert message(app, "merchant.name").startswith("✗ Merchant Name Length is invalid")
        assert app.screen.query_one("#setup-code", KHQRCode).qr is None  # no preview of a KHQR that cannot be
        await type_into(pilot, "merchant.bakong_account_id", "unknown_shop@aclb")
        await pilot.press("tab")  # leaving the field asks Bakong
        await workers_done(app)
        assert message(app, "merchant.bakong_account_id") == "✗ Bakong has no account unknown_shop@aclb: check it in your bank app"
        await type_into(pilot, "hours.mon", "8am-8pm")
        assert "write opening hours as HH:MM-HH:MM" in message(app, "hours.mon")
        await type_into(pilot, "hours.expected_payments_per_day", "lots")
        assert message(app, "hours.expected_payments_per_day") == "✗ 'lots': write a whole number of payments, e.g. 60 (empty: not known)"
        await pilot.press("ctrl+s")
        await workers_done(app)
        status = shown(app.screen.query_one("#setup-status", Static))
        assert status.startswith("Not written: 4 answers to fix")
        assert app.focused is app.screen.query_one(f"#{field_id('merchant.name')}", Input)
        # A second chance: fixing the name clears its message and draws the KHQR.
        await type_into(pilot, "merchant.name", "Dara Coffee")
        assert message(app, "merchant.name") == ""
        assert app.screen.query_one("#setup-code", KHQRCode).qr is not None
    assert not session.path.exists() and not (isolated_home / "data" / "bakong-console" / "data.key").exists()
    assert app.return_value is None


async def test_a_valid_form_writes_a_private_file_that_loads_and_shows_the_verdict(bakong: LiveBakong, isolated_home: Path) -> None:
    session = _session(isolated_home)
    app = SetupApp(session, _answers(session, bakong))
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, "merchant.name", "Dara Coffee")
        await type_into(pilot, "merchant.bakong_account_id", "dara_coffee@aclb")
        await type_into(pilot, "currency", "usd")
        await type_into(pilot, "hours.sun", "closed")
        # no weekday has hours yet: the estimate is kept, and said to wait for them
        await type_into(pilot, "hours.expected_payments_per_day", "80")
        assert message(app, "hours.expected_payments_per_day") == "✓ used on the days with opening hours: declare them above"
        await type_into(pilot, "hours.mon", "07:00-21:00")  # the estimate's note follows the hours
        assert message(app, "hours.expected_payments_per_day") == "✓ the first day is planned for about 80; its own payments correct that as they come"
        code = app.screen.query_one("#setup-code", KHQRCode).qr
        assert code is not None and khqr.decode(code)["merchant_name"] == "Dara Coffee"
        assert khqr.decode(code)["transaction_currency"] == "840"
        assert shown(app.screen.query_one("#setup-preview-place", Static)) == "Phnom Penh · USD"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.outcome is not None and app.outcome[1] is not None, what="the verdict")
        status = shown(app.screen.query_one("#setup-status", Static))
        assert "Bakong: fine: " in status and "Enter (or ctrl+s) finishes." in status
        assert message(app, "merchant.bakong_account_id") == "✓ Bakong: dara_coffee@aclb (Dara Coffee) can receive payments"
        await pilot.press("enter")
        await pilot.pause()
    result, verdict = app.return_value
    assert verdict is not None and verdict[0].ok
    assert stat.S_IMODE(session.path.stat().st_mode) == 0o600
    settings = load_settings(session.path, environ={})
    assert settings.merchant.name == "Dara Coffee" and settings.payments.currency == "USD"
    assert settings.bakong.token == bakong.token and settings.hours.sun == "closed"
    assert settings.hours.mon == "07:00-21:00" and settings.hours.expected_payments_per_day == 80
    assert result.settings == settings


async def test_a_current_token_is_kept_when_left_empty(bakong: LiveBakong, isolated_home: Path) -> None:
    session = _session(isolated_home)
    answers = _answers(session, bakong)
    app = SetupApp(session, answers)
    async with app.run_test(size=SIZE) as pilot:
        token = app.screen.query_one(f"#{field_id('token')}", Input)
        assert token.value == "" and token.password and token.placeholder.startswith("keep current")
        assert "expires" in message(app, "token")
        await type_into(pilot, "token", "not a token")
        assert message(app, "token") == "✗ a token has no spaces or line breaks"
        await type_into(pilot, "token", "")
        assert message(app, "token").startswith("✓ ")


# --- the snapshot ---------------------------------------------------------------------------------


@pytest.fixture
def snapshot_session(isolated_home: Path) -> tuple[SetupSession, dict[str, str]]:
    """No network (nothing listens on port 9), a fixed clock and token: the same screen everywhere."""
    clock = ManualClock(datetime(2026, 1, 15, 3, 0, tzinfo=UTC))
    session = _session(isolated_home, clock=clock)
    answers = session.defaults()
    token = issue_token(b"k" * 32, now=clock.now(), rng=random.Random(1))
    answers.update({"environment": "custom", "base_url": "http://127.0.0.1:9", "token": token, "email": EMAIL})
    return session, answers


def test_setup_screen_snapshot(snap_compare: Any, snapshot_session: tuple[SetupSession, dict[str, str]]) -> None:
    session, answers = snapshot_session
    app = SetupApp(session, answers)

    async def fill(pilot: Pilot[Any]) -> None:
        screen = pilot.app.screen
        for name, value in (("merchant.name", "Dara Coffee"), ("merchant.city", "Siem Reap"),
                            ("merchant.bakong_account_id", "dara_coffee@aclb"), ("hours.mon", "7am")):  # fmt: skip
            screen.query_one(f"#{field_id(name)}", Input).value = value
        await pilot.pause()
        for widget in screen.query(Input):
            widget.cursor_blink = False
        await workers_done(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=fill)
