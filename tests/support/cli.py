"""Running ``bakong-console`` in process against a config file: migrate it once, then run commands."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bakong_console.cli.main import app

__all__ = ["cli", "runner", "upgraded"]

runner = CliRunner()


def upgraded(config: Path) -> Path:
    """``config`` after ``db upgrade`` on its database (asserted to succeed)."""
    result = runner.invoke(app, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    return config


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    """``bakong-console --config CONFIG ARGS...``: exit code, stdout, stderr."""
    result = runner.invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr
