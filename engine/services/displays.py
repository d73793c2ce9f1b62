"""Customer displays: pairing a screen at the counter with a terminal, telling a paired display
apart from anything else, and what a terminal's display shows now.

Pairing. The console (or ``bakong-console displays pair``) asks for a pairing code: 6 digits from
the OS's randomness, working once, for ``display.pairing_code_seconds``; a new code for the same
terminal ends the older one. The display page sends the code back; a wrong code counts against
it (at most one wrong try a second, ``display.pairing_attempts`` end it), a right one is
swapped for a device token: 256 random bits, of which only ``sha256:<hex>`` is stored (found by
its first ``TOKEN_PREFIX_LENGTH`` characters, compared with ``hmac.compare_digest``), so a copy
of the database opens no display. A token opens its own terminal's display and nothing else,
until it is revoked.

What a display shows (``DisplayScreen``), from the terminal's newest payment only: ``pending``
with its card while it is PENDING and unexpired; ``paid`` for ``display.paid_seconds`` after
it was paid; ``idle`` (the shop's name) otherwise: before any payment, after a cancel, an expiry,
a failure or a review.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.clock import Clock
from engine.config import Settings
from engine.crypto import NO_DIGEST, secret_digest
from engine.db import checkouts as checkout_repo
from engine.db import displays as repo
from engine.db.displays import Display
from engine.db.storage import Storage
from engine.errors import Conflict, InvalidInput, NotFound, RateLimitExceeded, Unauthorized
from engine.records import Actor, Payment, PaymentStatus
from engine.terminals import TERMINAL_RULE, is_terminal_name

__all__ = ["DISPLAY_PATH", "DisplayPairing", "DisplayScreen", "DisplayService", "PairingCode", "ScreenState"]

#: Where the display pages live; a terminal's display is ``DISPLAY_PATH + "/" + terminal``.
DISPLAY_PATH = "/display"
CODE_DIGITS = 6
TOKEN_BYTES = 32
TOKEN_PREFIX_LENGTH = 11
#: At most one wrong pairing code a second per terminal.
WRONG_CODE_INTERVAL_SECONDS = 1.0
#: ``last_seen_at`` is written at most this often per display and process.
TOUCH_INTERVAL_SECONDS = 60.0
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_CODE_RE = re.compile(rf"^[0-9]{{{CODE_DIGITS}}}$")
_TOKEN_ATTEMPTS = 5


class ScreenState:
    IDLE = "idle"
    PENDING = "pending"
    PAID = "paid"


@dataclass(frozen=True)
class PairingCode:
    """A new pairing code: its plaintext exists only here (to be shown to the cashier)."""

    display: Display
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class DisplayPairing:
    """A display just paired: its device token exists in plaintext only here (the cookie)."""

    display: Display
    token: str


@dataclass(frozen=True)
class DisplayScreen:
    """What a terminal's display shows as of ``now``."""

    terminal: str
    state: str
    #: The payment shown (pending or paid); None when idle.
    payment: Payment | None
    now: datetime
    #: When the screen changes by itself (the KHQR expires, the PAID confirmation ends).
    changes_at: datetime | None

    @property
    def key(self) -> str:
        """Tells two screens apart (the page reloads when it changes); names no payment."""
        subject = self.payment.id if self.payment else ""
        return hashlib.sha256(f"{self.state}:{subject}".encode()).hexdigest()[:16]

    @property
    def seconds_left(self) -> int:
        """Whole seconds until the screen changes by itself (0 when it does not)."""
        if self.changes_at is None:
            return 0
        return max(0, int((self.changes_at - self.now).total_seconds() + 0.999))


def check_terminal(terminal: str) -> str:
    if not isinstance(terminal, str) or not is_terminal_name(terminal):
        raise NotFound(f"no terminal {terminal!r}: a terminal name {TERMINAL_RULE}")
    return terminal


class DisplayService:
    def __init__(self, storage: Storage, settings: Settings, *, clock: Clock) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self._touched: dict[str, float] = {}

    # --- the cashier's side ----------------------------------------------------------------------

    def url(self, terminal: str, *, served_at: str | None = None) -> str:
        """Where a display of ``terminal`` is opened: under ``display.public_url``, else where
        this process serves it (``served_at``), else the console's ``display.host:port`` (a
        wildcard host named by the machine's host name, which the shop's network can reach)."""
        base = self.settings.display.public_url or served_at
        if not base:
            host = self.settings.display.host
            if host in ("", "0.0.0.0", "::"):
                host = socket.gethostname()
            elif ":" in host:
                host = f"[{host}]"
            base = f"http://{host}:{self.settings.display.port}"
        return f"{base.rstrip('/')}{DISPLAY_PATH}/{check_terminal(terminal)}"


    async def start_pairing(self, terminal: str, *, actor: Actor) -> PairingCode:
        """A new pairing code for ``terminal`` (ends any code still waiting for it), audited."""
        terminal = check_terminal(terminal)
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        async with self.storage.transaction(events=False) as tx:
            await repo.forget_unpaired(tx, terminal)
            expires_at = tx.now + timedelta(seconds=self.settings.display.pairing_code_seconds)
            display = await repo.insert_pairing(tx, terminal, code_hash=secret_digest(code), expires_at=expires_at, actor=actor)
        return PairingCode(display, code, expires_at)

    async def list(self, *, terminal: str | None = None, include_ended: bool = False) -> list[Display]:
        """Paired displays, revoked ones and codes still waiting; ``include_ended`` adds codes that
        ended unused."""
        async with self.storage.read() as tx:
            found = await repo.list_displays(tx, terminal=terminal)
            now = tx.now
        return [d for d in found if include_ended or d.status(now) != "unpaired"]

    async def get(self, display_id: str) -> Display:
        async with self.storage.read() as tx:
            return await repo.get(tx, display_id)

    async def revoke(self, display_id: str, *, actor: Actor) -> Display:
        """End the display's token: its page goes back to asking for a pairing code."""
        async with self.storage.transaction() as tx:
            display = await repo.revoke(tx, display_id, actor=actor)
        self._touched.pop(display_id, None)
        return display

    # --- the display's side ----------------------------------------------------------------------

    async def pair(self, terminal: str, code: str, *, actor: Actor) -> DisplayPairing:
        """Swap the terminal's waiting pairing code for a device token.

        ``InvalidInput`` (field ``code``) for a malformed or wrong code, or when none is waiting;
        ``RateLimitExceeded`` within a second of the last wrong one."""
        terminal = check_terminal(terminal)
        cleaned = re.sub(r"[\s-]", "", str(code or ""))
        if not _CODE_RE.match(cleaned):
            raise InvalidInput(f"a pairing code is {CODE_DIGITS} digits", field="code")
        attempts = self.settings.display.pairing_attempts
        for _ in range(_TOKEN_ATTEMPTS):
            token = secrets.token_urlsafe(TOKEN_BYTES)
            left: int | None = None
            async with self.storage.transaction() as tx:
                live = await repo.live_pairing(tx, terminal)
                stored = live[1] if live else NO_DIGEST
                matches = hmac.compare_digest(secret_digest(cleaned), stored)
                if live is None:
                    raise InvalidInput("no pairing code is waiting for this display: ask the cashier for a new one", field="code")
                display, _, failed_at = live
                if failed_at is not None:
                    wait = WRONG_CODE_INTERVAL_SECONDS - (tx.now - failed_at).total_seconds()
                    if wait > 0:
                        raise RateLimitExceeded("wait a second before trying another code", retry_after=wait)
                if not matches:
                    left = await repo.record_wrong_code(tx, display.id, attempts=attempts)
                else:
                    try:
                        paired = await repo.mark_paired(
                            tx, display.id, token_prefix=token[:TOKEN_PREFIX_LENGTH], token_hash=secret_digest(token), actor=actor
                        )
                    except Conflict as exc:
                        if "prefix" in exc.message:
                            continue  # 66 random bits collided: draw another token
                        raise InvalidInput("this pairing code was used already: ask the cashier for a new one", field="code") from None
            if left is not None:  # the wrong try is committed before it is refused
                if left == 0:
                    raise InvalidInput("wrong pairing code, and that was the last try: ask the cashier for a new one", field="code")
                raise InvalidInput(f"wrong pairing code ({left} {'try' if left == 1 else 'tries'} left)", field="code")
            return DisplayPairing(paired, token)
        raise Conflict("could not draw an unused display token; try again")  # pragma: no cover

    async def authenticate(self, terminal: str, token: str | None) -> Display:
        """The paired display this device token opens at ``terminal``; anything else (no token,
        a wrong, revoked or other terminal's one) is ``Unauthorized``."""
        if not token or not _TOKEN_RE.match(token):
            raise Unauthorized("this display is not paired")
        async with self.storage.read() as tx:
            found = await repo.by_token_prefix(tx, token[:TOKEN_PREFIX_LENGTH])
        stored = found[1] if found else NO_DIGEST
        # Compared whatever was found, so an unknown prefix takes as long as a wrong token.
        if not hmac.compare_digest(secret_digest(token), stored) or found is None:
            raise Unauthorized("this display is not paired")
        display = found[0]
        if not display.paired or display.terminal != terminal:
            raise Unauthorized("this display is not paired")
        await self._touch(display.id)
        return display

    async def _touch(self, display_id: str) -> None:
        now = self.clock.monotonic()
        last = self._touched.get(display_id)
        if last is not None and now - last < TOUCH_INTERVAL_SECONDS:
            return
        self._touched[display_id] = now
        async with self.storage.transaction(events=False) as tx:
            await repo.touch(tx, display_id)

    async def screen(self, terminal: str) -> DisplayScreen:
        """What ``terminal``'s display shows now (see the module's docstring)."""
        terminal = check_terminal(terminal)
        async with self.storage.read() as tx:
            payment = await repo.latest_payment(tx, terminal)
            ended = None
            if payment is not None and payment.status is PaymentStatus.PAID:
                ended = await checkout_repo.ended_at(tx, payment.id) or payment.updated_at
            now = tx.now
        if payment is not None and payment.status is PaymentStatus.PENDING and payment.expires_at > now:
            return DisplayScreen(terminal, ScreenState.PENDING, payment, now, payment.expires_at)
        if payment is not None and ended is not None:
            until = ended + timedelta(seconds=self.settings.display.paid_seconds)
            if until > now:
                return DisplayScreen(terminal, ScreenState.PAID, payment, now, until)
        return DisplayScreen(terminal, ScreenState.IDLE, None, now, None)
