"""The displays screen (`d`): a pairing code and the display's address for this terminal, the
list following pairing as it happens, and revoking the highlighted display."""

from __future__ import annotations

import re
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from bakong_console.tui.screens.displays import DisplaysScreen
from engine.config import Settings
from engine.errors import Unauthorized
from engine.records import Actor, ActorType
from engine.runtime import Engine
from tests.support.settings import make_settings
from tests.tui.conftest import console_app, shown, wait_until

PAYER = Actor(ActorType.PAYER, "customer display", source_ip="192.0.2.7")


@pytest.fixture
def engine_settings(db_url: str) -> Settings:
    return make_settings(db_url, console={"terminal": "counter-1"}, display={"public_url": "http://192.0.2.10:8082"})


def _statuses(table: DataTable[Any]) -> list[str]:
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


async def test_pair_then_revoke_from_the_console(engine: Engine) -> None:
    app = console_app(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DisplaysScreen)
        assert "http://192.0.2.10:8082/display/counter-1" in shown(screen.query_one("#displays-address", Static))
        await pilot.press("p")
        await wait_until(pilot, lambda: screen.pairing is not None, what="the pairing code")
        text = shown(screen.query_one("#displays-pairing", Static))
        match = re.search(r"Pairing code\s+(\d{3}) (\d{3})", text)
        assert match, text
        assert "open http://192.0.2.10:8082/display/counter-1 on the display" in text
        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: _statuses(table) == ["pairing"], what="the waiting code listed")

        # The display types the code: the screen follows the display.paired event by itself.
        paired = await engine.displays.pair("counter-1", match.group(1) + match.group(2), actor=PAYER)
        await wait_until(pilot, lambda: _statuses(table) == ["paired"], what="the display listed as paired")
        await wait_until(pilot, lambda: screen.pairing is None, what="the used code gone")

        await pilot.press("x")
        await wait_until(pilot, lambda: _statuses(table) == ["revoked"], what="the display revoked")
        with pytest.raises(Unauthorized):
            await engine.displays.authenticate("counter-1", paired.token)
        (display,) = await engine.displays.list()
        assert display.revoked_at is not None
