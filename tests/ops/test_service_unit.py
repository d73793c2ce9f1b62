"""`bakong-console service unit`: a hardened systemd unit for `serve`, read back key by key, and
checked by `systemd-analyze verify` where that tool is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bakong_console.cli.main import app
from bakong_console.cli.service_unit import ServiceUnit, systemd_quote
from engine.config import Settings, data_dir
from engine.errors import InvalidInput

runner = CliRunner()
SCRIPT = Path(sys.executable).absolute().parent / "bakong-console"
#: A checkout under a home directory (CI's may be) needs homes readable, not hidden.
PROTECT_HOME = "read-only" if any(
    root == p or root in p.parents for p in (SCRIPT, Path(sys.prefix)) for root in (Path("/home"), Path("/root"), Path("/run/user"))
) else "yes"  # fmt: skip


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value given (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a key outside any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key, []).append(value)
    return sections


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    (value,) = unit[section][key]
    return value


def write_config(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_unit_runs_the_installed_script_as_a_user_with_the_state_writable(tmp_path: Path) -> None:
    db = tmp_path / "srv" / "shop.db"
    backups = tmp_path / "backups"
    config = write_config(
        tmp_path, "[database]", f'url = "sqlite+aiosqlite:///{db}"', f'backup_dir = "{backups}"', "[daemon]", "stop_timeout_seconds = 15"
    )
    result = runner.invoke(app, ["service", "unit", "--user", "bakong", "--config", str(config)])
    assert result.exit_code == 0, result.output
    unit = parse_unit(result.stdout)
    assert one(unit, "Service", "User") == "bakong"
    assert one(unit, "Service", "ExecStart") == f"{SCRIPT} --config {config} serve"
    assert Path(one(unit, "Service", "ExecStart").split()[0]).is_absolute()
    expected = {
        "Type": "exec", "Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": PROTECT_HOME,
        "PrivateTmp": "yes", "PrivateDevices": "yes", "EnvironmentFile": "-/etc/bakong-console/env", "UMask": "0077",
        "TimeoutStopSec": "25s", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
    }  # fmt: skip
    assert {key: one(unit, "Service", key) for key in expected} == expected
    assert one(unit, "Service", "ReadWritePaths").split() == [str(db.parent), str(backups)]
    assert "Environment" not in unit["Service"]  # a database named in the config needs no data directory
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    assert one(unit, "Unit", "After") == "network-online.target"


def test_the_embedded_database_s_directory_is_pinned_and_a_var_lib_one_is_a_state_directory(tmp_path: Path) -> None:
    unit = parse_unit(runner.invoke(app, ["service", "unit", "--user", "bakong"]).stdout)
    assert one(unit, "Service", "ExecStart") == f"{SCRIPT} serve"  # no config file to name
    assert one(unit, "Service", "Environment") == f"BAKONG_CONSOLE_DATA_DIR={data_dir()}"
    assert one(unit, "Service", "ReadWritePaths") == str(data_dir())

    result = runner.invoke(app, ["service", "unit", "--user", "bakong", "--state-dir", "/var/lib/bakong-console"])
    unit = parse_unit(result.stdout)
    assert one(unit, "Service", "Environment") == "BAKONG_CONSOLE_DATA_DIR=/var/lib/bakong-console"
    assert one(unit, "Service", "StateDirectory") == "bakong-console"
    assert one(unit, "Service", "StateDirectoryMode") == "0700"
    assert "ReadWritePaths" not in unit["Service"]


def test_state_in_a_home_directory_makes_homes_read_only_rather_than_hidden() -> None:
    service = ServiceUnit.build(Settings(), user="dara", executable=Path("/opt/bk/bin/bakong-console"), config=None,
                                state_dir=Path("/home/dara/.local/share/bakong-console"))  # fmt: skip
    unit = parse_unit(service.render())
    assert one(unit, "Service", "ProtectHome") == "read-only"
    assert one(unit, "Service", "ReadWritePaths") == "/home/dara/.local/share/bakong-console"


def test_a_privileged_port_gets_only_the_capability_to_bind_it() -> None:
    settings = replace(Settings(), api=replace(Settings().api, port=443))
    unit = parse_unit(ServiceUnit.build(settings, user="bakong", executable=SCRIPT, config=None).render())
    assert one(unit, "Service", "CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"
    assert one(unit, "Service", "AmbientCapabilities") == "CAP_NET_BIND_SERVICE"


def test_paths_with_spaces_and_specifiers_are_quoted() -> None:
    assert systemd_quote("/srv/my shop/config.toml") == '"/srv/my shop/config.toml"'
    assert systemd_quote("/srv/100%/x") == "/srv/100%%/x"
    service = ServiceUnit.build(Settings(), user="bakong", executable=SCRIPT, config=Path("/srv/my shop/c.toml"))
    assert f'ExecStart={SCRIPT} --config "/srv/my shop/c.toml" serve' in service.render().splitlines()


@pytest.mark.parametrize(("user", "words"), [("root", "should not run as root"), ("Robert'); DROP", "is not a user name")])
def test_root_and_bad_user_names_are_refused_in_one_line(user: str, words: str) -> None:
    result = runner.invoke(app, ["service", "unit", "--user", user])
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert words in line
    with pytest.raises(InvalidInput):
        ServiceUnit.build(Settings(), user=user, executable=SCRIPT, config=None)


def test_the_data_dir_follows_its_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BAKONG_CONSOLE_DATA_DIR", str(tmp_path / "state"))
    assert data_dir() == tmp_path / "state"
    assert Settings().database_url == f"sqlite+aiosqlite:///{tmp_path / 'state' / 'bakong-console.db'}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (an optional system tool)")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    db = tmp_path / "srv" / "shop.db"
    db.parent.mkdir()
    (tmp_path / "backups").mkdir()
    config = write_config(tmp_path, "[database]", f'url = "sqlite+aiosqlite:///{db}"', f'backup_dir = "{tmp_path / "backups"}"')
    for extra in ([], ["--state-dir", "/var/lib/bakong-console"]):
        result = runner.invoke(app, ["service", "unit", "--user", "bakong", "--config", str(config), *extra])
        assert result.exit_code == 0, result.output
        path = tmp_path / "bakong-console.service"
        path.write_text(result.stdout, encoding="utf-8")
        verify = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
        # verify exits 0 on a key it ignores, but says so: any word from it is a finding
        assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stdout + verify.stderr
