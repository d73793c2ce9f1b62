"""The console's `v`: the QR dialog opens and the payment's card is saved (the path is shown), to
``[console] cards_dir`` or the data directory's ``cards/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from bakong_console.tui.dialogs.payment_dialogs import PaymentQRDialog
from engine.clock import ManualClock
from engine.config import Settings, data_dir
from engine.khqr.card_png import render_card_png
from engine.runtime import Engine
from tests.support.settings import make_settings
from tests.tui.conftest import OPERATOR, console_app, quiet, wait_until


@pytest.fixture
def cards_dir() -> str:
    return ""


@pytest.fixture
def engine_settings(sqlite_url: str, cards_dir: str) -> Settings:
    return make_settings(sqlite_url, console={"cards_dir": cards_dir})


def _line(app) -> str:  # noqa: ANN001
    return str(app.screen.query_one("#qr-card-path", Static).render())


async def test_v_shows_the_qr_and_saves_the_card(engine: Engine, clock: ManualClock) -> None:
    payment = (await engine.payments.initiate("7.77", "USD", actor=OPERATOR, reference="table-9")).payment
    app = console_app(engine)
    async with app.run_test(size=(100, 40)) as pilot:
        await quiet(pilot, engine)
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, PaymentQRDialog), what="the QR dialog")
        await wait_until(pilot, lambda: "Card saved" in _line(app), what="the card's path")
        card = data_dir() / "cards" / f"{payment.id}.png"
        assert _line(app) == f"Card saved: {card}"
        assert card.read_bytes() == render_card_png(payment.khqr, expires_at=payment.expires_at)


@pytest.mark.parametrize("cards_dir", ["~/printed/cards"])
async def test_cards_dir_from_the_settings(engine: Engine, clock: ManualClock) -> None:
    folder = Path.home() / "printed" / "cards"  # the test's own home (isolated_home)
    payment = (await engine.payments.initiate("5000", "KHR", actor=OPERATOR)).payment
    app = console_app(engine)
    async with app.run_test(size=(100, 40)) as pilot:
        await quiet(pilot, engine)
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, PaymentQRDialog) and "Card saved" in _line(app), what="the card's path")
        assert (folder / f"{payment.id}.png").is_file()
