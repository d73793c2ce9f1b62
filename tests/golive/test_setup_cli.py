"""`bakong-console setup` end to end against a production-like Bakong (the sandbox over loopback
HTTP as the custom environment): flags, plain prompts, refusals, re-runs, PostgreSQL."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.config import load_settings, read_config_file
from engine.crypto import parse_key_spec
from tests.golive.conftest import EMAIL, LiveBakong, setup_flags

runner = CliRunner()


def _config(home: Path) -> Path:
    return home / "config" / "bakong-console" / "config.toml"


def _key_file(home: Path) -> Path:
    return home / "data" / "bakong-console" / "data.key"


def test_flags_write_a_private_config_that_loads_and_report_bakongs_verdict(bakong: LiveBakong, isolated_home: Path) -> None:
    result = runner.invoke(app, setup_flags(bakong))
    assert result.exit_code == 0, result.output
    path = _config(isolated_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = load_settings(path, environ={})
    assert settings.bakong.environment == "custom" and settings.bakong.base_url == bakong.url
    assert settings.bakong.token == bakong.token and settings.bakong.email == EMAIL
    m = settings.merchant
    assert (m.name, m.city, m.bakong_account_id, m.type) == ("Dara Coffee", "Siem Reap", "dara_coffee@aclb", "individual")
    assert settings.payments.currency == "USD" and settings.database.url == ""
    assert (settings.hours.mon, settings.hours.fri, settings.hours.sat, settings.hours.sun) == (
        "07:00-21:00", "07:00-21:00", "08:00-12:00, 13:00-22:00", "closed")  # fmt: skip
    assert settings.hours.expected_payments_per_day == 60
    key_file = _key_file(isolated_home)
    assert settings.security.data_key_file == str(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    kid, key = parse_key_spec(key_file.read_text().strip())
    assert len(key) == 32
    out = result.stdout
    assert f"wrote {path} (0600)" in out
    assert "account: Bakong: dara_coffee@aclb (Dara Coffee) can receive payments" in out
    assert "bakong: fine: " in out and "accepts the token" in out
    # The token and the data key never reach the screen unless asked.
    assert bakong.token not in out and key_file.read_text().strip() not in out
    assert bakong.requests("check_bakong_account") == 1 and bakong.requests("check_transaction_by_md5") == 1


def test_the_data_key_is_printed_only_when_asked(bakong: LiveBakong, isolated_home: Path) -> None:
    result = runner.invoke(app, setup_flags(bakong, "--show-data-key"))
    assert result.exit_code == 0, result.output
    assert f"data key: {_key_file(isolated_home).read_text().strip()}" in result.stdout


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--merchant-name", "A name far too long for any KHQR", "Name: Merchant Name Length is invalid"),
        ("--account", "dara-at-aclb", "Bakong account: Bakong Account ID is invalid"),
        ("--account", "unknown_shop@aclb", "Bakong account: Bakong has no account unknown_shop@aclb"),
        ("--account", "frozen_shop@aclb", "cannot receive payments (frozen)"),
        ("--hours", "mon=25:00-26:00", "Monday: '25:00-26:00': 25:00 is not a time of day"),
        ("--email", "a-very-long-address@an-example-domain.com", "at most 30 characters"),
        ("--database", "mysql://shop@db/bakong", "Database: write sqlite, or a postgresql://"),
        ("--database", "postgresql://nobody@127.0.0.1:1/bakong", "Database: cannot connect"),
        ("--expected-payments-per-day", "sixty", "Payments a day: 'sixty': write a whole number of payments"),
        ("--expected-payments-per-day", "0", "Payments a day: '0': at least 1 payment (leave it empty when you do not know)"),
        ("--expected-payments-per-day", "250000", "Payments a day: '250000': at most 100,000 payments a day"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_nothing_is_written(
    bakong: LiveBakong, isolated_home: Path, flag: str, value: str, message: str
) -> None:
    result = runner.invoke(app, [*setup_flags(bakong), flag, value])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not _config(isolated_home).exists() and not _key_file(isolated_home).exists()


def test_an_expired_token_is_refused(bakong: LiveBakong, isolated_home: Path, tmp_path: Path) -> None:
    import random
    from datetime import UTC, datetime

    from engine.bakong.sandbox import issue_token

    old = tmp_path / "old.token"
    old.write_text(issue_token(b"k" * 32, now=datetime(2025, 1, 1, tzinfo=UTC), rng=random.Random(1)))
    result = runner.invoke(app, [*setup_flags(bakong), "--token-file", str(old)])
    assert result.exit_code == 1 and "Token: this token expired on 2025-04-01" in result.stderr
    assert not _config(isolated_home).exists()


def test_existing_file_needs_force_and_a_rerun_keeps_what_it_does_not_ask(bakong: LiveBakong, isolated_home: Path) -> None:
    assert runner.invoke(app, setup_flags(bakong)).exit_code == 0
    path = _config(isolated_home)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n[api]\nport = 9191\n\n[[subscriptions.plans]]\ncode = \"pro\"\nname = \"Pro\"\nprice = \"9.99\"\n")
    before = path.read_bytes()
    refused = runner.invoke(app, setup_flags(bakong))
    assert refused.exit_code == 2 and "exists: run `bakong-console setup --force`" in refused.stderr
    assert path.read_bytes() == before
    key = _key_file(isolated_home).read_text()
    # Only the city changes; everything else comes from the current file (the token included).
    rerun = runner.invoke(app, ["setup", "--yes", "--force", "--city", "Kampot"])
    assert rerun.exit_code == 0, rerun.output
    settings = read_config_file(path)
    assert settings.merchant.city == "Kampot" and settings.merchant.name == "Dara Coffee"
    assert settings.hours.expected_payments_per_day == 60  # the file's estimate is the re-run's default
    assert settings.bakong.token == bakong.token and settings.api.port == 9191
    assert [p.code for p in settings.subscriptions.plans] == ["pro"]
    assert _key_file(isolated_home).read_text() == key and "data key: kept" in rerun.stdout


def test_a_plain_rerun_offers_the_current_estimate_as_its_default(bakong: LiveBakong, isolated_home: Path) -> None:
    assert runner.invoke(app, setup_flags(bakong)).exit_code == 0
    # Enter at every question keeps what the file says
    rerun = runner.invoke(app, ["setup", "--plain", "--force"], input="\n" * 40)
    assert rerun.exit_code == 0, rerun.output
    assert "  Payments a day [60]: " in rerun.stdout
    assert read_config_file(_config(isolated_home)).hours.expected_payments_per_day == 60


def test_token_from_the_environment(bakong: LiveBakong, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flags = setup_flags(bakong)
    i = flags.index("--token-file")
    del flags[i : i + 2]
    monkeypatch.setenv("BAKONG_CONSOLE_BAKONG_TOKEN", bakong.token)
    result = runner.invoke(app, flags)
    assert result.exit_code == 0, result.output
    assert read_config_file(_config(isolated_home)).bakong.token == bakong.token


def test_geo_blocked_bakong_still_writes_and_says_to_use_a_relay(bakong: LiveBakong, isolated_home: Path) -> None:
    bakong.set_faults(geo_blocked=True)
    result = runner.invoke(app, setup_flags(bakong))
    assert result.exit_code == 0, result.output
    assert _config(isolated_home).exists()
    assert "account: not checked with Bakong" in result.stdout
    assert "bakong: geo-blocked: " in result.stdout
    assert "→ Bakong answers only Cambodian IP addresses" in result.stdout and "--base-url" in result.stdout


def test_plain_prompts_give_a_second_chance_and_show_the_preview(bakong: LiveBakong, isolated_home: Path) -> None:
    answers = [
        "custom", bakong.url, bakong.token, EMAIL,
        "individual",
        "A name far too long for any KHQR", "Dara Coffee",   # refused, then accepted
        "", "dara@aclb",                                      # city kept; account asked of Bakong
        "", "", "", "", "", "",                               # bank, account info, mobile, store, terminal, MCC
        "usd",                                                # normalised to USD
        "sqlite", "",
        "07:00-21:00", "9-5", "07:00-21:00", "07:00-21:00", "07:00-21:00", "07:00-21:00", "closed", "closed",
        "about 80", "80",                                     # refused, then accepted
        "y",
    ]  # fmt: skip
    result = runner.invoke(app, ["setup", "--plain"], input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "✗ Merchant Name Length is invalid" in out
    assert "✓ Bakong: dara@aclb (Dara) can receive payments" in out
    assert "✗ '9-5': write opening hours as HH:MM-HH:MM" in out
    assert "about how many KHQR payments on a normal open day?" in out
    assert "✗ 'about 80': write a whole number of payments, e.g. 60 (empty: not known)" in out
    assert "✓ the first day is planned for about 80; its own payments correct that as they come" in out
    assert "The KHQR your customers will scan" in out and ("█" in out or "▀" in out)
    assert bakong.token not in out
    settings = read_config_file(_config(isolated_home))
    assert settings.merchant.name == "Dara Coffee" and settings.payments.currency == "USD"
    assert settings.hours.tue == "07:00-21:00" and settings.hours.sat == "closed"
    assert settings.hours.expected_payments_per_day == 80


@pytest.mark.postgres
def test_postgresql_is_tested_and_migrated_when_empty(bakong: LiveBakong, isolated_home: Path, pg_url: str) -> None:
    plain_url = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    result = runner.invoke(app, setup_flags(bakong, database=plain_url))
    assert result.exit_code == 0, result.output
    assert "database: postgresql://127.0.0.1:5432/" in result.stdout and "migrated to" in result.stdout
    assert read_config_file(_config(isolated_home)).database.url == pg_url
    current = runner.invoke(app, ["db", "current"])
    assert current.exit_code == 0 and "up to date" in current.stdout


def test_the_console_asks_for_setup_first_on_an_incomplete_production_config(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.services.setup import setup_reason

    assert setup_reason(None) is None  # no config at all: the one-command sandbox
    named = isolated_home / "shop.toml"
    assert setup_reason(named) == f"no config file at {named}"
    named.write_text('[bakong]\nenvironment = "production"\n', encoding="utf-8")
    assert setup_reason(named) == f"{named} is for production but has no Bakong token"
    monkeypatch.setenv("BAKONG_CONSOLE_BAKONG_TOKEN", "eyJ.x.y")
    assert setup_reason(named) == f"{named} is for production but still names the sandbox's merchant account"
    named.write_text('[bakong]\nenvironment = "production"\n[merchant]\nbakong_account_id = "dara@aclb"\n', encoding="utf-8")
    assert setup_reason(named) is None
    named.write_text('[merchant]\nname = "Sandbox only"\n', encoding="utf-8")
    assert setup_reason(named) is None  # a sandbox config needs no setup
    # Without a terminal the console cannot show the form: one line says what to run.
    missing = isolated_home / "new.toml"
    result = runner.invoke(app, ["--config", str(missing)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == f"error: no config file at {missing}: run `bakong-console setup` (or `setup --yes` with flags)"
