"""Writing the config: what setup writes reads back to the same settings, privately and atomically."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from engine.config import ApiSettings, PlanSeed, Settings, load_settings, parse_config_text, read_config_file
from engine.config_file import config_target_path, render_config, toml_value, write_config_file
from engine.errors import ConfigError


def _live(**overrides: object) -> Settings:
    s = Settings()
    return dataclasses.replace(
        s,
        merchant=dataclasses.replace(s.merchant, type="merchant", name="Dara \"Coffee\"", city="Siem Reap",
                                     bakong_account_id="dara@aclb", merchant_id="M-1", acquiring_bank="ACLEDA"),
        bakong=dataclasses.replace(s.bakong, environment="production", token="eyJ.eyJ.sig", email="dara@example.com",
                                   daily_budget=80, renew_days_before_expiry=10),
        api=dataclasses.replace(s.api, port=9090, trusted_proxies=["10.0.0.1", "10.0.0.2"]),
        console=dataclasses.replace(s.console, bindings={"payment.check_now": "k"}, bell_on_paid=False),
        subscriptions=dataclasses.replace(s.subscriptions, plans=[PlanSeed(code="pro", name="Pro\tplan", price="9.99"),
                                                                  PlanSeed(code="basic", name="Basic", price="20000", currency="KHR")]),
        hours=dataclasses.replace(s.hours, mon="07:00-11:30, 13:00-21:00", sat="18:00-02:00", sun="closed"),
        payments=dataclasses.replace(s.payments, currency="USD", jitter=0.25),
        **overrides,
    )  # fmt: skip


@pytest.mark.parametrize(
    "settings",
    [Settings(), _live(), _live(database=dataclasses.replace(Settings().database, url="postgresql+asyncpg://shop@db:5432/bakong"))],
    ids=["defaults", "live", "postgres"],
)
def test_the_rendered_file_reads_back_to_the_same_settings(settings: Settings) -> None:
    text = render_config(settings)
    assert parse_config_text(text, check=False) == settings


def test_setup_keys_are_always_written_with_a_comment_and_other_defaults_are_left_out() -> None:
    text = render_config(_live())
    lines = text.splitlines()
    name_line = next(line for line in lines if line.startswith("name = "))
    assert name_line.startswith('name = "Dara \\"Coffee\\""') and "# shown to the payer; at most 25 characters" in name_line
    assert any(line.startswith("store_label = \"\"") for line in lines)  # a setup key, even empty
    assert "port = 9090" in lines and "timeout_seconds" not in text  # non-default kept, defaults left out
    assert text.count("[[subscriptions.plans]]") == 2
    assert 'bindings = { "payment.check_now" = "k" }' in lines


def test_strings_are_escaped_as_toml_requires() -> None:
    assert toml_value('a"b\\c\nd\te\x7f\x01') == '"a\\"b\\\\c\\nd\\te\\u007F\\u0001"'
    assert toml_value(["x", 1, 2.5, True]) == '["x", 1, 2.5, true]'
    with pytest.raises(ConfigError):
        toml_value(object())


def test_written_file_is_0600_loads_and_is_not_replaced_without_force(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.toml"
    os.umask(0o022)
    write_config_file(path, _live())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert dataclasses.replace(load_settings(path, environ={}), source=None) == _live()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="exists: run again with --force"):
        write_config_file(path, Settings())
    assert path.read_bytes() == before
    write_config_file(path, Settings(), force=True)
    assert read_config_file(path) == Settings()
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]  # no temporary file left


def test_settings_that_do_not_load_are_not_written(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    no_token = dataclasses.replace(Settings(), bakong=dataclasses.replace(Settings().bakong, environment="production"))
    with pytest.raises(ConfigError, match="bakong.token: required"):
        write_config_file(path, no_token)
    assert not path.exists()


def test_read_config_file_takes_no_environment_and_skips_cross_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[bakong]\nenvironment = "production"\n[api]\nport = 7000\n', encoding="utf-8")
    monkeypatch.setenv("BAKONG_CONSOLE_BAKONG_TOKEN", "from-env")
    read = read_config_file(path)
    assert read.bakong.token == "" and read.api == ApiSettings(port=7000) and read.source == path
    with pytest.raises(ConfigError, match="not valid TOML"):
        path.write_text("[bakong\n", encoding="utf-8")
        read_config_file(path)


def test_target_path_order(tmp_path: Path) -> None:
    env = {"BAKONG_CONSOLE_CONFIG": str(tmp_path / "env.toml")}
    assert config_target_path(tmp_path / "x.toml", environ=env) == tmp_path / "x.toml"
    assert config_target_path(None, environ=env) == tmp_path / "env.toml"
    assert config_target_path(None, environ={}).name == "config.toml"
