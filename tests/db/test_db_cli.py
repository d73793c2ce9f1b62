"""`db upgrade` / `db current` on both databases (the installed wheel is checked by .ci/run)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.db.migrate import head_revision

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
