"""Retry-safe requests: the same ``Idempotency-Key`` with the same body gets the first answer.

Payment creation keeps its key on the payment row (``PaymentService.initiate``); changes that
create no row of their own (a subscription's upgrade, downgrade or cancellation) keep theirs here:
the key is claimed before the change runs, the answer stored after it, and a retry gets that answer
back instead of making the change twice (a second upgrade would void the first invoice). A reused
key with another body is an ``IdempotencyConflict``, as for payments; a retry that arrives while the
first is still running is a ``Conflict`` to retry later. A change that fails leaves no claim.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from engine.db import idempotency as repo
from engine.db.storage import Storage
from engine.errors import Conflict, IdempotencyConflict

__all__ = ["IdempotentRequests", "fingerprint_of"]


def fingerprint_of(body: Any) -> str:
    """SHA-256 of a request body in canonical JSON (key order and spacing do not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


class IdempotentRequests:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def run(
        self,
        scope: str,
        operation: str,
        key: str,
        body: Any,
        change: Callable[[], Awaitable[dict[str, Any]]],
    ) -> tuple[dict[str, Any], bool]:
        """The answer of ``change`` made once per (scope, operation, key); True when replayed."""
        fingerprint = fingerprint_of(body)
        async with self.storage.transaction(events=False) as tx:
            earlier = await repo.claim(tx, scope, operation, key, fingerprint)
        if earlier is not None:
            if earlier.fingerprint != fingerprint:
                raise IdempotencyConflict(f"idempotency key {key!r} was already used for a different {operation} request")
            if earlier.response is None:
                raise Conflict(f"a {operation} request with idempotency key {key!r} is still being made: retry shortly")
            return earlier.response, True
        try:
            answer = await change()
        except BaseException:
            async with self.storage.transaction(events=False) as tx:
                await repo.forget(tx, scope, operation, key)
            raise
        async with self.storage.transaction(events=False) as tx:
            await repo.settle(tx, scope, operation, key, answer)
        return answer, False
