"""The doctor: is this installation ready to take payments, and if not, what to do about it.

Each check is a small coroutine that returns one ``CheckResult`` (``ok``, ``warn``, ``FAIL`` or
``skip`` when a check it depends on already failed), with a one-line detail and, when something
is wrong, the one thing to do. ``Doctor.run`` runs them in order and never changes anything: it
opens no engine, migrates nothing, creates no key file and no database (``bakong`` spends one
metered Bakong request, recorded in the shared ledger when the database is there).

The checks: the config loads (its file is private, the packages it needs are installed); the database answers and is migrated;
the data key loads and opens the secrets stored with it; the Bakong token's days left; Bakong's
verdict (``diagnose``); the clock against Bakong's ``Date`` header; free disk beside SQLite and
whether its files are private; webhook endpoints' health; worker leases left by dead processes.

``Doctor`` is that list of checks, a method each in the order they run, sharing what earlier ones
learned (``_State``); it stays one class so the order and the dependencies read top to bottom.
The report types and what setup and backups share with it are in ``engine.services.checks``.
"""

from __future__ import annotations

import contextlib
import email.utils
import importlib.util
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from engine.bakong.budget import InMemoryRequestLedger
from engine.bakong.client import BakongClient
from engine.bakong.environments import base_url_for
from engine.bakong.models import Diagnosis, DiagnosisKind
from engine.bakong.token import BakongToken, TokenInfo
from engine.clock import Clock, SystemClock, utc
from engine.config import MerchantSettings, Settings, data_dir, load_settings
from engine.crypto import DataCipher, key_file_in_use, load_data_cipher
from engine.db import leases as lease_repo
from engine.db import webhooks as webhook_repo
from engine.db.database import Database
from engine.db.ledger import DatabaseRequestLedger
from engine.db.migrate import current_revision, head_revision
from engine.db.sandbox_store import DatabaseTokenStore
from engine.db.storage import Storage
from engine.errors import BakongConsoleError, ConfigError, DataKeyError, StorageError
from engine.extras import missing_extras
from engine.services.checks import (
    DIAGNOSIS_ADVICE,
    CheckResult,
    CheckState,
    DoctorReport,
    SecretsCheck,
    check_stored_secrets,
    lease_holder,
    pid_alive,
    private_mode_problems,
    sqlite_path,
)

__all__ = [
    "CheckResult",
    "CheckState",
    "DIAGNOSIS_ADVICE",
    "Doctor",
    "DoctorReport",
    "SecretsCheck",
    "check_stored_secrets",
    "private_mode_problems",
    "sqlite_path",
]

DISK_FAIL_BYTES = 256 * 1024 * 1024
DISK_WARN_BYTES = 1024 * 1024 * 1024
#: Clock skew against Bakong's Date header (seconds, beyond the request's own round trip).
SKEW_WARN_SECONDS = 5.0
SKEW_FAIL_SECONDS = 60.0
#: An enabled webhook endpoint failing this long is a failure, not a hiccup.
WEBHOOK_FAILING_FAIL = timedelta(hours=1)


def _ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, CheckState.OK, detail)


def _warn(name: str, detail: str, fix: str = "") -> CheckResult:
    return CheckResult(name, CheckState.WARN, detail, fix)


def _fail(name: str, detail: str, fix: str = "") -> CheckResult:
    return CheckResult(name, CheckState.FAIL, detail, fix)


def _skip(name: str, detail: str) -> CheckResult:
    return CheckResult(name, CheckState.SKIP, detail)


# --- the doctor -------------------------------------------------------------------------------------


@dataclass
class _State:
    """What earlier checks learned that later ones need."""

    settings: Settings | None = None
    cipher: DataCipher | None = None
    cipher_error: str | None = None
    storage: Storage | None = None
    migrated: bool = False
    diagnosis: Diagnosis | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Doctor:
    """Runs every check for the configuration at ``config_path`` (discovered as the CLI does).

    ``clock`` is the engine's clock (compared with Bakong's); ``transport`` replaces the network
    (tests); ``disk_usage``, ``hostname``, ``pid_alive`` and ``find_spec`` (the optional packages
    installed) are injectable for the same reason.
    """

    def __init__(
        self,
        config_path: str | Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        disk_usage: Callable[[str], Any] = shutil.disk_usage,
        hostname: str | None = None,
        is_alive: Callable[[int], bool] = pid_alive,
        find_spec: Callable[[str], Any] = importlib.util.find_spec,
    ) -> None:
        self.config_path = config_path
        self.environ = environ
        self.clock = clock or SystemClock()
        self.transport = transport
        self.disk_usage = disk_usage
        self.hostname = hostname or socket.gethostname()
        self.is_alive = is_alive
        self.find_spec = find_spec

    async def run(self) -> DoctorReport:
        state = _State()
        results: list[CheckResult] = [self._config(state)]
        async with self._opened(state):
            results.append(await self._database(state))
            results.append(await self._data_key(state))
            results.append(await self._token(state))
            results.append(await self._bakong(state))
            results.append(await self._clock(state))
            results.append(self._disk(state))
            results.append(self._sqlite_files(state))
            results.append(await self._webhooks(state))
            results.append(await self._leases(state))
        return DoctorReport(tuple(results))

    # --- config -------------------------------------------------------------------------------

    def _config(self, state: _State) -> CheckResult:
        try:
            settings = load_settings(self.config_path, environ=self.environ)
        except ConfigError as exc:
            return _fail("config", exc.message, "fix the file (`bakong-console config check FILE`) or run `bakong-console setup`")
        state.settings = settings
        where = str(settings.source) if settings.source else "no config file (the built-in sandbox defaults)"
        summary = f"{where}: {settings.bakong.environment}, merchant {settings.merchant.bakong_account_id}"
        if settings.source is not None:
            wide = private_mode_problems(settings.source)
            if wide and settings.bakong.token:
                return _warn("config", f"{summary}; {wide} and it holds the Bakong token", f"chmod 600 {settings.source}")
        if not settings.is_sandbox and settings.merchant.bakong_account_id == MerchantSettings().bakong_account_id:
            return _fail("config", f"{summary}: the merchant is still the sandbox's", "run `bakong-console setup --force`")
        missing = missing_extras(settings, find_spec=self.find_spec)
        if missing:
            return _fail("config", f"{summary}; {missing[0].message.split(':', 1)[0]}", missing[0].install)
        return _ok("config", summary)

    # --- storage ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _opened(self, state: _State) -> AsyncIterator[None]:
        """The database, opened read-only in spirit: nothing is created or migrated."""
        settings = state.settings
        if settings is None:
            yield
            return
        try:
            state.cipher = self._cipher(settings)
        except DataKeyError as exc:
            state.cipher_error = exc.message
        path = sqlite_path(settings)
        if path is not None and not path.exists():
            state.notes["database_missing"] = path
            yield
            return
        # Reading leases and webhooks needs no key; a cipher that opens nothing stands in for a
        # missing one, so those checks still run and any decryption fails loudly.
        cipher = state.cipher or DataCipher("none", {"none": os.urandom(32)})
        db = Database(settings.database_url, busy_timeout=settings.database.sqlite_busy_timeout, pool_size=settings.database.pool_size)
        state.storage = Storage(db, clock=self.clock, cipher=cipher)
        try:
            yield
        finally:
            await db.dispose()

    @staticmethod
    def _cipher(settings: Settings) -> DataCipher:
        path = key_file_in_use(settings)
        if path is not None and not path.exists():
            if settings.security.data_key_file:
                raise DataKeyError(f"{path}: the data key file is missing")
            raise DataKeyError(f"{path}: no data key yet (it is made at the first start)")
        return load_data_cipher(settings)

    async def _database(self, state: _State) -> CheckResult:
        settings = state.settings
        if settings is None:
            return _skip("database", "the config does not load")
        missing = state.notes.get("database_missing")
        if missing is not None:
            if settings.uses_embedded_database:
                return _ok("database", f"sqlite:{missing} does not exist yet: it is made and migrated at the first start")
            return _fail("database", f"sqlite:{missing} does not exist", "run `bakong-console db upgrade` to create it")
        assert state.storage is not None
        db = state.storage.db
        try:
            await db.ping()
            revision = await current_revision(db)
        except StorageError as exc:
            return _fail("database", exc.message, "check database.url and that the server runs and accepts this user")
        head = head_revision()
        if revision == head:
            state.migrated = True
            return _ok("database", f"{db.describe()} answers, schema at {head}")
        where = "empty" if revision is None else f"at {revision}"
        if settings.uses_embedded_database and revision is not None:
            return _warn("database", f"{db.describe()} is {where}, not {head}: migrated at the next start", "`bakong-console db upgrade` does it now")
        return _fail("database", f"{db.describe()} is {where}, not at {head}", "stop every instance, then run `bakong-console db upgrade`")

    async def _data_key(self, state: _State) -> CheckResult:
        settings = state.settings
        if settings is None:
            return _skip("data key", "the config does not load")
        key_file = key_file_in_use(settings)
        if state.cipher is None:
            if "database_missing" in state.notes and settings.uses_embedded_database and not settings.security.data_key_file:
                return _ok("data key", f"{key_file}: made with the database at the first start")
            return _fail("data key", state.cipher_error or "no data key", "restore the key file from your backup, or set BAKONG_CONSOLE_DATA_KEY")
        where = f"key {state.cipher.active_id}" + (f" from {key_file}" if key_file else " from security.data_key")
        wide = private_mode_problems(key_file) if key_file else None
        if not state.migrated or state.storage is None:
            detail = f"{where} loads; no stored secret to try it on"
            return _warn("data key", f"{detail}; {wide}", f"chmod 600 {key_file}") if wide else _ok("data key", detail)
        try:
            checked = await check_stored_secrets(state.storage)
        except StorageError as exc:
            return _fail("data key", exc.message)
        if checked.problems:
            return _fail(
                "data key",
                f"{where} does not open every stored secret: {checked.problems[0]}",
                "configure the key the data was written with (security.data_key_file, or the old one in security.previous_data_keys)",
            )
        detail = f"{where} opens the stored secrets ({checked.tried} tried)"
        if wide:
            return _warn("data key", f"{detail}; {wide}", f"chmod 600 {key_file}")
        return _ok("data key", detail)

    # --- Bakong -------------------------------------------------------------------------------

    def _embedded_sandbox(self, settings: Settings) -> bool:
        return settings.is_sandbox and not settings.bakong.base_url

    async def _token_info(self, state: _State) -> TokenInfo | None:
        """The token the engine would use: the configured one, or a renewed one kept in the database."""
        settings = state.settings
        assert settings is not None
        now = self.clock.now()
        token = BakongToken(settings.bakong.token) if settings.bakong.token.strip() else None
        if state.storage is not None and state.migrated and state.cipher is not None:
            try:
                stored = await DatabaseTokenStore(state.storage).load()
            except BakongConsoleError:
                stored = None
            if stored and stored.strip():
                candidate = BakongToken(stored)
                if token is None or (
                    candidate.expires_at is not None and token.expires_at is not None and candidate.expires_at > token.expires_at
                ):
                    token = candidate
        return token.info(now) if token else None

    async def _token(self, state: _State) -> CheckResult:
        settings = state.settings
        if settings is None:
            return _skip("token", "the config does not load")
        if self._embedded_sandbox(settings):
            return _ok("token", "the built-in sandbox issues its own")
        info = await self._token_info(state)
        email = settings.bakong.email
        if info is None:
            return _fail("token", "no Bakong token is configured", "get one at https://api-bakong.nbc.gov.kh and run `bakong-console setup --force --token-file FILE`")
        if info.expires_at is None:
            return _ok("token", f"{info.fingerprint}: expiry unknown (not a JWT; a relay's own token?)")
        expires = f"{info.expires_at:%Y-%m-%d}"
        if info.expired:
            if email:
                return _warn("token", f"{info.fingerprint} expired on {expires}; it is renewed with {email} at the next request",
                             "`bakong-console bakong renew-token` renews it now")  # fmt: skip
            return _fail("token", f"{info.fingerprint} expired on {expires}",
                         "get a new one at https://api-bakong.nbc.gov.kh, then `bakong-console setup --force --token-file FILE`; set bakong.email to renew it automatically")  # fmt: skip
        days = info.days_left
        window = settings.bakong.renew_days_before_expiry
        if email and window > 0:
            return _ok("token", f"{info.fingerprint}: {days} days left (until {expires}); renewed with {email} {window} days before")
        if days is not None and days <= max(window, 14):
            return _warn("token", f"{info.fingerprint}: {days} days left (until {expires}) and nothing renews it",
                         "set bakong.email (renewed automatically) or `bakong-console bakong renew-token --email ...`")  # fmt: skip
        return _ok("token", f"{info.fingerprint}: {days} days left (until {expires})")

    async def _bakong(self, state: _State) -> CheckResult:
        settings = state.settings
        if settings is None:
            return _skip("bakong", "the config does not load")
        if self._embedded_sandbox(settings):
            return _ok("bakong", "the built-in sandbox (no Bakong to reach)")
        ledger = (
            DatabaseRequestLedger(state.storage)
            if state.storage is not None and state.migrated
            else InMemoryRequestLedger()
        )
        token_store = DatabaseTokenStore(state.storage) if state.storage is not None and state.migrated and state.cipher else None
        try:
            async with BakongClient.from_settings(
                settings.bakong, clock=self.clock, ledger=ledger, token_store=token_store, transport=self.transport
            ) as client:
                if token_store is not None:
                    with contextlib.suppress(BakongConsoleError):
                        await client.load_token()
                diagnosis = await client.diagnose()
        except BakongConsoleError as exc:
            return _fail("bakong", exc.message, DIAGNOSIS_ADVICE[DiagnosisKind.UNREACHABLE])
        state.diagnosis = diagnosis
        line = f"{diagnosis.kind.value}: {diagnosis.sentence}"
        if diagnosis.ok:
            return _ok("bakong", line)
        advice = DIAGNOSIS_ADVICE[diagnosis.kind]
        if diagnosis.kind is DiagnosisKind.OUT_OF_QUOTA:
            return _warn("bakong", line, advice)
        return _fail("bakong", line, advice)

    async def _clock(self, state: _State) -> CheckResult:
        settings = state.settings
        if settings is None:
            return _skip("clock", "the config does not load")
        if self._embedded_sandbox(settings):
            return _ok("clock", "the built-in sandbox shares this machine's clock")
        base = base_url_for(settings.bakong)
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=settings.bakong.timeout_seconds) as http:
                before = self.clock.now()
                # Any answer carries the server's Date, a 403 or a 404 included: no metered path is used.
                response = await http.get(base + "/")
                after = self.clock.now()
        except httpx.HTTPError as exc:
            return _skip("clock", f"no answer from {base} to compare clocks with ({type(exc).__name__})")
        header = response.headers.get("date")
        server = email.utils.parsedate_to_datetime(header) if header else None
        if server is None:
            return _warn("clock", f"{base} sent no Date header to compare clocks with")
        midpoint = before + (after - before) / 2
        skew = (utc(server) - midpoint).total_seconds()
        # The header has whole seconds and the answer took a while: that much is not skew.
        slack = 1.0 + (after - before).total_seconds() / 2
        beyond = max(0.0, abs(skew) - slack)
        direction = "behind" if skew > 0 else "ahead of"
        detail = f"this machine is {abs(skew):.0f} s {direction} Bakong's clock"
        fix = "turn on time synchronisation (`timedatectl set-ntp true`): KHQR expiry times are written with this clock"
        if beyond > SKEW_FAIL_SECONDS:
            return _fail("clock", detail, fix)
        if beyond > SKEW_WARN_SECONDS:
            return _warn("clock", detail, fix)
        return _ok("clock", f"within {max(abs(skew), 1.0):.0f} s of Bakong's clock")

    # --- the machine --------------------------------------------------------------------------

    def _disk(self, state: _State) -> CheckResult:
        settings = state.settings
        if settings is None:
            return _skip("disk", "the config does not load")
        path = sqlite_path(settings)
        if path is None:
            return _skip("disk", "PostgreSQL: its disk is the database server's to watch")
        where = path.parent if path.parent.exists() else data_dir()
        while not where.exists() and where != where.parent:
            where = where.parent
        try:
            usage = self.disk_usage(str(where))
        except OSError as exc:
            return _warn("disk", f"cannot read free space of {where}: {exc.strerror}")
        free = int(usage.free)
        text = f"{free / 1024**3:.1f} GiB free beside {path}"
        fix = f"free space on the disk of {where} (old logs, backups), or move the database"
        if free < DISK_FAIL_BYTES:
            return _fail("disk", text, fix)
        if free < DISK_WARN_BYTES:
            return _warn("disk", text, fix)
        return _ok("disk", text)

    def _sqlite_files(self, state: _State) -> CheckResult:
        settings = state.settings
        if settings is None:
            return _skip("sqlite files", "the config does not load")
        path = sqlite_path(settings)
        if path is None:
            return _skip("sqlite files", "PostgreSQL: no database file here")
        problems = [private_mode_problems(path.parent, directory=True)]
        problems += [private_mode_problems(path.with_name(path.name + suffix)) for suffix in ("", "-wal", "-shm")]
        found = [p for p in problems if p]
        if found:
            files = " ".join(str(path.with_name(path.name + s)) for s in ("", "-wal", "-shm") if path.with_name(path.name + s).exists())
            return _warn("sqlite files", "readable by others: " + "; ".join(found),
                         f"chmod 700 {path.parent}" + (f" && chmod 600 {files}" if files else ""))  # fmt: skip
        if not path.exists():
            return _ok("sqlite files", f"{path.parent}: nothing written yet")
        return _ok("sqlite files", f"{path} and its directory are private to their owner")

    # --- what runs on the database ------------------------------------------------------------

    async def _webhooks(self, state: _State) -> CheckResult:
        if state.settings is None:
            return _skip("webhooks", "the config does not load")
        if state.storage is None or not state.migrated:
            return _skip("webhooks", "no migrated database to read")
        now = self.clock.now()
        try:
            async with state.storage.read() as tx:
                endpoints = await webhook_repo.list_endpoints(tx)
                stats = await webhook_repo.endpoint_stats(tx)
        except StorageError as exc:
            return _fail("webhooks", exc.message)
        if not endpoints:
            return _ok("webhooks", "no endpoints configured")
        failing_long, failing_new, disabled, given_up = [], [], [], 0
        for e in endpoints:
            given_up += stats.get(e.id, {}).get("failed", 0) if e.enabled else 0
            if not e.enabled:
                disabled.append(f"{e.id} ({e.url}) disabled: {e.disabled_reason or 'by an operator'}")
            elif e.failing_since is not None:
                since = utc(e.failing_since)
                text = f"{e.id} ({e.url}) failing since {since:%Y-%m-%d %H:%M} UTC"
                (failing_long if now - since >= WEBHOOK_FAILING_FAIL else failing_new).append(text)
        if failing_long:
            return _fail("webhooks", "; ".join(failing_long),
                         "fix the receiving backend (`bakong-console webhooks attempts DELIVERY` shows its answers); retries continue")  # fmt: skip
        if disabled:
            return _warn("webhooks", "; ".join(disabled),
                         "`bakong-console webhooks enable ID`, then `bakong-console webhooks recover ID --since DATE`")  # fmt: skip
        if failing_new:
            return _warn("webhooks", "; ".join(failing_new), "retries continue; watch `bakong-console webhooks list`")
        if given_up:
            return _warn("webhooks", f"{given_up} deliveries were given up", "`bakong-console webhooks recover ID --since DATE` resends them")
        return _ok("webhooks", f"{len(endpoints)} endpoint{'s' if len(endpoints) != 1 else ''} healthy")

    async def _leases(self, state: _State) -> CheckResult:
        if state.settings is None:
            return _skip("leases", "the config does not load")
        if state.storage is None or not state.migrated:
            return _skip("leases", "no migrated database to read")
        now = self.clock.now()
        try:
            async with state.storage.read() as tx:
                leases = await lease_repo.list_leases(tx)
        except StorageError as exc:
            return _fail("leases", exc.message)
        dead: list[str] = []
        for lease in leases:
            holder = lease_holder(lease.holder)
            if utc(lease.expires_at) <= now:
                dead.append(f"{lease.name} held by {lease.holder} (lapsed {utc(lease.expires_at):%Y-%m-%d %H:%M:%S} UTC)")
            elif holder.host == self.hostname and holder.pid is not None and not self.is_alive(holder.pid):
                dead.append(f"{lease.name} held by {lease.holder} (process {holder.pid} is gone)")
        if dead:
            return _fail("leases", "left by a dead instance: " + "; ".join(dead),
                         "start `bakong-console serve` (or the console): it takes the work over once the lease lapses")  # fmt: skip
        if not leases:
            return _ok("leases", "no worker is running (nothing is polled until `bakong-console serve` or the console starts)")
        holders = sorted({lease.holder for lease in leases})
        return _ok("leases", f"{len(leases)} held by {', '.join(holders)}")

