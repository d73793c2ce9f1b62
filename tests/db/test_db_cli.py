"""`db upgrade` / `db current` on both databases, from the checkout and from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.db.migrate import head_revision

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_db_upgrade_and_current(db_url: str) -> None:
    env = {"BAKONG_CONSOLE_DATABASE_URL": db_url}
    current = runner.invoke(app, ["db", "current"], env=env)
    assert current.exit_code == 0, current.output
    assert "empty" in current.stdout and "behind" in current.stdout
    up = runner.invoke(app, ["db", "upgrade"], env=env)
    assert up.exit_code == 0, up.output
    assert up.stdout.strip() == f"upgraded empty database -> {head_revision()}"
    again = runner.invoke(app, ["db", "upgrade"], env=env)
    assert again.stdout.strip() == f"already at {head_revision()}"
    current = runner.invoke(app, ["db", "current"], env=env)
    assert f"{head_revision()} (up to date)" in current.stdout


def test_db_upgrade_reports_unreachable_database_in_one_line() -> None:
    env = {"BAKONG_CONSOLE_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/nope"}
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1


def test_rotate_data_key_with_the_embedded_key_file(isolated_home: Path) -> None:
    from engine.crypto import default_key_file

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["keys", "rotate-data-key"])
    assert result.exit_code == 0, result.output
    lines = default_key_file().read_text().split()
    assert len(lines) == 1 and result.stdout.startswith("re-encrypted 0 secrets with new key")


@pytest.mark.slow
def test_installed_wheel_can_migrate(tmp_path: Path) -> None:
    """The wheel ships the migrations: an installed (non-editable) copy upgrades a fresh database."""
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheel_dir), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheel_dir.glob("bakong_console-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    assert (target / "engine" / "_migrations" / "env.py").is_file()
    db = tmp_path / "w.db"
    env = {**os.environ, "PYTHONPATH": str(target), "BAKONG_CONSOLE_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    probe = subprocess.run(
        [sys.executable, "-c", "import engine.db.migrate as m; print(m.script_location())"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert probe.stdout.strip() == str(target / "engine" / "_migrations")
    up = subprocess.run(
        [sys.executable, "-m", "bakong_console", "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == f"upgraded empty database -> {head_revision()}"
