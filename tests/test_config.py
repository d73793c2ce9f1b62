"""Configuration: discovery order, strict validation, env overrides, and the example file."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from engine.config import Settings, discover_config_path, load_settings
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_sandbox_defaults_on_embedded_sqlite(isolated_home: Path) -> None:
    settings = load_settings()
    assert settings.source is None
    assert settings.is_sandbox
    assert settings.uses_embedded_database
    assert settings.database_url == f"sqlite+aiosqlite:///{isolated_home / 'data' / 'bakong-console' / 'bakong-console.db'}"


def test_discovery_order_explicit_then_env_then_xdg(isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = write(isolated_home / "config" / "bakong-console" / "config.toml", "[payments]\ndefault_timeout_minutes = 7\n")
    env_file = write(tmp_path / "env.toml", "[payments]\ndefault_timeout_minutes = 8\n")
    explicit = write(tmp_path / "explicit.toml", "[payments]\ndefault_timeout_minutes = 9\n")
    assert discover_config_path() == xdg
    assert load_settings().payments.default_timeout_minutes == 7
    monkeypatch.setenv("BAKONG_CONSOLE_CONFIG", str(env_file))
    assert load_settings().payments.default_timeout_minutes == 8
    assert load_settings(explicit).payments.default_timeout_minutes == 9


def test_unknown_key_is_an_error_naming_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[bakong]\ndaily_budgit = 5\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in err.value.message
    assert "daily_budgit" in err.value.message


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[bakongg]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'bakongg'"):
        load_settings(path)


def test_wrong_type_is_an_error_naming_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[bakong]\ndaily_budget = "lots"\n')
    with pytest.raises(ConfigError, match=r"bakong\.daily_budget: expected an integer"):
        load_settings(path)


def test_bad_choice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[bakong]\nenvironment = "prod"\n')
    with pytest.raises(ConfigError, match="bakong.environment: must be one of"):
        load_settings(path)


def test_invalid_toml_is_one_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[bakong\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_env_overrides_secrets(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[bakong]\nenvironment = "production"\ntoken = "from-file"\n')
    settings = load_settings(path, environ={"BAKONG_CONSOLE_BAKONG_TOKEN": "from-env",
                                            "BAKONG_CONSOLE_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/x"})
    assert settings.bakong.token == "from-env"
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1/x"
    assert settings.redacted()["bakong"]["token"] == "***"


def test_production_without_token_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[bakong]\nenvironment = "production"\n')
    with pytest.raises(ConfigError, match="bakong.token: required"):
        load_settings(path)


def test_example_file_is_valid_and_documents_every_key() -> None:
    example = ROOT / "config.example.toml"
    text = example.read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    settings = load_settings(example)
    for section in dataclasses.fields(Settings):
        if section.name == "source":
            continue
        assert section.name in raw, f"config.example.toml lacks [{section.name}]"
        for key in dataclasses.fields(getattr(settings, section.name)):
            assert key.name in raw[section.name], f"config.example.toml lacks {section.name}.{key.name}"


def test_plans_seeded_from_config_are_parsed_and_checked(tmp_path: Path) -> None:
    good = write(
        tmp_path / "plans.toml",
        '[[subscriptions.plans]]\ncode = "pro"\nname = "Pro"\nprice = "9.99"\n'
        '[[subscriptions.plans]]\ncode = "basic"\nname = "Basic"\nprice = "40000"\ncurrency = "KHR"\ncycle_days = 7\ntrial_days = 3\n',
    )
    plans = load_settings(good).subscriptions.plans
    assert [(p.code, p.price, p.currency, p.cycle_days, p.trial_days) for p in plans] == [
        ("pro", "9.99", "USD", 0, 0), ("basic", "40000", "KHR", 7, 3),
    ]  # fmt: skip
    cases = {
        '[[subscriptions.plans]]\ncode = "pro"\nname = "Pro"\nprice = "9.999"\n': "subscriptions.plans[0].price: USD amount 9.999 must be in at most 2 decimals",
        '[[subscriptions.plans]]\ncode = "pro"\nname = "Pro"\n': "subscriptions.plans[0]: code, name and price are required",
        '[[subscriptions.plans]]\ncode = "pro"\nname = "Pro"\nprice = "1"\ncolour = "red"\n': "unknown key 'colour'",
        '[[subscriptions.plans]]\ncode = "a"\nname = "A"\nprice = "1"\n[[subscriptions.plans]]\ncode = "a"\nname = "B"\nprice = "2"\n': "plan code 'a' appears twice",
        '[subscriptions]\nplans = ["pro"]\n': "must be a table",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
            load_settings(write(tmp_path / "bad.toml", text))


def test_database_pool_size_is_read_and_checked(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path / "ok.toml", "[database]\npool_size = 60\n")).database.pool_size == 60
    for bad in (0, 501):
        with pytest.raises(ConfigError, match=r"database\.pool_size: must be from 1 to 500"):
            load_settings(write(tmp_path / "bad.toml", f"[database]\npool_size = {bad}\n"))
