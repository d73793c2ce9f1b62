"""`bakong-console webhooks`: endpoints, secrets, the delivery log, replay, recover, test, listen.

``listen`` is a small local receiver for integrators: it verifies each message's Standard
Webhooks signature with ``engine.webhooks.verify`` and prints the event, so a set-up can be tried
end to end before the main backend is ready.
"""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bakong_console.cli.context import CursorOpt, LimitOpt, cli_actor, day_or_time, with_engine
from bakong_console.cli.render import echo_page, iso_utc
from bakong_console.times import local_time
from engine.errors import InvalidInput, WebhookError
from engine.records import WebhookAttempt, WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from engine.runtime import Engine

app = typer.Typer(help="Signed webhooks to your backend: endpoints, deliveries, replay and recovery.", no_args_is_help=True)

EndpointId = Annotated[str, typer.Argument(help="Endpoint id (ep_...).", show_default=False)]
DeliveryId = Annotated[str, typer.Argument(help="Delivery id (dlv_...).", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines instead of columns.")]

_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO time (UTC unless it says otherwise), a date (Asia/Phnom_Penh midnight),
    or a duration ago such as ``90m``, ``6h``, ``3d``."""
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        return day_or_time(value)
    except ValueError:
        raise InvalidInput(
            f"--since {text!r} is not an ISO time, a date (YYYY-MM-DD) or a duration like 6h or 3d", field="since"
        ) from None


def _events_text(endpoint: WebhookEndpoint) -> str:
    return ",".join(endpoint.event_types) if endpoint.event_types else "all"


def _delivery_json(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "status": d.status,
        "event_type": d.event_type,
        "event_id": d.event_id,
        "event_sequence": d.event_sequence,
        "endpoint_id": d.endpoint_id,
        "attempts": d.attempt_count,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": iso_utc(d.created_at),
        "last_attempt_at": iso_utc(d.last_attempt_at),
        "next_attempt_at": iso_utc(d.next_attempt_at),
        "succeeded_at": iso_utc(d.succeeded_at),
    }


def _last_answer(d: WebhookDelivery) -> str:
    if d.last_status_code is not None:
        return f"HTTP {d.last_status_code}"
    return d.last_error or "-"


def _delivery_line(d: WebhookDelivery) -> str:
    when = f"next {local_time(d.next_attempt_at)}" if d.status == "PENDING" and d.next_attempt_at else local_time(d.last_attempt_at or d.created_at)
    return "\t".join([d.id, d.status, d.event_type, d.endpoint_id, f"{d.attempt_count} attempts", _last_answer(d), when])


def _attempt_line(a: WebhookAttempt) -> str:
    answer = f"HTTP {a.status_code}" if a.status_code is not None else (a.error or "no answer")
    excerpt = (a.response_excerpt or "").strip().splitlines()
    tail = f"  {excerpt[0][:120]}" if excerpt else ""
    return f"#{a.attempt}\t{local_time(a.started_at)}\t{answer}\t{a.duration_ms:.1f} ms{tail}"


@app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Where to POST events (http:// or https://).", show_default=False)],
    events: Annotated[str | None, typer.Option("--events", help="Only these event types, comma-separated (default: all).")] = None,
    description: Annotated[str | None, typer.Option("--description", help="A note for operators.")] = None,
) -> None:
    """Add an endpoint and print its signing secret (shown only this once)."""
    endpoint, secret = with_engine(
        ctx, lambda engine: engine.webhooks.add_endpoint(url, events.split(",") if events else None, description, actor=cli_actor())
    )
    typer.echo(f"endpoint  {endpoint.id}")
    typer.echo(f"url       {endpoint.url}")
    typer.echo(f"events    {_events_text(endpoint)}")
    typer.echo(f"secret    {secret}")
    typer.echo("The secret is shown only now: give it to the receiver (it verifies with engine.webhooks.verify).", err=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every endpoint with its state, pending and failed deliveries, and last success."""
    for h in with_engine(ctx, lambda engine: engine.webhooks.endpoint_health()):
        e = h.endpoint
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "id": e.id, "url": e.url, "enabled": e.enabled, "event_types": list(e.event_types),
                        "description": e.description, "disabled_reason": e.disabled_reason,
                        "failing_since": iso_utc(e.failing_since), "last_success_at": iso_utc(h.last_success_at),
                        "pending": h.pending, "failed": h.failed,
                    }  # fmt: skip
                )
            )
            continue
        state = "enabled" if e.enabled else f"disabled ({e.disabled_reason})"
        failing = f"\tfailing since {local_time(e.failing_since)}" if e.failing_since else ""
        typer.echo(
            f"{e.id}\t{state}\t{e.url}\t{_events_text(e)}\t{h.pending} pending\t{h.failed} failed"
            f"\tlast success {local_time(h.last_success_at)}{failing}"
        )


@app.command("disable")
def disable(
    ctx: typer.Context,
    endpoint_id: EndpointId,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the audit log).")] = None,
) -> None:
    """Stop sending to an endpoint (its pending deliveries wait; see `recover`)."""
    endpoint = with_engine(ctx, lambda engine: engine.webhooks.disable(endpoint_id, actor=cli_actor(), reason=reason))
    typer.echo(f"{endpoint.id} disabled: {endpoint.disabled_reason}")


@app.command("enable")
def enable(ctx: typer.Context, endpoint_id: EndpointId) -> None:
    """Send to an endpoint again from now on."""
    endpoint = with_engine(ctx, lambda engine: engine.webhooks.enable(endpoint_id, actor=cli_actor()))
    typer.echo(f"{endpoint.id} enabled")
    typer.echo(f"To send what it missed: bakong-console webhooks recover {endpoint.id} --since TIME", err=True)


@app.command("rotate-secret")
def rotate_secret(ctx: typer.Context, endpoint_id: EndpointId) -> None:
    """Give an endpoint a new secret; the old one keeps signing beside it for the rotation window."""
    endpoint, secret = with_engine(ctx, lambda engine: engine.webhooks.rotate_secret(endpoint_id, actor=cli_actor()))
    typer.echo(f"secret    {secret}")
    if endpoint.previous_secret_expires_at:
        typer.echo(f"The previous secret stays valid until {local_time(endpoint.previous_secret_expires_at)}.", err=True)


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed ones (given up, disabled, or retrying).")] = False,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Only this endpoint's.")] = None,
    limit: LimitOpt = 50,
    cursor: CursorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deliveries, newest first (the next page's cursor is printed last)."""
    page, nxt = with_engine(
        ctx, lambda engine: engine.webhooks.list_deliveries(endpoint_id=endpoint, failed_only=failed, limit=limit, cursor=cursor)
    )
    # Here the cursor has always gone to standard error, --json or not (its --json is "JSON lines
    # instead of columns"); kept so that scripts reading standard output see the same lines.
    echo_page(page, nxt, as_json=as_json, json_of=_delivery_json, line_of=_delivery_line, json_cursor_on_stdout=False)


@app.command("attempts")
def attempts(ctx: typer.Context, delivery_id: DeliveryId) -> None:
    """Every HTTP attempt of one delivery: when, the answer, how long, what the receiver said."""

    async def delivery_with_attempts(engine: Engine) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
        return await engine.webhooks.get_delivery(delivery_id), await engine.webhooks.attempts(delivery_id)

    delivery, rows = with_engine(ctx, delivery_with_attempts)
    typer.echo(f"{delivery.id} {delivery.status} {delivery.event_type} -> {delivery.endpoint_id} (webhook-id {delivery.event_id})")
    for a in rows:
        typer.echo(_attempt_line(a))
    if not rows:
        typer.echo("no attempts yet")


@app.command("replay")
def replay(ctx: typer.Context, delivery_id: DeliveryId) -> None:
    """Send one delivery again (same webhook-id) as soon as the deliverer runs."""
    delivery = with_engine(ctx, lambda engine: engine.webhooks.replay(delivery_id, actor=cli_actor()))
    typer.echo(f"{delivery.id} queued ({delivery.event_type} -> {delivery.endpoint_id})")


@app.command("recover")
def recover(
    ctx: typer.Context,
    endpoint_id: EndpointId,
    since: Annotated[str, typer.Option("--since", help="ISO time, YYYY-MM-DD, or a duration ago (6h, 3d).", show_default=False)],
) -> None:
    """Send again every failed delivery of an endpoint since a time, and what it missed while disabled."""
    when = parse_since(since)

    count = with_engine(ctx, lambda engine: engine.webhooks.recover(endpoint_id, when, actor=cli_actor()))
    typer.echo(f"{count} deliveries queued for {endpoint_id} (events since {local_time(when)})")


@app.command("test")
def test(ctx: typer.Context, endpoint_id: EndpointId) -> None:
    """Send a webhook.test message to an endpoint now and show the answer."""
    outcome = with_engine(ctx, lambda engine: engine.webhooks.send_test(endpoint_id))
    result = outcome.result
    if not outcome.succeeded:
        raise WebhookError(f"test delivery {outcome.delivery.id} failed: {result.describe()} after {result.duration_ms:.0f} ms")
    typer.echo(f"{outcome.delivery.id} delivered: HTTP {result.status_code} in {result.duration_ms:.1f} ms")


# --- listen ----------------------------------------------------------------------------------------


def receiver_app(secrets: list[str], *, echo: Any = typer.echo, on_event: Any = None) -> Any:
    """The ASGI app behind `listen`: verify, print, answer 204 (400 when verification fails)."""
    from engine.webhooks import verify

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break

        async def answer(status: int, text: str = "") -> None:
            payload = text.encode()
            await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})

        if scope["method"] != "POST":
            await answer(405, "POST webhooks here\n")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        msg_id = headers.get("webhook-id", "-")
        stamp = local_time(datetime.now(UTC))
        if secrets:
            try:
                event = verify(body, headers, secrets)
            except WebhookError as exc:
                echo(f"{stamp}  {msg_id}  rejected: {exc.message}")
                await answer(400, exc.message + "\n")
                return
            check = "signature verified"
        else:
            try:
                event = json.loads(body)
            except ValueError:
                echo(f"{stamp}  {msg_id}  rejected: the body is not JSON")
                await answer(400, "not JSON\n")
                return
            check = "signature NOT checked (no --secret)"
        event_type = event.get("type", "?") if isinstance(event, dict) else "?"
        echo(f"{stamp}  {msg_id}  {event_type}  {check}")
        echo(json.dumps(event.get("data") if isinstance(event, dict) else event, indent=2, ensure_ascii=False))
        await answer(204)
        if on_event is not None:
            on_event()

    return app


@app.command("listen")
def listen(
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", envvar="BAKONG_CONSOLE_WEBHOOK_SECRET", help="whsec_ secret to verify with (repeat during a rotation)."),
    ] = None,
    max_events: Annotated[int | None, typer.Option("--max-events", help="Stop after this many accepted events.")] = None,
) -> None:
    """Run a local receiver that verifies signatures and prints each event (for integrators)."""
    import uvicorn

    from engine.webhooks import secret_key

    secrets = [s.strip() for s in secret or [] if s.strip()]
    for s in secrets:
        secret_key(s)  # a malformed secret is an error now, not a rejection per message
    if not 1 <= port <= 65535:
        raise InvalidInput("--port must be between 1 and 65535", field="port")
    if max_events is not None and max_events < 1:
        raise InvalidInput("--max-events must be at least 1", field="max_events")
    server: uvicorn.Server | None = None
    accepted = 0

    def counted() -> None:
        nonlocal accepted
        accepted += 1
        if max_events is not None and accepted >= max_events and server is not None:
            server.should_exit = True

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="port") from None
    config = uvicorn.Config(receiver_app(secrets, on_event=counted), log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    verifying = f"verifying with {len(secrets)} secret(s)" if secrets else "NOT verifying: no --secret"
    typer.echo(f"listening on http://{host}:{port}/ ({verifying}); Ctrl-C stops", err=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
