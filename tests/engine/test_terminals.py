"""Terminals: each console names its counter, and every payment it makes records that name."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_settings
from engine.errors import ConfigError, InvalidInput
from engine.records import Actor, ActorType
from engine.runtime import Engine
from engine.terminals import default_terminal_name, is_terminal_name, terminal_name

CASHIER = Actor(ActorType.CASHIER, "dara")


@pytest.mark.parametrize("name", ["counter-1", "a", "till_2.front", "x" * 64])
def test_good_terminal_names(name: str) -> None:
    assert is_terminal_name(name)


@pytest.mark.parametrize("name", ["", "Counter-1", "-lead", "with space", "x" * 65, "caf\u00e9", "a/b"])
def test_bad_terminal_names(name: str) -> None:
    assert not is_terminal_name(name)


def test_default_terminal_is_a_valid_name_from_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "Shop-PC.local")
    assert default_terminal_name() == "shop-pc"
    monkeypatch.setattr("socket.gethostname", lambda: "***")
    assert default_terminal_name() == "terminal"
    assert terminal_name("  ") == "terminal"
    assert terminal_name("counter-2") == "counter-2"


def test_config_refuses_a_bad_terminal_name(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[console]\nterminal = "Counter 1"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"console\.terminal: must be 1-64 lowercase"):
        load_settings(path)
    path.write_text('[console]\nterminal = "counter-1"\n', encoding="utf-8")
    assert load_settings(path).console.terminal == "counter-1"


async def test_a_payment_records_its_terminal(engine: Engine) -> None:
    made = (await engine.payments.initiate("5000", "KHR", actor=CASHIER, terminal="counter-1")).payment
    assert made.terminal == "counter-1"
    assert (await engine.payments.get(made.id)).terminal == "counter-1"
    api = (await engine.payments.initiate("1.00", "USD", actor=CASHIER)).payment
    assert (await engine.payments.get(api.id)).terminal is None


async def test_a_bad_terminal_is_refused_and_nothing_is_written(engine: Engine) -> None:
    from engine.db.payments import PaymentFilter

    with pytest.raises(InvalidInput, match="terminal: must be"):
        await engine.payments.initiate("5000", "KHR", actor=CASHIER, terminal="Counter 1")
    page, _ = await engine.payments.search(PaymentFilter())
    assert page == []
