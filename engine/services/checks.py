"""What a check of the installation says, and the checks that doctor, setup and backups share.

``CheckResult``/``DoctorReport`` are the doctor's report lines; ``DIAGNOSIS_ADVICE`` is what to do
about each Bakong verdict; ``check_stored_secrets`` tries the data key on every secret stored in a
database; ``private_mode_problems`` says when a file or directory is open to others; ``lease_holder``
and ``pid_alive`` tell whether a worker lease belongs to a process that is gone.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import and_, not_, select
from sqlalchemy.engine import make_url

from engine.bakong.models import DiagnosisKind
from engine.config import Settings
from engine.crypto import DataCipher
from engine.db.rekey import ENCRYPTED_COLUMNS
from engine.db.storage import Storage
from engine.errors import DataKeyError

__all__ = [
    "DIAGNOSIS_ADVICE",
    "CheckResult",
    "CheckState",
    "DoctorReport",
    "LeaseHolder",
    "SecretsCheck",
    "check_stored_secrets",
    "lease_holder",
    "pid_alive",
    "private_mode_problems",
    "sqlite_path",
]

#: What to do about each Bakong verdict (setup prints it too).
DIAGNOSIS_ADVICE: dict[DiagnosisKind, str] = {
    DiagnosisKind.FINE: "",
    DiagnosisKind.GEO_BLOCKED: (
        "Bakong answers only Cambodian IP addresses: run this machine in Cambodia, or relay through one "
        "that is and set bakong.base_url to it (`bakong-console setup --force --base-url https://your-relay`)"
    ),
    DiagnosisKind.UNAUTHORIZED: (
        "get a new token at https://api-bakong.nbc.gov.kh (Register / Renew token) and give it to "
        "`bakong-console setup --force --token-file FILE`, or set bakong.email so it renews itself"
    ),
    DiagnosisKind.OUT_OF_QUOTA: "wait for midnight Phnom Penh time (the quota resets), or raise bakong.daily_budget if Bakong allows more",
    DiagnosisKind.UNREACHABLE: "check this machine's network and bakong.base_url; then `bakong-console bakong diagnose`",
    DiagnosisKind.DEGRADED: "Bakong is failing right now; try again later with `bakong-console bakong diagnose`",
}

#: Free space beside SQLite below which the doctor fails / warns.
class CheckState(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    #: Not run: a check it depends on failed, or it does not apply here.
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One line of the doctor's report: what was checked, how it went, what to do."""

    name: str
    state: CheckState
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "state": self.state.value, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class DoctorReport:
    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> bool:
        return any(r.state is CheckState.FAIL for r in self.results)

    def result(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.failed, "checks": [r.as_dict() for r in self.results]}


# --- shared with setup and backups --------------------------------------------------------------------


def sqlite_path(settings: Settings) -> Path | None:
    """The SQLite database file these settings use (None: PostgreSQL or in-memory)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def private_mode_problems(path: Path, *, directory: bool = False) -> str | None:
    """How ``path`` is wider than 0600 (a file) or 0700 (a directory), or None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if mode & 0o077:
        return f"{path} is {mode:04o} (wider than {'0700' if directory else '0600'})"
    return None


@dataclass(frozen=True)
class SecretsCheck:
    """What the stored secrets say about the data key: how many were tried, which did not open."""

    tried: int
    problems: tuple[str, ...] = ()


async def check_stored_secrets(storage: Storage) -> SecretsCheck:
    """Open one stored secret per encrypted column and key id with ``storage.cipher``.

    One value per (column, key id) is enough: a wrong key fails on the first value it sealed. A
    value sealed with a key id the cipher does not know is reported by that id.
    """
    cipher = storage.cipher
    tried = 0
    problems: list[str] = []
    async with storage.read() as tx:
        for col in ENCRYPTED_COLUMNS:
            attr = getattr(col.model, col.column)
            where = f"{col.model.__tablename__}.{col.column}"  # type: ignore[attr-defined]
            for kid in sorted(cipher.keys):
                row = (await tx.session.scalars(select(col.model).where(attr.like(f"v1:{kid}:%")).limit(1))).first()
                if row is None:
                    continue
                tried += 1
                try:
                    cipher.decrypt(getattr(row, col.column), context=col.context(row))
                except DataKeyError as exc:
                    problems.append(f"{where}: {exc.message}")
            known = [attr.like(f"v1:{kid}:%") for kid in cipher.keys]
            stranger = (
                await tx.session.scalars(select(attr).where(and_(attr.is_not(None), *(not_(k) for k in known))).limit(1))
            ).first()
            if stranger is not None:
                tried += 1
                try:
                    kid = DataCipher.key_id_of(stranger)
                except DataKeyError as exc:
                    problems.append(f"{where}: {exc.message}")
                else:
                    problems.append(f"{where}: sealed with key {kid!r}, which is not configured")
    return SecretsCheck(tried, tuple(problems))


class LeaseHolder(NamedTuple):
    host: str
    pid: int | None


def lease_holder(holder: str) -> LeaseHolder:
    """An engine's holder name is ``host:pid:random`` (see ``Engine``)."""
    parts = holder.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return LeaseHolder(parts[0], int(parts[1]))
    return LeaseHolder(holder, None)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
