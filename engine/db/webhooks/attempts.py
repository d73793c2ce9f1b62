"""Recording what endpoints answered: the attempts, the deliveries they move on, and each
endpoint's run of failures.

Every HTTP attempt is a row in ``webhook_attempts``. A success ends its delivery (SUCCEEDED); a
failure schedules the next try by the retry policy (``engine.webhooks.policy``) or, after the
last one, gives the delivery up (FAILED). ``failing_since`` marks the start of an endpoint's
current run of failures: an endpoint that answers 410 Gone, or has failed without a break for
``disable_after``, is disabled and an alert event says so.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy import insert as sql_insert

from engine.db.models import WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow
from engine.db.storage import Tx
from engine.db.types import UTCDateTime
from engine.db.webhooks.endpoints import disable_endpoint
from engine.db.webhooks.tables import FAILED, PENDING, SUCCEEDED, iso
from engine.records import Actor, WebhookEndpoint
from engine.webhooks.policy import AttemptResult, next_delay

__all__ = ["RecordedAttempt", "record_results"]

_d = WebhookDeliveryRow.__table__
_p = WebhookEndpointRow.__table__

_INSERT_ATTEMPT = sql_insert(WebhookAttemptRow)
# What every answer writes on its delivery, success or not.
_LAST_ATTEMPT = dict(
    attempt_count=bindparam("b_count"),
    last_attempt_at=bindparam("b_at"),
    last_status_code=bindparam("b_code"),
    last_response_excerpt=bindparam("b_excerpt"),
    last_duration_ms=bindparam("b_ms"),
)
_UPDATE_SUCCEEDED = (
    update(_d)
    .where(_d.c.id == bindparam("b_id"))
    .values(
        status=SUCCEEDED,
        next_attempt_at=None,
        **_LAST_ATTEMPT,
        last_error=None,
        succeeded_at=bindparam("b_at"),
    )
)
# A failure moves only a PENDING delivery on (an operator may have disabled its endpoint meanwhile);
# the attempt itself is always written down.
_UPDATE_FAILED = (
    update(_d)
    .where(_d.c.id == bindparam("b_id"))
    .values(
        status=case((_d.c.status == PENDING, bindparam("b_status")), else_=_d.c.status),
        next_attempt_at=case((_d.c.status == PENDING, bindparam("b_next", type_=UTCDateTime())), else_=_d.c.next_attempt_at),
        **_LAST_ATTEMPT,
        last_error=bindparam("b_error"),
    )
)


@dataclass(frozen=True)
class RecordedAttempt:
    """An attempt's result with the attempt number it was (from the claim)."""

    result: AttemptResult
    attempt: int


async def record_results(
    tx: Tx,
    recorded: Sequence[RecordedAttempt],
    *,
    rng: random.Random,
    jitter: float,
    disable_after: timedelta,
) -> list[WebhookEndpoint]:
    """Write attempts, move their deliveries on, track each endpoint's failure run, and disable
    endpoints that answered 410 or have failed for ``disable_after``. Returns those disabled."""
    if not recorded:
        return []
    await tx.session.execute(
        _INSERT_ATTEMPT,
        [
            dict(
                delivery_id=r.result.delivery_id, attempt=r.attempt, started_at=r.result.started_at,
                duration_ms=r.result.duration_ms, status_code=r.result.status_code,
                response_excerpt=r.result.response_excerpt, error=r.result.error,
            )  # fmt: skip
            for r in recorded
        ],
    )
    succeeded = []
    failed = []
    for r in recorded:
        res = r.result
        common = dict(
            b_id=res.delivery_id, b_count=r.attempt, b_at=res.started_at, b_code=res.status_code,
            b_excerpt=res.response_excerpt, b_ms=res.duration_ms,
        )  # fmt: skip
        if res.succeeded:
            succeeded.append(common)
            continue
        delay = None if res.gone else next_delay(r.attempt, rng=rng, jitter=jitter, result=res)
        failed.append(
            dict(
                common,
                b_status=FAILED if delay is None else PENDING,
                b_next=None if delay is None else tx.now + timedelta(seconds=delay),
                b_error=res.error,
            )
        )
    if succeeded:
        await tx.session.execute(_UPDATE_SUCCEEDED, succeeded)
    if failed:
        await tx.session.execute(_UPDATE_FAILED, failed)
    return await _track_endpoints(tx, recorded, disable_after=disable_after)


_CLEAR_FAILING = (
    update(_p)
    .where(_p.c.id.in_(bindparam("ids", expanding=True)), _p.c.failing_since.is_not(None))
    .values(failing_since=None)
)
_RESTART_FAILING = update(_p).where(_p.c.id == bindparam("b_id")).values(failing_since=bindparam("b_since"))
_START_FAILING = (
    update(_p).where(_p.c.id == bindparam("b_id"), _p.c.failing_since.is_(None)).values(failing_since=bindparam("b_since"))
)


async def _track_endpoints(tx: Tx, recorded: Sequence[RecordedAttempt], *, disable_after: timedelta) -> list[WebhookEndpoint]:
    """``failing_since`` is the start of the current run of failures (cleared by any success)."""
    by_endpoint: dict[str, list[AttemptResult]] = {}
    for r in recorded:
        by_endpoint.setdefault(r.result.endpoint_id, []).append(r.result)
    gone: list[str] = []
    cleared: list[str] = []  # ended on a success
    restarted: list[dict[str, Any]] = []  # a success, then failures: the run starts at the first of those
    started: list[dict[str, Any]] = []  # only failures: the run starts now unless it already had
    for endpoint_id, results in by_endpoint.items():
        last_ok = max((i for i, res in enumerate(results) if res.succeeded), default=-1)
        after = results[last_ok + 1 :]
        if any(res.gone for res in after):
            gone.append(endpoint_id)
        if not after:
            cleared.append(endpoint_id)
        elif last_ok >= 0:
            restarted.append({"b_id": endpoint_id, "b_since": after[0].started_at})
        else:
            started.append({"b_id": endpoint_id, "b_since": after[0].started_at})
    if cleared:
        await tx.session.execute(_CLEAR_FAILING, {"ids": cleared})
    if restarted:
        await tx.session.execute(_RESTART_FAILING, restarted)
    if started:
        await tx.session.execute(_START_FAILING, started)
    disabled: list[WebhookEndpoint] = []
    actor = Actor.daemon("deliverer")
    for endpoint_id in gone:
        endpoint = await disable_endpoint(tx, endpoint_id, actor=actor, reason="the endpoint answered 410 Gone", alert=True)
        if endpoint is not None:
            disabled.append(endpoint)
    failing = [d["b_id"] for d in restarted + started if d["b_id"] not in gone]
    if failing:
        rows = (
            await tx.session.execute(
                select(WebhookEndpointRow.id, WebhookEndpointRow.failing_since).where(
                    WebhookEndpointRow.id.in_(failing),
                    WebhookEndpointRow.enabled.is_(True),
                    WebhookEndpointRow.failing_since <= tx.now - disable_after,
                )
            )
        ).all()
        for endpoint_id, since in rows:
            days = disable_after.total_seconds() / 86400
            endpoint = await disable_endpoint(
                tx, endpoint_id, actor=actor, alert=True,
                reason=f"failing continuously since {iso(since)} (more than {days:g} days)",
            )  # fmt: skip
            if endpoint is not None:
                disabled.append(endpoint)
    return disabled
