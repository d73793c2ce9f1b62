"""The systemd unit for `bakong-console serve`: what `bakong-console service unit` prints.

The unit runs the installed ``bakong-console`` (its absolute path, so the venv it lives in is the
one that runs) as an unprivileged user, restarts it on failure, and locks it down: no new
privileges, the whole file system read-only (``ProtectSystem=strict``) but for the state it
writes — the directory of the SQLite database and its key file, the nightly backup directory —
home directories hidden (read-only when the program, its config or its state live in one),
a private /tmp, no devices, no kernel knobs, Internet and Unix sockets only. Secrets can stay
out of the config file, in ``/etc/bakong-console/env`` (``EnvironmentFile=``).

The paths come from the settings as this process resolves them, and the embedded database's
directory is pinned with ``BAKONG_CONSOLE_DATA_DIR`` so the service finds the same database
whatever its user's home is.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from engine import __version__
from engine.config import DATA_DIR_ENV, Settings, data_dir
from engine.crypto import key_file_in_use
from engine.db.backup import sqlite_database_file
from engine.errors import InvalidInput

__all__ = ["ENV_FILE", "ServiceUnit", "find_executable", "systemd_quote"]

#: Secrets for the service, one VAR=value a line (optional: the leading "-" in the unit).
ENV_FILE = "/etc/bakong-console/env"
#: Where ``StateDirectory=`` puts its directories (systemd creates them, owned by the user).
STATE_ROOT = Path("/var/lib")
#: What ``ProtectHome=`` covers.
HOME_ROOTS = (Path("/home"), Path("/root"), Path("/run/user"))

_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}\$?$")


def systemd_quote(word: str) -> str:
    """One word of a systemd command line or assignment (specifiers and variables escaped)."""
    word = word.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", word) or not word:
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def find_executable() -> Path:
    """The installed ``bakong-console`` beside this Python (a venv's bin/), as an absolute path."""
    # Not resolved: a venv's python is a symlink to the system one, and the venv is what counts.
    beside = Path(sys.executable).absolute().parent / "bakong-console"
    if beside.is_file():
        return beside
    argv0 = Path(sys.argv[0]).absolute()
    if argv0.name == "bakong-console" and argv0.is_file():
        return argv0
    raise InvalidInput(f"no bakong-console script beside {sys.executable}: install the package (pip install bakong-console) and run this from it")


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass
class ServiceUnit:
    """Everything the unit says, derived from the settings and the options."""

    user: str
    executable: Path
    config: Path | None
    writable: list[Path] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    readable: list[Path] = field(default_factory=list)
    stop_timeout: float = 10.0
    low_port: bool = False

    @classmethod
    def build(
        cls, settings: Settings, *, user: str, executable: Path, config: Path | None, state_dir: Path | None = None
    ) -> ServiceUnit:
        if not _USER_NAME.match(user):
            raise InvalidInput(f"{user!r} is not a user name")
        if user == "root":
            raise InvalidInput("a service should not run as root: pass --user NAME (an unprivileged user that owns the state)")
        unit = cls(user=user, executable=executable, config=config, stop_timeout=settings.daemon.stop_timeout_seconds)
        if state_dir is not None:
            state_dir = state_dir.expanduser().absolute()
        if settings.uses_embedded_database or state_dir is not None:
            # the embedded database and its key file live in the data directory: pin it
            home = state_dir or data_dir().absolute()
            unit.environment[DATA_DIR_ENV] = str(home)
            unit.writable.append(home)
        sqlite = sqlite_database_file(settings.database_url) if not settings.uses_embedded_database else None
        if sqlite is not None:
            unit.writable.append(sqlite.parent)
        if settings.database.backup_dir:
            unit.writable.append(Path(settings.database.backup_dir).expanduser().absolute())
        key_file = key_file_in_use(settings)
        if key_file is not None and not settings.uses_embedded_database:
            unit.readable.append(key_file.absolute())
        unit.writable = list(dict.fromkeys(unit.writable))
        unit.low_port = settings.api.enabled and settings.api.port < 1024
        return unit

    def _protect_home(self) -> str:
        used = [self.executable, Path(sys.prefix), *self.writable, *self.readable]
        if self.config is not None:
            used.append(self.config)
        return "read-only" if any(_under(p, root) for p in used for root in HOME_ROOTS) else "yes"

    def render(self) -> str:
        command = [str(self.executable)]
        if self.config is not None:
            command += ["--config", str(self.config)]
        command.append("serve")
        state_dirs = [p for p in self.writable if p.parent == STATE_ROOT]
        other = [p for p in self.writable if p not in state_dirs]
        lines = [
            f"# bakong-console.service, written by `bakong-console service unit` (bakong-console {__version__}).",
            "#   bakong-console service unit > /etc/systemd/system/bakong-console.service",
            "#   systemctl daemon-reload && systemctl enable --now bakong-console",
            "#   journalctl -u bakong-console      (its log)",
            f"# Secrets may live in {ENV_FILE} (root-owned, 0600), one VAR=value a line:",
            "#   BAKONG_CONSOLE_BAKONG_TOKEN, BAKONG_CONSOLE_DATA_KEY, BAKONG_CONSOLE_DATABASE_URL ...",
            "",
            "[Unit]",
            "Description=bakong-console daemon: Bakong KHQR polling, timeouts, renewals, webhooks, HTTP API",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=exec",
            f"User={self.user}",
            "ExecStart=" + " ".join(systemd_quote(word) for word in command),
            f"EnvironmentFile=-{ENV_FILE}",
            *(f"Environment={systemd_quote(f'{k}={v}')}" for k, v in sorted(self.environment.items())),
            "Restart=on-failure",
            "RestartSec=5s",
            # SIGTERM lets the batch in hand finish (daemon.stop_timeout_seconds); then systemd kills
            f"TimeoutStopSec={math.ceil(self.stop_timeout) + 10}s",
            "UMask=0077",
            "",
            "# Hardening: read-only everywhere but the state below, no privileges to gain.",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            f"ProtectHome={self._protect_home()}",
        ]
        if state_dirs:
            lines.append("StateDirectory=" + " ".join(systemd_quote(str(p.relative_to(STATE_ROOT))) for p in state_dirs))
            lines.append("StateDirectoryMode=0700")
        if other:
            lines.append("# these directories must exist (the unit cannot create them under ProtectSystem=strict)")
            lines.append("ReadWritePaths=" + " ".join(systemd_quote(str(p)) for p in other))
        capabilities = "CAP_NET_BIND_SERVICE" if self.low_port else ""
        lines += [
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectControlGroups=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "RestrictNamespaces=yes",
            "RestrictRealtime=yes",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
            "SystemCallArchitectures=native",
            "SystemCallFilter=@system-service",
            f"CapabilityBoundingSet={capabilities}",
            f"AmbientCapabilities={capabilities}",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
        return "\n".join(lines)
