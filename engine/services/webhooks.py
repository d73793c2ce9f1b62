"""Webhook use cases: endpoints and their secrets, the delivery log, replay, recover, health, test.

The faces (console, CLI, HTTP API) call these methods. An endpoint's ``whsec_`` secret is shown
exactly once, when it is created or rotated; after that only its ciphertext exists. Sending is the
deliverer's job (``engine.workers.deliverer``); ``send_test`` is the one exception: it sends one
``webhook.test`` message right away so an integrator sees the answer at once.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from engine import events as ev
from engine.clock import Clock
from engine.config import Settings
from engine.db import webhooks as repo
from engine.db.storage import Storage
from engine.errors import InvalidInput, InvalidTransition
from engine.records import Actor, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from engine.webhooks.policy import AttemptResult
from engine.webhooks.message import encode_body, in_flight_window
from engine.webhooks.sender import WebhookSender
from engine.webhooks.signing import generate_secret

__all__ = ["EndpointHealth", "TestDelivery", "WebhookService"]

MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
MAX_PAGE = 500


@dataclass(frozen=True)
class EndpointHealth:
    """How one endpoint is doing: what the console's webhook screen and the health check show."""

    endpoint: WebhookEndpoint
    pending: int
    failed: int
    last_success_at: datetime | None

    @property
    def enabled(self) -> bool:
        return self.endpoint.enabled

    @property
    def failing_since(self) -> datetime | None:
        return self.endpoint.failing_since


@dataclass(frozen=True)
class TestDelivery:
    """The outcome of ``send_test``: the delivery written and the answer to its first attempt."""

    delivery: WebhookDelivery
    result: AttemptResult

    @property
    def succeeded(self) -> bool:
        return self.result.succeeded


def _clean_url(url: str) -> str:
    text = (url or "").strip()
    if not text:
        raise InvalidInput("a webhook URL is required", field="url")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidInput(f"the URL is longer than {MAX_URL_LENGTH} characters", field="url")
    if any(ord(c) <= 32 for c in text):
        raise InvalidInput("the URL contains spaces or control characters", field="url")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"the URL must start with http:// or https://, not {text[:20]!r}", field="url")
    if not parts.hostname:
        raise InvalidInput("the URL has no host", field="url")
    if parts.username or parts.password:
        raise InvalidInput("the URL must not carry credentials: messages are signed instead", field="url")
    if parts.fragment:
        raise InvalidInput("the URL must not have a #fragment", field="url")
    try:
        _ = parts.port
    except ValueError:
        raise InvalidInput("the URL's port is not a number from 1 to 65535", field="url") from None
    if parts.hostname.startswith("[") or ":" in parts.hostname:
        try:
            ipaddress.ip_address(parts.hostname.strip("[]"))
        except ValueError:
            raise InvalidInput("the URL's host is not valid", field="url") from None
    return text


def _clean_event_types(event_types: Iterable[str] | None) -> tuple[str, ...]:
    seen: list[str] = []
    for item in event_types or ():
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name not in ev.ALL_EVENT_TYPES:
                raise InvalidInput(f"unknown event type {name!r}", field="event_types")
            if name not in seen:
                seen.append(name)
    return tuple(seen)


def _clean_text(value: str | None, field: str, limit: int) -> str:
    text = (value or "").strip()
    if len(text) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters", field=field)
    if any(ord(c) < 32 for c in text):
        raise InvalidInput(f"{field} contains control characters", field=field)
    return text


class WebhookService:
    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        sender: WebhookSender | None = None,
        poke_deliverer: Callable[[], None] = lambda: None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        wh = settings.webhooks
        self.sender = sender or WebhookSender(clock=clock, timeout_seconds=wh.timeout_seconds)
        self.poke_deliverer = poke_deliverer

    async def aclose(self) -> None:
        """Close the shared HTTP client (the engine does this when it closes)."""
        await self.sender.aclose()

    # --- endpoints --------------------------------------------------------------------------------

    async def add_endpoint(
        self, url: str, event_types: Iterable[str] | None = None, description: str | None = None, *, actor: Actor
    ) -> tuple[WebhookEndpoint, str]:
        """A new enabled endpoint and its ``whsec_`` secret (returned this once, stored encrypted).
        No event types means every type."""
        clean_url = _clean_url(url)
        types = _clean_event_types(event_types)
        text = _clean_text(description, "description", MAX_DESCRIPTION_LENGTH)
        secret = generate_secret()
        async with self.storage.transaction() as tx:
            endpoint = await repo.insert_endpoint(tx, actor=actor, url=clean_url, event_types=types, description=text, secret=secret)
        return endpoint, secret

    async def list_endpoints(self) -> list[WebhookEndpoint]:
        async with self.storage.read() as tx:
            return await repo.list_endpoints(tx)

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        async with self.storage.read() as tx:
            return await repo.get_endpoint(tx, endpoint_id)

    async def disable(self, endpoint_id: str, *, actor: Actor, reason: str | None = None) -> WebhookEndpoint:
        """Stop sending to an endpoint; its pending deliveries wait as DISABLED (see ``recover``)."""
        why = _clean_text(reason, "reason", 500) or "disabled by operator"
        async with self.storage.transaction() as tx:
            endpoint = await repo.disable_endpoint(tx, endpoint_id, actor=actor, reason=why)
        if endpoint is None:
            raise InvalidTransition(f"webhook endpoint {endpoint_id} is already disabled")
        return endpoint

    async def enable(self, endpoint_id: str, *, actor: Actor, reason: str | None = None) -> WebhookEndpoint:
        """Send to the endpoint again from now on (``recover`` re-sends what it missed)."""
        why = _clean_text(reason, "reason", 500) or None
        async with self.storage.transaction() as tx:
            endpoint = await repo.enable_endpoint(tx, endpoint_id, actor=actor, reason=why)
        if endpoint is None:
            raise InvalidTransition(f"webhook endpoint {endpoint_id} is already enabled")
        self.poke_deliverer()
        return endpoint

    async def rotate_secret(self, endpoint_id: str, *, actor: Actor) -> tuple[WebhookEndpoint, str]:
        """A new secret (returned this once); the old one keeps signing beside it for
        ``webhooks.rotation_window_hours``, so the receiver can switch without losing a message."""
        secret = generate_secret()
        window = timedelta(hours=self.settings.webhooks.rotation_window_hours)
        async with self.storage.transaction() as tx:
            endpoint = await repo.rotate_secret(tx, endpoint_id, actor=actor, new_secret=secret, window=window)
        return endpoint, secret

    # --- the delivery log -------------------------------------------------------------------------

    async def list_deliveries(
        self, endpoint_id: str | None = None, failed_only: bool = False, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[WebhookDelivery], str | None]:
        """Newest first, one page and the next page's cursor (None at the end)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        async with self.storage.read() as tx:
            if endpoint_id:
                await repo.get_endpoint(tx, endpoint_id)
            return await repo.list_deliveries(tx, endpoint_id=endpoint_id, failed_only=failed_only, limit=limit, cursor=cursor)

    async def get_delivery(self, delivery_id: str) -> WebhookDelivery:
        async with self.storage.read() as tx:
            return await repo.get_delivery(tx, delivery_id)

    async def deliveries_for_subject(self, subject_type: str, subject_id: str) -> list[WebhookDelivery]:
        """Every webhook about one record, e.g. ``("payment", payment.id)``, in event order."""
        async with self.storage.read() as tx:
            return await repo.deliveries_for_subject(tx, subject_type, subject_id)

    async def attempts(self, delivery_id: str) -> list[WebhookAttempt]:
        async with self.storage.read() as tx:
            return await repo.attempts(tx, delivery_id)

    async def endpoint_health(self) -> list[EndpointHealth]:
        async with self.storage.read() as tx:
            endpoints = await repo.list_endpoints(tx)
            stats = await repo.endpoint_stats(tx)
        # an endpoint that never had a delivery has no stats row: nothing pending, nothing failed
        empty = {"pending": 0, "failed": 0, "last_success_at": None}
        return [EndpointHealth(endpoint=e, **stats.get(e.id, empty)) for e in endpoints]

    # --- operator actions -------------------------------------------------------------------------

    async def replay(self, delivery_id: str, *, actor: Actor) -> WebhookDelivery:
        """Send one delivery again, as soon as the deliverer runs, with the same ``webhook-id``."""
        async with self.storage.transaction() as tx:
            delivery = await repo.replay(tx, delivery_id, actor=actor)
        self.poke_deliverer()
        return delivery

    async def recover(self, endpoint_id: str, since: datetime, *, actor: Actor) -> int:
        """Send again every failed delivery of an endpoint for events since ``since``, and every
        event it missed while disabled; returns how many deliveries were queued."""
        if since.tzinfo is None:
            raise InvalidInput("since must include a timezone (UTC if in doubt)", field="since")
        if since > self.clock.now():
            raise InvalidInput("since is in the future", field="since")
        async with self.storage.transaction() as tx:
            count = await repo.recover(tx, endpoint_id, since, actor=actor)
        if count:
            self.poke_deliverer()
        return count

    async def send_test(self, endpoint_id: str) -> TestDelivery:
        """Send a ``webhook.test`` message to one endpoint now and return the answer (it is logged
        and retried like any delivery)."""
        wh = self.settings.webhooks
        async with self.storage.transaction(sequence_at_start=True) as tx:  # the delivery refers to its event
            claimed = await repo.create_test_delivery(tx, endpoint_id, in_flight=in_flight_window(wh.timeout_seconds))
        body = encode_body(claimed.event_type, claimed.occurred_at, claimed.payload)
        result = await self.sender.send(claimed.message(body))
        async with self.storage.transaction() as tx:
            await repo.record_results(
                tx, [repo.RecordedAttempt(result, 1)], rng=self.rng, jitter=wh.jitter,
                disable_after=timedelta(days=wh.disable_after_days),
            )  # fmt: skip
            delivery = await repo.get_delivery(tx, claimed.delivery_id)
        if not result.succeeded:
            self.poke_deliverer()
        return TestDelivery(delivery=delivery, result=result)
