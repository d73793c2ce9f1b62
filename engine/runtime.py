"""The Engine: storage, the Bakong client (or the built-in sandbox), services and workers, as one
async context manager that every face (console, daemon, CLI, HTTP API) opens the same way::

    async with Engine.open(settings) as engine:          # services only
        created = await engine.payments.initiate("12.50", "USD", actor=...)

    async with Engine.open(settings, run_workers=True) as engine:   # also poll, expire, deliver
        await engine.wait_closed()

Workers run under database leases: in a process that does not hold a worker's lease (a daemon
has it) the worker waits, and the engine follows the other process's changes through the event
log. Closing stops the workers after the batch in hand, releases their leases and closes the
database within ``stop_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


import httpx

from engine.bakong.client import BakongClient
from engine.bakong.sandbox import BakongSandbox, SandboxFaults, create_sandbox_app
from engine.bus import EventBus
from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.db import leases as lease_repo
from engine.db import state as engine_state
from engine.db.bootstrap import open_storage
from engine.db.ledger import DatabaseRequestLedger
from engine.db.sandbox_store import DatabaseTokenStore, DatabaseTransferStore
from engine.db.storage import Storage
from engine.ids import IdFactory
from engine.records import Actor, ActorType, Lease, Payment
from engine.services.api_keys import ApiKeyService
from engine.services.audit import AuditService
from engine.services.checkout import CheckoutService
from engine.services.day_close import DayCloseService
from engine.services.displays import DisplayService
from engine.services.payments import PaymentService
from engine.services.reconciliation import ReconciliationService
from engine.services.reports import ReportService
from engine.services.idempotency import IdempotentRequests
from engine.services.schedule import CheckSchedule
from engine.services.subscriptions import SubscriptionService, subscription_payment_listener
from engine.services.webhooks import WebhookService
from engine.workers.backup import NightlyBackup
from engine.workers.base import Worker, WorkerRunner, WorkerStatus
from engine.workers.deliverer import Deliverer
from engine.workers.expirer import Expirer
from engine.workers.poller import Poller, PollerState
from engine.workers.reconciler import NightlyReconciler
from engine.workers.renewer import Renewer

__all__ = ["Engine", "EngineInfo"]

log = logging.getLogger("engine")

#: Who changes what the config file says (plans seeded from it).
CONFIG_ACTOR = Actor(ActorType.SYSTEM, "config")

SANDBOX_TOKEN_SECRET = "sandbox.token"
SANDBOX_SIGNING_SECRET = "sandbox.signing_key"


@dataclass(frozen=True)
class EngineInfo:
    """Where the engine runs: what the console header and the health endpoint say."""

    environment: str
    sandbox: bool
    database: str
    holder: str


class Engine:
    """One engine per process. Build it with ``Engine.open``."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        client: BakongClient,
        *,
        clock: Clock,
        sandbox: BakongSandbox | None = None,
        holder: str | None = None,
        rng: random.Random | None = None,
        lease_ttl: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.client = client
        self.clock = clock
        self.sandbox = sandbox
        self.rng = rng or random.Random()
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease_ttl = lease_ttl
        self.stop_timeout = stop_timeout
        self.bus = EventBus(storage, clock=clock)
        self.schedule = CheckSchedule(settings.payments, rng=self.rng)
        self.poller_state = PollerState()
        self.runners: dict[str, WorkerRunner] = {}
        self.audit = AuditService(storage)
        self.api_keys = ApiKeyService(storage, clock=clock)
        self.payments = PaymentService(
            storage,
            settings,
            clock=clock,
            client=client,
            bus=self.bus,
            schedule=self.schedule,
            allowance=lambda: self.poller_state.allowance,
            poke_poller=self._poke_payment_workers,
        )
        self.reconciliation = ReconciliationService(storage, settings, clock=clock, client=client)
        self.checkout = CheckoutService(storage, settings, clock=clock, payments=self.payments)
        self.displays = DisplayService(storage, settings, clock=clock)
        self.reports = ReportService(storage, settings, clock=clock)
        self.day_close = DayCloseService(storage, self.reports, clock=clock)
        self.webhooks = WebhookService(storage, settings, clock=clock, rng=self.rng, poke_deliverer=lambda: self.poke("deliverer"))
        storage.on_commit(lambda: self.poke("deliverer"))
        self.subscriptions = SubscriptionService(
            storage, settings, clock=clock, payments=self.payments, poke_renewer=lambda: self.poke("renewer")
        )
        self.idempotency = IdempotentRequests(storage)
        # a subscription's KHQR was paid: the renewer acts on it now rather than at its next tick
        self.bus.listen(subscription_payment_listener(lambda: self.poke("renewer")))
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()

    # --- building ---------------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        run_workers: bool = False,
        migrate: bool | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        ids: IdFactory | None = None,
        rng: random.Random | None = None,
        holder: str | None = None,
        lease_ttl: float | None = None,
        stop_timeout: float | None = None,
    ) -> AsyncIterator[Engine]:
        """Open storage (migrating the embedded default), the Bakong client and the services;
        with ``run_workers`` also start the workers and the event bus."""
        clock = clock or SystemClock()
        storage = await open_storage(settings, clock=clock, ids=ids, migrate=migrate)
        client: BakongClient | None = None
        try:
            client, sandbox = await _bakong(settings, storage, clock=clock, transport=transport, rng=rng)
            engine = cls(
                settings, storage, client, clock=clock, sandbox=sandbox, holder=holder, rng=rng,
                lease_ttl=lease_ttl or settings.daemon.lease_seconds,
                stop_timeout=stop_timeout or settings.daemon.stop_timeout_seconds,
            )  # fmt: skip
            if settings.subscriptions.plans:
                await engine.subscriptions.sync_plans(settings.subscriptions.plans, actor=CONFIG_ACTOR)
            await engine.bus.start_from_now()
            engine._start_bus()
            if run_workers:
                engine.start_workers()
            try:
                yield engine
            finally:
                await engine.close()
        finally:
            if client is not None:
                await client.aclose()
            await storage.db.dispose()

    def build_workers(self) -> list[Worker]:
        """Every background job of the engine, in start order (the nightly backup only when
        ``database.backup_dir`` is set, the nightly reconciliation when ``reconcile.enabled``)."""
        return [
            Poller(self.storage, self.settings, clock=self.clock, client=self.client, schedule=self.schedule, state=self.poller_state, rng=self.rng),
            Expirer(
                self.storage, self.settings, clock=self.clock, client=self.client,
                allowance=lambda: self.poller_state.allowance, may_ask=self._poller_may_ask,
            ),
            Renewer(self.subscriptions),
            Deliverer(self.storage, self.settings, clock=self.clock, sender=self.webhooks.sender, rng=self.rng),
            *([NightlyBackup(self.storage, self.settings, clock=self.clock)] if self.settings.database.backup_dir else []),
            *([NightlyReconciler(self.reconciliation, self.storage, self.settings, clock=self.clock)] if self.settings.reconcile.enabled else []),
        ]  # fmt: skip

    def _poller_may_ask(self) -> bool:
        """Whether Bakong may be asked now: polling is not paused, blocked or backing off."""
        state, now = self.poller_state, self.clock.now()
        if state.paused_reason is not None:
            return False
        return not any(until is not None and now < until for until in (state.blocked_until, state.backoff_until))

    def _tick_for(self, worker: Worker) -> float:
        return {"poller": self.settings.payments.tick_seconds, "expirer": 5.0, "renewer": self.settings.subscriptions.tick_seconds, "deliverer": self.settings.webhooks.tick_seconds}.get(worker.name, 1.0)

    def _start_bus(self) -> None:
        self._tasks.append(asyncio.create_task(self.bus.run(), name="engine.bus"))

    def start_workers(self) -> None:
        """Start every worker under its lease (idempotent)."""
        if self.runners:
            return
        for worker in self.build_workers():
            runner = WorkerRunner(
                worker, self.storage, clock=self.clock, holder=self.holder, tick_seconds=self._tick_for(worker), lease_ttl=self.lease_ttl
            )
            self.runners[worker.name] = runner
            self._tasks.append(asyncio.create_task(runner.run(), name=f"engine.worker.{worker.name}"))

    def _poke_payment_workers(self, payment: Payment | None = None) -> None:
        """Wake the poller and the expirer; for a new ``payment``, only those that sleep past its
        first check or its expiry (see ``WorkerRunner.poke``)."""
        poller, expirer = self.runners.get("poller"), self.runners.get("expirer")
        if poller is not None:
            poller.poke(None if payment is None else payment.next_check_at)
        if expirer is not None:
            expirer.poke(None if payment is None else payment.expires_at)

    def poke(self, worker: str) -> None:
        runner = self.runners.get(worker)
        if runner is not None:
            runner.poke()

    # --- what the faces show ----------------------------------------------------------------------

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            environment=self.settings.bakong.environment,
            sandbox=self.sandbox is not None or self.settings.is_sandbox,
            database=self.storage.db.describe(),
            holder=self.holder,
        )

    def worker_statuses(self) -> list[WorkerStatus]:
        return [runner.status for runner in self.runners.values()]

    async def leases(self) -> list[Lease]:
        async with self.storage.read() as tx:
            return await lease_repo.list_leases(tx)

    async def workers_here(self) -> bool | None:
        """True if this process runs the poller, False if another process does, None if nobody."""
        now = self.clock.now()
        for lease in await self.leases():
            if lease.name == "poller" and lease.expires_at > now:
                return lease.holder == self.holder
        return None

    # --- stopping ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop workers after their batch in hand, release leases, stop the bus (bounded time)."""
        if self._closed.is_set():
            return
        for runner in self.runners.values():
            runner.stop()
        self.bus.stop()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=self.stop_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("engine task %s ended with %r", task.get_name(), task.exception())
        self._tasks.clear()
        await self.webhooks.aclose()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


async def _bakong(
    settings: Settings,
    storage: Storage,
    *,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None,
    rng: random.Random | None,
) -> tuple[BakongClient, BakongSandbox | None]:
    """The Bakong client; for the sandbox environment without a base URL, the built-in sandbox
    in-process over ASGI, its transfers and token kept in the engine's database."""
    ledger = DatabaseRequestLedger(storage)
    tokens = DatabaseTokenStore(storage)
    embedded = settings.bakong.environment == "sandbox" and not settings.bakong.base_url and transport is None
    if not embedded:
        client = BakongClient.from_settings(
            settings.bakong, clock=clock, ledger=ledger, token_store=tokens, transport=transport, rng=rng
        )
        await client.load_token()
        return client, None
    async with storage.transaction() as tx:
        signing = await engine_state.get_secret(tx, SANDBOX_SIGNING_SECRET)
        if signing is None:
            signing = secrets.token_hex(32)
            await engine_state.set_secret(tx, SANDBOX_SIGNING_SECRET, signing)
        token = settings.sandbox.token or await engine_state.get_secret(tx, SANDBOX_TOKEN_SECRET)

    async def remember(new_token: str) -> None:
        async with storage.transaction() as tx:
            await engine_state.set_secret(tx, SANDBOX_TOKEN_SECRET, new_token)

    app = create_sandbox_app(
        DatabaseTransferStore(storage),
        clock=clock,
        token=token or None,
        email=settings.bakong.email or "merchant@example.com",
        faults=SandboxFaults.from_settings(settings.sandbox),
        rng=rng,
        secret=bytes.fromhex(signing),
        on_token_renewed=remember,
    )
    sandbox: BakongSandbox = app.state.sandbox
    if not token:
        await remember(sandbox.token)
    client = BakongClient.from_settings(
        settings.bakong,
        clock=clock,
        ledger=ledger,
        token_store=None,
        transport=httpx.ASGITransport(app=app),
        rng=rng,
        token=sandbox.token,
    )
    return client, sandbox


