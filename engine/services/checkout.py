"""Hosted checkout: the /pay/{token} link a backend sends its payer to, and what the page may do.

A checkout belongs to one payment. Its link carries a token of 256 random bits from the OS
(``secrets.token_urlsafe(32)``, 43 characters): the first ``PREFIX_LENGTH`` characters find the
link's row, and only ``sha256:<hex>`` of the whole token is stored, compared with
``hmac.compare_digest``, so a copy of the database opens no page (the 192 bits after the prefix
are never stored). A link opens its own payment and nothing else.

A link works while its payment is PENDING and for ``web.checkout_grace_seconds`` after the
payment first left PENDING (the result screen); after that it is ``CheckoutEnded`` (410). An
unknown or malformed token is ``NotFound`` (404), the same whatever was wrong with it.

What the page may do is what the payer may: say "I have paid" (the console's "customer says
paid": the poller checks the payment ahead of its schedule), at most once per
``web.paid_check_interval_seconds`` per payment (the slot is a conditional UPDATE, so every
process shares it), and cancel a PENDING payment (the API's rule). Both are audited with the
actor the face passes (the checkout page and the payer's address).

``success_url`` / ``cancel_url`` must be absolute http(s) URLs with a host: the page sends the
payer there, and their origins are the only ones its Content-Security-Policy lets a form go to.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from engine.clock import Clock
from engine.config import Settings
from engine.crypto import NO_DIGEST, secret_digest
from engine.db import checkouts as repo
from engine.db import payments as payment_repo
from engine.db.checkouts import Checkout
from engine.db.storage import Storage
from engine.errors import CheckoutEnded, Conflict, IdempotencyConflict, InvalidInput, InvalidTransition, NotFound, RateLimitExceeded
from engine.records import Actor, Payment, PaymentStatus
from engine.services.payments import PaymentService

__all__ = [
    "CHECKOUT_PATH",
    "CheckoutLink",
    "CheckoutService",
    "CheckoutView",
    "PayerState",
    "check_redirect_url",
    "url_origin",
]

#: Where the checkout pages live; a link is ``CHECKOUT_PATH + "/" + token``.
CHECKOUT_PATH = "/pay"
TOKEN_BYTES = 32
TOKEN_LENGTH = 43  # base64url of 32 bytes, unpadded
PREFIX_LENGTH = 11
MAX_URL_LENGTH = 2048
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_HOST_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$")
_LINK_ATTEMPTS = 5


def check_redirect_url(value: str | None, field: str) -> str | None:
    """``value`` if it is an absolute http(s) URL the page may send a payer to (None stays None);
    else ``InvalidInput`` naming ``field``."""
    if value is None:
        return None
    text = str(value)
    if not text:
        raise InvalidInput(f"{field} is empty: leave it out or give an http(s) URL", field=field)
    if len(text) > MAX_URL_LENGTH:
        raise InvalidInput(f"{field} is longer than {MAX_URL_LENGTH} characters", field=field)
    if not text.isascii() or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidInput(f"{field} must be plain ASCII without spaces (percent-encode the rest, punycode the host)", field=field)
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise InvalidInput(f"{field} must be an http:// or https:// URL, got {shown}", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{field} must not carry a user name or password", field=field)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError:
        raise InvalidInput(f"{field} has an invalid port", field=field) from None
    host = parts.hostname or ""
    if not host:
        raise InvalidInput(f"{field} must name a host (an absolute URL such as https://shop.example/paid)", field=field)
    if not _HOST_RE.match(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InvalidInput(f"{field} has an invalid host {host!r}", field=field) from None
    return text


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL that ``check_redirect_url`` accepted (a CSP source)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme.lower()}://{host}{port}"


class PayerState:
    """What the payer is told about the payment (never more: no account, hash or history)."""

    PENDING = "pending"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"
    #: Money arrived but not as issued (wrong amount, late): the shop decides.
    REVIEW = "review"


_PAYER_STATES = {
    PaymentStatus.PENDING: PayerState.PENDING,
    PaymentStatus.PAID: PayerState.PAID,
    PaymentStatus.TIMEOUT: PayerState.EXPIRED,
    PaymentStatus.CANCELLED: PayerState.CANCELLED,
    PaymentStatus.FAILED: PayerState.FAILED,
    PaymentStatus.NEEDS_REVIEW: PayerState.REVIEW,
    PaymentStatus.PAID_LATE: PayerState.REVIEW,
    PaymentStatus.UNTRACKABLE: PayerState.REVIEW,
}


@dataclass(frozen=True)
class CheckoutLink:
    """A new link: the token exists in plaintext only here."""

    token: str
    checkout: Checkout

    @property
    def path(self) -> str:
        return f"{CHECKOUT_PATH}/{self.token}"


@dataclass(frozen=True)
class CheckoutView:
    """What a link opens, as of ``now``: its payment and its checkout."""

    payment: Payment
    checkout: Checkout
    now: datetime
    #: When the payment first left PENDING (None while pending).
    ended_at: datetime | None

    @property
    def state(self) -> str:
        return _PAYER_STATES.get(self.payment.status, PayerState.REVIEW)

    @property
    def seconds_left(self) -> int:
        """Whole seconds until the KHQR expires (0 once it has, or once the payment ended)."""
        if self.payment.status is not PaymentStatus.PENDING:
            return 0
        return max(0, int((self.payment.expires_at - self.now).total_seconds()))

    @property
    def redirect_url(self) -> str | None:
        """Where the payer goes now: success_url once paid, cancel_url once expired, cancelled or
        failed; None while pending or under review."""
        if self.state == PayerState.PAID:
            return self.checkout.success_url
        if self.state in (PayerState.EXPIRED, PayerState.CANCELLED, PayerState.FAILED):
            return self.checkout.cancel_url
        return None


class CheckoutService:
    def __init__(self, storage: Storage, settings: Settings, *, clock: Clock, payments: PaymentService) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.payments = payments

    # --- the backend's side ----------------------------------------------------------------------

    def checkout_url(self, link: CheckoutLink) -> str:
        """The link as the API answers it: absolute under ``web.public_url``, else the path."""
        base = self.settings.web.public_url.rstrip("/")
        return f"{base}{link.path}" if base else link.path

    async def of_payment(self, payment_id: str) -> Checkout | None:
        async with self.storage.lookup() as tx:
            return await repo.get(tx, payment_id)

    async def open(
        self, payment_id: str, *, success_url: str | None, cancel_url: str | None, actor: Actor, replay: bool = False
    ) -> CheckoutLink:
        """A new link to the payment's checkout (made with it the first time, audited).

        ``replay``: the payment was made by an earlier request with the same idempotency key; its
        checkout must have been asked for with the same URLs (else ``IdempotencyConflict``), and
        this request gets a link of its own beside the earlier one's."""
        success_url = check_redirect_url(success_url, "success_url")
        cancel_url = check_redirect_url(cancel_url, "cancel_url")
        for _ in range(_LINK_ATTEMPTS):
            token = secrets.token_urlsafe(TOKEN_BYTES)
            try:
                async with self.storage.transaction(events=False) as tx:
                    checkout = await repo.get(tx, payment_id)
                    if checkout is None:
                        if replay:
                            raise IdempotencyConflict(
                                f"the idempotency key already made payment {payment_id} without a checkout"
                            )
                        await payment_repo.get(tx, payment_id)  # NotFound for an unknown payment
                        checkout = await repo.insert(tx, payment_id, success_url=success_url, cancel_url=cancel_url, actor=actor)
                    elif (checkout.success_url, checkout.cancel_url) != (success_url, cancel_url):
                        raise IdempotencyConflict(
                            f"payment {payment_id} already has a checkout with other success_url / cancel_url"
                        )
                    await repo.add_link(tx, payment_id, prefix=token[:PREFIX_LENGTH], token_hash=secret_digest(token))
                return CheckoutLink(token, checkout)
            except IdempotencyConflict:
                raise
            except Conflict as exc:
                if "prefix" not in exc.message:
                    raise
        raise Conflict("could not draw an unused checkout link; try again")  # 5 collisions of 66 random bits

    # --- the payer's side ------------------------------------------------------------------------

    async def view(self, token: str) -> CheckoutView:
        """The payment and checkout a link opens; ``NotFound`` / ``CheckoutEnded``."""
        if not isinstance(token, str) or not _TOKEN_RE.match(token):
            raise NotFound("no such checkout")
        async with self.storage.read() as tx:
            found = await repo.find_link(tx, token[:PREFIX_LENGTH])
            stored = found[1] if found else NO_DIGEST
            # Compared whatever was found, so an unknown prefix takes as long as a wrong token.
            if not hmac.compare_digest(secret_digest(token), stored) or found is None:
                raise NotFound("no such checkout")
            payment_id = found[0]
            payment = await payment_repo.get(tx, payment_id)
            checkout = await repo.get(tx, payment_id)
            ended = None
            if payment.status is not PaymentStatus.PENDING:
                ended = await repo.ended_at(tx, payment_id) or payment.updated_at or payment.created_at
            now = tx.now
        if checkout is None:  # the link's foreign key makes this impossible; never open a page without one
            raise NotFound("no such checkout")
        if ended is not None and now > ended + timedelta(seconds=self.settings.web.checkout_grace_seconds):
            raise CheckoutEnded("this checkout has ended")
        return CheckoutView(payment, checkout, now, ended)

    async def claim_paid(self, token: str, *, actor: Actor) -> CheckoutView:
        """"I have paid": check the payment with Bakong ahead of its schedule, at most once per
        ``web.paid_check_interval_seconds`` (``RateLimitExceeded`` with retry_after otherwise)."""
        view = await self.view(token)
        if view.payment.status is not PaymentStatus.PENDING:
            return view
        interval = self.settings.web.paid_check_interval_seconds
        async with self.storage.transaction(events=False) as tx:
            taken = await repo.claim_paid(tx, view.payment.id, interval_seconds=interval)
            claimed_at = None if taken else (await repo.get(tx, view.payment.id))
            now = tx.now
        if not taken:
            last = claimed_at.paid_claimed_at if claimed_at and claimed_at.paid_claimed_at else now
            wait = max(1.0, interval - (now - last).total_seconds())
            raise RateLimitExceeded(f"the payment is already being checked; ask again in {int(wait + 0.999)} s", retry_after=wait)
        try:
            await self.payments.request_check(view.payment.id, actor=actor)
        except InvalidTransition:
            pass  # it ended meanwhile: the page shows how
        return await self.view(token)

    async def cancel(self, token: str, *, actor: Actor) -> CheckoutView:
        """Cancel the link's payment as the API would (only a PENDING one: ``InvalidTransition``)."""
        view = await self.view(token)
        await self.payments.cancel(view.payment.id, actor=actor, reason="cancelled by the payer on the checkout page")
        return await self.view(token)
