"""Record ids: a prefix and 26 Crockford base32 characters, time-ordered (like ULIDs).

The randomness source is injectable so tests and snapshots get the same ids every run.
"""

from __future__ import annotations

import random
import secrets

from engine.clock import Clock, SystemClock

__all__ = ["IdFactory"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


class IdFactory:
    """``new("pay")`` → ``pay_01k...``: 48-bit millisecond time, then 80 random bits."""

    def __init__(self, clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self._clock = clock or SystemClock()
        self._rng = rng

    def _random_bits(self, bits: int) -> int:
        return self._rng.getrandbits(bits) if self._rng is not None else secrets.randbits(bits)

    def new(self, prefix: str) -> str:
        ms = int(self._clock.now().timestamp() * 1000) & ((1 << 48) - 1)
        return f"{prefix}_{_b32(ms, 10)}{_b32(self._random_bits(80), 16)}"

    def token(self, nbytes: int = 32) -> str:
        """A secret random token (API keys, webhook secrets): always from the OS, never seeded."""
        return secrets.token_urlsafe(nbytes)
