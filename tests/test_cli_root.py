"""The CLI shell: version, help, config check, one-line errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from bakong_console import __version__
from bakong_console.cli.main import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"bakong-console {__version__}"


def test_config_check_accepts_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[bakong]\ndaily_budget = 50\n', encoding="utf-8")
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"ok: {path}")


def test_config_check_rejects_with_one_line_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[bakong]\ndaily_budget = "x"\n', encoding="utf-8")
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "bakong.daily_budget" in lines[0] and str(path) in lines[0]


def test_global_config_option_is_used(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[nope]\n", encoding="utf-8")
    result = runner.invoke(app, ["--config", str(path), "config", "show"])
    assert result.exit_code == 2
    assert "unknown key 'nope'" in result.stderr


def test_config_show_redacts_secrets(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[bakong]\ntoken = "eyJsecret"\n', encoding="utf-8")
    result = runner.invoke(app, ["--config", str(path), "config", "show"])
    assert result.exit_code == 0
    assert "eyJsecret" not in result.stdout
    assert '"token": "***"' in result.stdout


def test_console_script_runs_as_a_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "bakong_console", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"bakong-console {__version__}"


def test_config_show_hides_passwords_in_urls_but_keeps_where_they_point(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[database]\nurl = "postgresql+asyncpg://shop:pg-s3cret@db.internal:5432/bakong?sslmode=require"\n'
        '[api]\nrate_limit_backend = "redis://:redis-s3cret@cache:6379/1"\n'
        'redis_url = "redis://cache:6379/0?password=other-s3cret"\n'
        '[bakong]\nenvironment = "custom"\nbase_url = "https://relay:relay-s3cret@relay.example.com"\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["--config", str(path), "config", "show"])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["database"]["url"] == "postgresql+asyncpg://shop:***@db.internal:5432/bakong?sslmode=require"
    assert shown["api"]["rate_limit_backend"] == "redis://:***@cache:6379/1"
    assert shown["api"]["redis_url"] == "redis://cache:6379/0?password=***"
    assert shown["bakong"]["base_url"] == "https://relay:***@relay.example.com"


def test_a_bad_rate_limit_backend_is_refused_without_printing_its_password(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[api]\nrate_limit_backend = "http://:redis-s3cret@cache:6379"\n', encoding="utf-8")
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert "api.rate_limit_backend" in result.stderr and "s3cret" not in result.stderr
