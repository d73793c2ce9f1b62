"""``/api/events`` (the pull feed), ``/api/health``, ``/metrics`` and ``/api/problems/{kind}``.

Health and metrics need no key and reveal nothing secret: no token, fingerprint, host name,
process id or database address; the token shows only its state and expiry.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from bakong_console.api.metrics import MetricsText
from bakong_console.api.problems import PROBLEM_TYPES, problem_type, problems
from bakong_console.api.responses import iso, event_data, ok
from bakong_console.api.schemas import Envelope, EventOut, EventsMeta, EventType, Health, ProblemType
from bakong_console.api.routing import ApiRoute
from bakong_console.api.security import Principal, keyed_problems, require
from engine.errors import BakongConsoleError, NotFound

__all__ = ["router"]

router = APIRouter(route_class=ApiRoute)

MAX_SEQUENCE = 2**63 - 1


class EventsPage(Envelope[list[EventOut]]):
    meta: EventsMeta


@router.get(
    "/api/events",
    tags=["events"],
    response_model=EventsPage,
    summary="Events after a sequence number (reconciliation feed)",
    responses=keyed_problems(422),
)
async def events_feed(
    request: Request,
    principal: Annotated[Principal, Depends(require("events:read"))],
    since: Annotated[int, Query(ge=0, le=MAX_SEQUENCE, description="The last sequence you have; 0 for the beginning.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[list[EventType] | None, Query(description="Only these event types (repeatable).", max_length=50)] = None,  # noqa: A002
) -> Response:
    """Every event (payments, subscriptions, alerts) in commit order, exactly as webhooks carry
    them: a backend that was down longer than the webhook retry window catches up here."""
    events = await request.app.state.api.engine.payments.events_since(since, limit=limit, types=type)
    next_since = events[-1].sequence if events else since
    return ok(request, [event_data(e) for e in events], meta={"next_since": next_since})


def _token_state(info: Any, renew_days: int) -> dict[str, Any]:
    if info is None:
        return {"state": "missing", "expires_at": None, "days_left": None}
    if info.expires_at is None:
        state = "unknown-expiry"
    elif info.expired:
        state = "expired"
    elif renew_days and info.days_left is not None and info.days_left < renew_days:
        state = "expiring"
    else:
        state = "valid"
    return {"state": state, "expires_at": iso(info.expires_at), "days_left": info.days_left}


def _polling(state: Any, now: Any) -> str:
    if state.paused_reason:
        return "paused"
    if state.blocked_until and state.blocked_until > now:
        return "blocked"
    if state.backoff_until and state.backoff_until > now:
        return "backing-off"
    if state.last_pass_at is None:
        return "idle"
    return "running"


async def _bakong_health(request: Request, db_ok: bool) -> dict[str, Any]:
    engine = request.app.state.api.engine
    now = engine.clock.now()
    poller = engine.poller_state
    budget = None
    if db_ok:
        try:
            usage = await engine.client.budget_usage()
        except BakongConsoleError:
            usage = None
        if usage is not None:
            budget = {
                "used_today": usage.used,
                "remaining_today": usage.remaining,
                "daily_budget": usage.budget,
                "exhausted_until": iso(usage.exhausted_until),
            }
    return {
        "environment": engine.settings.bakong.environment,
        "sandbox": engine.sandbox is not None or engine.settings.is_sandbox,
        "reachable": None if poller.requests_sent == 0 else poller.consecutive_failures == 0,
        "polling": _polling(poller, now),
        "last_poll_at": iso(poller.last_pass_at),
        "last_answer_at": iso(poller.last_answer_at),
        "failing_since": iso(poller.failing_since),
        "token": _token_state(engine.client.token_info(), engine.settings.bakong.renew_days_before_expiry),
        "budget": budget,
    }


async def _workers(request: Request, db_ok: bool) -> list[dict[str, Any]]:
    engine = request.app.state.api.engine
    now = engine.clock.now()
    leases = {lease.name: lease for lease in await engine.leases()} if db_ok else {}
    names = sorted(set(leases) | set(engine.runners))
    out = []
    for name in names:
        lease = leases.get(name)
        held = lease is not None and lease.expires_at > now
        out.append(
            {
                "name": name,
                "held": held,
                "in_this_process": held and lease is not None and lease.holder == engine.holder,
                "lease_expires_at": iso(lease.expires_at) if lease else None,
            }
        )
    return out


async def _outbox(request: Request, db_ok: bool) -> dict[str, Any]:
    """The webhook backlog from the engine's webhook service (None while the database is down)."""
    empty: dict[str, Any] = {
        "pending_webhook_deliveries": None, "failed_webhook_deliveries": None,
        "webhook_endpoints": None, "failing_endpoints": None, "disabled_endpoints": None,
    }  # fmt: skip
    if not db_ok:
        return empty
    try:
        endpoints = await request.app.state.api.engine.webhooks.endpoint_health()
    except BakongConsoleError:
        return empty
    return {
        "pending_webhook_deliveries": sum(e.pending for e in endpoints),
        "failed_webhook_deliveries": sum(e.failed for e in endpoints),
        "webhook_endpoints": len(endpoints),
        "failing_endpoints": sum(1 for e in endpoints if e.enabled and e.failing_since is not None),
        "disabled_endpoints": sum(1 for e in endpoints if not e.enabled),
    }


def _degraded_reasons(request: Request, bakong: dict[str, Any], workers: list[dict[str, Any]]) -> list[str]:
    """Why payments are not being detected, one line each (nothing secret: kinds, not messages)."""
    engine = request.app.state.api.engine
    reasons: list[str] = []
    if bakong["polling"] == "paused":
        reasons.append("polling is paused: Bakong refused the token")
    elif bakong["polling"] == "blocked":
        reasons.append("polling is blocked: the day's Bakong requests are spent")
    if bakong["token"]["state"] in ("expired", "missing"):
        reasons.append(f"the Bakong token is {bakong['token']['state']}")
    if not any(w["name"] == "poller" and w["held"] for w in workers):
        reasons.append("no process runs the poller")
    poller = engine.poller_state
    if poller.failing_since is not None:
        silent = (engine.clock.now() - poller.failing_since).total_seconds()
        if silent > engine.settings.bakong.unhealthy_after_seconds:
            reasons.append(f"Bakong has answered no check for {silent:.0f} s ({poller.failing_kind or 'unreachable'})")
    return reasons


@router.get(
    "/api/health",
    tags=["health"],
    response_model=Envelope[Health],
    summary="Database, Bakong, workers and outbox (no key needed)",
    responses={503: {"model": Envelope[Health], "description": "The database is unreachable."}},
)
async def health(request: Request) -> Response:
    """`status` is `down` (503) when the database is unreachable, `degraded` when payments are
    not being detected (token expired or missing, polling paused or blocked, no process holds the
    poller's lease, Bakong has answered no check for `bakong.unhealthy_after_seconds`), else `ok`;
    `reasons` says why."""
    ctx = request.app.state.api
    readout = ctx.readout
    db_ok = await readout.database_ok()
    bakong = await _bakong_health(request, db_ok)
    workers = await _workers(request, db_ok)
    outbox = await _outbox(request, db_ok)
    reasons = _degraded_reasons(request, bakong, workers)
    if not db_ok:
        status = "down"
        reasons.insert(0, "the database is unreachable")
    elif reasons:
        status = "degraded"
    else:
        status = "ok"
    data = {
        "status": status,
        "reasons": reasons,
        "database": {"ok": db_ok, "engine": readout.database_engine},
        "bakong": bakong,
        "workers": workers,
        "outbox": outbox,
    }
    return ok(request, data, status=503 if status == "down" else 200)


@router.get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics (no key needed)",
    response_class=Response,
    responses={200: {"description": "Prometheus text exposition format 0.0.4.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    ctx = request.app.state.api
    engine = ctx.engine
    m = ctx.metrics
    out = MetricsText()
    db_ok = await ctx.readout.database_ok()
    out.family("bakong_console_database_up", "gauge", "1 when the database answers.", [({}, int(db_ok))])
    if db_ok:
        try:
            counts = await ctx.readout.payment_counts()
            out.family(
                "bakong_console_payments", "gauge", "Payments by status.", [({"status": s}, n) for s, n in counts.items()]
            )
            usage = await engine.client.budget_usage()
            out.family("bakong_console_bakong_requests_used_today", "gauge", "Bakong requests spent today (Phnom Penh day) by this token.", [({}, usage.used)])
            out.family("bakong_console_bakong_requests_remaining_today", "gauge", "Bakong requests left in today's budget.", [({}, usage.remaining)])
            out.family("bakong_console_bakong_daily_budget", "gauge", "The daily Bakong request budget.", [({}, usage.budget)])
            outbox = await _outbox(request, db_ok)
            out.family(
                "bakong_console_webhook_backlog", "gauge", "Webhook deliveries waiting for a successful attempt.",
                [({}, outbox["pending_webhook_deliveries"] or 0)],
            )  # fmt: skip
            out.family(
                "bakong_console_webhook_failed_deliveries", "gauge", "Webhook deliveries that gave up (replayable).",
                [({}, outbox["failed_webhook_deliveries"] or 0)],
            )  # fmt: skip
            out.family(
                "bakong_console_webhook_endpoints_disabled", "gauge", "Webhook endpoints disabled (by an operator or after failing).",
                [({}, outbox["disabled_endpoints"] or 0)],
            )  # fmt: skip
        except BakongConsoleError:
            pass  # the database went away mid-scrape: the counters below still answer
    poller = engine.poller_state
    out.family("bakong_console_poller_paused", "gauge", "1 while polling is paused until a person acts.", [({}, int(bool(poller.paused_reason)))])
    out.family("bakong_console_poller_consecutive_failures", "gauge", "Bakong requests failed in a row.", [({}, poller.consecutive_failures)])
    out.family(
        "bakong_console_api_requests_total", "counter", "API requests by method, route template and status.",
        [({"method": k[0], "route": k[1], "status": k[2]}, n) for k, n in sorted(m.requests.items())],
    )  # fmt: skip
    out.histogram(
        "bakong_console_api_request_duration_seconds", "API request duration by route template.",
        {route: (counts, m.duration_sums[route]) for route, counts in m.durations.items()}, "route",
    )  # fmt: skip
    out.family("bakong_console_api_rate_limited_total", "counter", "Requests refused by an API key's rate limit.", [({}, m.rate_limited)])
    out.family("bakong_console_api_auth_failures_total", "counter", "Requests with a missing, unknown or revoked API key.", [({}, m.auth_failures)])
    out.family("bakong_console_api_ip_blocks_total", "counter", "Client addresses blocked after failed authentications.", [({}, m.ip_blocks)])
    out.family("bakong_console_api_blocked_requests_total", "counter", "Requests refused from a blocked address.", [({}, m.blocked_requests)])
    fallback = getattr(ctx.limiter, "errors", 0)
    out.family("bakong_console_api_rate_limiter_fallbacks_total", "counter", "Rate-limit decisions made in-process because Redis failed.", [({}, fallback)])
    return Response(out.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get(
    "/api/problems/{kind}",
    tags=["health"],
    response_model=Envelope[ProblemType],
    summary="What a problem `type` means",
    responses=problems(404, 422),
)
async def problem_kind(
    request: Request, kind: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]
) -> Response:
    if kind not in PROBLEM_TYPES:
        raise NotFound(f"no problem type {kind!r}")
    status, title = PROBLEM_TYPES[kind]
    return ok(request, {"type": problem_type(kind), "title": title, "status": status})
