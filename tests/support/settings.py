"""Settings on a test database with the fixed test data key: as a Settings object for an
in-process engine, as environment variables or a config file for the CLI and the daemon."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.config import Settings

TEST_DATA_KEY = "test1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="  # 32 bytes, fixed for determinism


def make_settings(db_url: str, **sections: dict[str, Any]) -> Settings:
    """Default settings on ``db_url`` with the test data key; ``payments={...}`` etc. override."""
    base = Settings()
    settings = replace(
        base,
        database=replace(base.database, url=db_url),
        security=replace(base.security, data_key=TEST_DATA_KEY),
    )
    for name, values in sections.items():
        settings = replace(settings, **{name: replace(getattr(settings, name), **values)})
    return settings


def cli_environ(db_url: str) -> dict[str, str]:
    """The environment that points the CLI at ``db_url`` with the test data key."""
    return {"BAKONG_CONSOLE_DATABASE_URL": db_url, "BAKONG_CONSOLE_DATA_KEY": TEST_DATA_KEY}


def write_config(path: Path, db_url: str, more_toml: str = "") -> Path:
    """A config file on ``db_url`` with the test data key, followed by ``more_toml`` sections."""
    path.write_text(
        f"""
[database]
url = "{db_url}"
[security]
data_key = "{TEST_DATA_KEY}"
{more_toml}""",
        encoding="utf-8",
    )
    return path
