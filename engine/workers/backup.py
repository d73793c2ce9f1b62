"""The nightly backup: once a night, at ``database.backup_at`` Phnom Penh time, a copy of the
database in ``database.backup_dir``, the newest ``database.backup_keep`` kept.

It runs under its lease like every worker, so one process takes it whatever number of daemons
and consoles share the database. What was done is kept in the engine state (``backup.nightly``),
so a daemon restarted after 03:00, or another process that took the lease over, does not take
that night's backup twice — and one started later than 03:00 that finds no backup of that night
takes it at once. The state also says a backup is under way, so a process that takes the lease
over from one still running a long ``pg_dump`` waits for it instead of starting a second one.
A failed backup becomes one ``alert.backup_failed`` event for the night and is
tried again every ``RETRY_SECONDS`` until it succeeds or the next night comes.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from pathlib import Path

from engine import events as ev
from engine.clock import PHNOM_PENH, Clock, utc
from engine.config import Settings, parse_backup_at
from engine.db import journal
from engine.db import state as engine_state
from engine.db.storage import Storage
from engine.errors import BakongConsoleError
from engine.records import Actor
from engine.services.backups import backup_database, backup_file_name, prune_backups
from engine.workers.base import Worker

__all__ = ["ACTOR", "NIGHTLY_STATE", "NightlyBackup", "last_due"]

log = logging.getLogger("engine.backup")

ACTOR = Actor.daemon("backup")
NIGHTLY_STATE = "backup.nightly"
#: What the state keeps of the last backup that worked, whatever happened since.
_DONE_KEYS = ("done_for", "at", "file", "bytes")


def last_due(now: datetime, at: tuple[int, int]) -> datetime:
    """The latest scheduled backup instant at or before ``now`` (UTC)."""
    local = utc(now).astimezone(PHNOM_PENH)
    due = local.replace(hour=at[0], minute=at[1], second=0, microsecond=0)
    if due > local:
        due -= timedelta(days=1)
    return due.astimezone(utc(now).tzinfo)


class NightlyBackup(Worker):
    name = "backup"
    #: After a failure, the next try comes this much later (the same night).
    RETRY_SECONDS = 3600.0

    def __init__(self, storage: Storage, settings: Settings, *, clock: Clock) -> None:
        at = parse_backup_at(settings.database.backup_at)
        if at is None:  # validated with the settings; kept for settings built in code
            raise ValueError(f"database.backup_at: not a time of day: {settings.database.backup_at!r}")
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.at = at
        self.directory = Path(settings.database.backup_dir).expanduser()
        self.keep = settings.database.backup_keep
        #: the scheduled instant this process knows is done (saves a read per wake-up)
        self._done: datetime | None = None
        #: marks the backups this worker started (the state says who is taking the night's)
        self._token = secrets.token_hex(8)

    async def on_lease_lost(self) -> None:
        self._done = None

    def _until_next(self, due: datetime) -> float:
        return max(1.0, (due + timedelta(days=1) - self.clock.now()).total_seconds())

    async def run_once(self) -> float | None:
        now = self.clock.now()
        due = last_due(now, self.at)
        if self._done is not None and self._done >= due:
            return self._until_next(due)
        async with self.storage.read() as tx:
            state = await engine_state.get_state(tx, NIGHTLY_STATE) or {}
        done = state.get("done_for")
        if done is not None and datetime.fromisoformat(done) >= due:
            self._done = due
            return self._until_next(due)
        # another process is taking it (a long pg_dump outlived its lease): give it its time
        elsewhere = state.get("running_for") == due.isoformat() and state.get("token") != self._token
        wait = self._retry_wait(state.get("started_at") if elsewhere else None, now)
        # this night's failed: the next try comes RETRY_SECONDS after the last
        wait = wait or self._retry_wait(state.get("failed_at") if state.get("failed_for") == due.isoformat() else None, now)
        return wait or await self._take(due, state)

    def _retry_wait(self, since: object, now: datetime) -> float:
        """Seconds left of RETRY_SECONDS after the instant ``since`` (0: none left, or no instant)."""
        if not isinstance(since, str):
            return 0.0
        return max(0.0, (datetime.fromisoformat(since) + timedelta(seconds=self.RETRY_SECONDS) - now).total_seconds())

    async def _take(self, due: datetime, state: dict[str, object]) -> float:
        db = self.storage.db
        async with self.storage.transaction(events=False) as tx:
            await engine_state.set_state(
                tx, NIGHTLY_STATE, {**state, "running_for": due.isoformat(), "started_at": tx.now.isoformat(), "token": self._token}
            )
        target = self.directory / backup_file_name(self.clock.now(), postgres=db.is_postgres)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            done = await backup_database(db.url, target, busy_timeout=db.busy_timeout)
        except (BakongConsoleError, OSError) as exc:
            message = exc.message if isinstance(exc, BakongConsoleError) else f"{self.directory}: {exc.strerror or exc}"
            await self._failed(due, state, message)
            return self.RETRY_SECONDS
        try:
            pruned = prune_backups(self.directory, self.keep)
        except OSError as exc:  # the backup itself is fine; an old file left over is not an alert
            log.warning("nightly backup: could not prune %s: %s", self.directory, exc.strerror or exc)
            pruned = []
        async with self.storage.transaction(events=False) as tx:
            await engine_state.set_state(
                tx, NIGHTLY_STATE,
                {"done_for": due.isoformat(), "at": tx.now.isoformat(), "file": str(done.path), "bytes": done.bytes},
            )  # fmt: skip
            await journal.audit(
                tx, ACTOR, "database.backup", "database", db.describe(),
                after={"file": str(done.path), "bytes": done.bytes, "pruned": [p.name for p in pruned]},
            )  # fmt: skip
        self._done = due
        log.info("nightly backup: %s (%d bytes), %d old one(s) pruned", done.path, done.bytes, len(pruned))
        return self._until_next(due)

    async def _failed(self, due: datetime, state: dict[str, object], message: str) -> None:
        first = state.get("failed_for") != due.isoformat()
        log.error("nightly backup failed: %s", message)
        async with self.storage.transaction(events=first) as tx:
            keep = {k: v for k, v in state.items() if k in _DONE_KEYS}
            await engine_state.set_state(
                tx, NIGHTLY_STATE, {**keep, "failed_for": due.isoformat(), "failed_at": tx.now.isoformat(), "error": message}
            )
            if first:  # one alert a night; the retries say nothing new
                await journal.append_event(
                    tx, ev.ALERT_BACKUP_FAILED, "database", "backup",
                    {"message": f"nightly backup failed: {message}", "directory": str(self.directory), "due": due.isoformat()},
                )  # fmt: skip
