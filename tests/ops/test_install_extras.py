"""The Redis rate limit is an install extra: `config check`, the doctor and `serve` say it is
missing in one line (with the command that installs it) on an installation without `redis`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from engine.config import load_settings
from engine.errors import ConfigError
from engine.extras import missing_extras, require_extras
from engine.services.doctor import CheckState, Doctor
from tests.support.net import free_port
from tests.support.settings import write_config

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "pip install 'bakong-console[redis]'"
# The CLI as it runs on an installation without the redis package (importing it fails).
WITHOUT_REDIS = "import sys; sys.modules['redis'] = None; from bakong_console.cli.main import run; run()"


def _no_redis(name: str) -> Any:
    return None if name.split(".")[0] == "redis" else importlib.util.find_spec(name)


def _redis_config(tmp_path: Path, sqlite_url: str, backend: str = "redis") -> Path:
    return write_config(
        tmp_path / "c.toml", sqlite_url, f'[api]\nport = {free_port()}\nrate_limit_backend = "{backend}"\n'
    )


def _cli_without_redis(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_REDIS, "--config", str(config), *args], capture_output=True, text=True, timeout=120
    )


def test_the_redis_extra_is_declared_and_the_test_extra_does_not_hide_it() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(req.startswith("redis") for req in extras["redis"])


@pytest.mark.parametrize("backend", ["redis", "redis://cache:6379/1"])
def test_a_redis_backend_without_the_package_is_missing(tmp_path: Path, sqlite_url: str, backend: str) -> None:
    settings = load_settings(_redis_config(tmp_path, sqlite_url, backend))
    missing = missing_extras(settings, find_spec=_no_redis)
    assert [(m.setting, m.module, m.install) for m in missing] == [("api.rate_limit_backend", "redis", INSTALL)]
    with pytest.raises(ConfigError, match=r"api\.rate_limit_backend needs the 'redis' package"):
        require_extras(settings, find_spec=_no_redis)
    # Nothing is missing where it is installed, with the memory backend, or when no API runs.
    assert missing_extras(settings) == []
    assert missing_extras(settings, serving_api=False, find_spec=_no_redis) == []
    assert missing_extras(load_settings(_redis_config(tmp_path, sqlite_url, "memory")), find_spec=_no_redis) == []


def test_config_check_says_what_is_missing_in_one_line(tmp_path: Path, sqlite_url: str) -> None:
    config = _redis_config(tmp_path, sqlite_url)
    result = _cli_without_redis(config, "config", "check")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "api.rate_limit_backend" in lines[0] and INSTALL in lines[0]


def test_serve_refuses_in_one_line_before_starting(tmp_path: Path, sqlite_url: str) -> None:
    config = _redis_config(tmp_path, sqlite_url)
    result = _cli_without_redis(config, "serve")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: ") and INSTALL in lines[0]
    assert not Path(sqlite_url.split("///", 1)[1]).exists(), "serve opened the database before refusing"


async def test_the_doctor_fails_the_config_with_the_install_command(tmp_path: Path, sqlite_url: str) -> None:
    config = _redis_config(tmp_path, sqlite_url)
    report = await Doctor(config, find_spec=_no_redis).run()
    result = report.result("config")
    assert result.state is CheckState.FAIL and "'redis' package" in result.detail and result.fix == INSTALL
    assert report.failed
