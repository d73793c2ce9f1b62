"""Webhooks: the endpoints with their health, the deliveries (failed ones by default) with each
attempt, and the operator's tools: replay one delivery, recover an endpoint since a time,
enable or disable an endpoint.

Deliveries change without an event of their own (an attempt is not a domain event), so besides
following webhook events the screen re-reads itself every few seconds while it is shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from bakong_console.times import local_time
from bakong_console.tui.context import ConsoleContext
from bakong_console.tui.formatting import endpoint_answer, took
from bakong_console.tui.time_input import parse_instant, parse_span
from bakong_console.tui.widgets.alerts import AlertBar
from bakong_console.tui.widgets.header import EngineHeader
from bakong_console.tui.work import engine_work
from engine.errors import InvalidInput
from engine.records import WebhookDelivery

if TYPE_CHECKING:
    from engine.services.webhooks import EndpointHealth

__all__ = ["RecoverDialog", "WebhooksScreen", "parse_since"]

PAGE = 200


def parse_since(text: str, now: datetime) -> datetime:
    """"2h", "30m", "1d" before ``now``, or an ISO time with its zone ("2026-01-15T09:00+07:00")."""
    value = text.strip()
    if not value:
        raise InvalidInput("since is required: e.g. 2h, 30m, 1d or 2026-01-15T09:00+07:00", field="since")
    span = parse_span(value)
    if span is not None:
        return now - span
    try:
        when = parse_instant(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is neither a duration (2h, 30m, 1d) nor an ISO time", field="since") from None
    if when.tzinfo is None:
        raise InvalidInput("give the time with its zone, e.g. +07:00", field="since")
    return when


class RecoverDialog(ModalScreen[datetime | None]):
    """Ask from when to re-send what an endpoint failed or missed."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back", id="dialog.close")]

    def __init__(self, url: str, now: datetime) -> None:
        super().__init__(classes="dialog")
        self.url = url
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label("Recover webhook deliveries", classes="dialog-title")
            yield Static(self.url, classes="dialog-body", markup=False)
            yield Static("Re-send every failed delivery, and every event missed while disabled, since:", classes="dialog-hint")
            yield Input(value="24h", placeholder="2h, 30m, 1d or 2026-01-15T09:00+07:00", id="recover-since", compact=True)
            yield Static("", id="recover-since-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Recover", id="recover-go", variant="warning", compact=True)
                yield Button("Back", id="recover-back", compact=True)

    def on_mount(self) -> None:
        self.query_one("#recover-since", Input).focus()

    @on(Button.Pressed, "#recover-go")
    @on(Input.Submitted, "#recover-since")
    def go(self) -> None:
        try:
            since = parse_since(self.query_one("#recover-since", Input).value, self.now)
        except InvalidInput as exc:
            self.query_one("#recover-since-error", Static).update(exc.message)
            return
        self.dismiss(since)

    @on(Button.Pressed, "#recover-back")
    def back(self) -> None:
        self.dismiss(None)


class WebhooksScreen(Screen[None]):
    """Endpoints above, deliveries below, the highlighted delivery's attempts at the bottom."""

    app: ConsoleContext  # type: ignore[assignment]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "replay", "Replay delivery", id="webhooks.replay"),
        Binding("R", "recover", "Recover endpoint", id="webhooks.recover"),
        Binding("e", "toggle_endpoint", "Enable/disable", id="webhooks.toggle_endpoint"),
        Binding("f", "toggle_failed", "Failed/all", id="webhooks.failed_only"),
        Binding("tab", "switch_table", "Next table", show=False, id="webhooks.next_table"),
    ]

    def __init__(self) -> None:
        super().__init__(id="webhooks")
        self.failed_only = True
        self.endpoints: list[EndpointHealth] = []
        self.deliveries: list[WebhookDelivery] = []

    def compose(self) -> ComposeResult:
        yield EngineHeader()
        yield Static("Endpoints", classes="table-title")
        yield DataTable(id="webhooks-endpoints", cursor_type="row")
        yield Static(id="webhooks-deliveries-title", classes="table-title")
        yield DataTable(id="webhooks-deliveries", cursor_type="row", zebra_stripes=True)
        yield Static(id="webhooks-attempts")
        yield AlertBar()
        yield Footer()

    def on_mount(self) -> None:
        endpoints = self.query_one("#webhooks-endpoints", DataTable)
        for label, key in (("Endpoint", "url"), ("State", "state"), ("Pending", "pending"), ("Failed", "failed"), ("Last success", "ok"), ("Note", "note")):
            endpoints.add_column(label, key=key)
        deliveries = self.query_one("#webhooks-deliveries", DataTable)
        for label, key in (("Created", "at"), ("Event", "type"), ("Endpoint", "endpoint"), ("Status", "status"), ("Tries", "tries"), ("Last answer", "answer"), ("Next try", "next")):
            deliveries.add_column(label, key=key)
        deliveries.focus()
        self.app.webhooks_signal.subscribe(self, lambda _event: self.reload())
        self.set_interval(self.app.status_seconds, self._poll, name="webhooks-poll")
        self.reload()

    def _poll(self) -> None:
        if self.app.screen is self:
            self.reload()

    def _title(self) -> None:
        what = "Failed deliveries" if self.failed_only else "All deliveries"
        self.query_one("#webhooks-deliveries-title", Static).update(f"{what}  [dim](f: {'all' if self.failed_only else 'failed only'})[/]")

    # --- reading ----------------------------------------------------------------------------------

    @engine_work(exclusive=True, group="webhooks-load", what="read the webhooks")
    async def reload(self) -> None:
        webhooks = self.app.engine.webhooks
        self.endpoints = await webhooks.endpoint_health()
        self.deliveries, _ = await webhooks.list_deliveries(failed_only=self.failed_only, limit=PAGE)
        self._title()
        urls = {h.endpoint.id: h.endpoint.url for h in self.endpoints}
        table = self.query_one("#webhooks-endpoints", DataTable)
        keep = table.cursor_row
        table.clear()
        for h in self.endpoints:
            e = h.endpoint
            state = Text("enabled", style="green") if e.enabled else Text("DISABLED", style="bold red")
            if e.enabled and e.failing_since is not None:
                state = Text(f"failing since {local_time(e.failing_since)}", style="yellow")
            table.add_row(e.url, state, str(h.pending), str(h.failed), local_time(h.last_success_at) if h.last_success_at else "never", e.disabled_reason or e.description or "", key=e.id)
        if self.endpoints:
            table.move_cursor(row=min(keep, len(self.endpoints) - 1))
        table = self.query_one("#webhooks-deliveries", DataTable)
        keep = table.cursor_row
        table.clear()
        for d in self.deliveries:
            answer = endpoint_answer(d.last_status_code, d.last_error, nothing="—")
            table.add_row(
                local_time(d.created_at), d.event_type, urls.get(d.endpoint_id, d.endpoint_id), d.status, str(d.attempt_count),
                answer, local_time(d.next_attempt_at) if d.next_attempt_at else "—", key=d.id,
            )  # fmt: skip
        if self.deliveries:
            table.move_cursor(row=min(keep, len(self.deliveries) - 1))
        self.show_attempts()

    def _selected_delivery(self) -> WebhookDelivery | None:
        table = self.query_one("#webhooks-deliveries", DataTable)
        if 0 <= table.cursor_row < len(self.deliveries):
            return self.deliveries[table.cursor_row]
        return None

    def _selected_endpoint(self) -> EndpointHealth | None:
        table = self.query_one("#webhooks-endpoints", DataTable)
        if 0 <= table.cursor_row < len(self.endpoints):
            return self.endpoints[table.cursor_row]
        return None

    @on(DataTable.RowHighlighted, "#webhooks-deliveries")
    def delivery_highlighted(self) -> None:
        self.show_attempts()
        self.refresh_bindings()

    @on(DataTable.RowHighlighted, "#webhooks-endpoints")
    def endpoint_highlighted(self) -> None:
        self.refresh_bindings()

    @engine_work(exclusive=True, group="webhooks-attempts", what="read the delivery attempts")
    async def show_attempts(self) -> None:
        out = self.query_one("#webhooks-attempts", Static)
        delivery = self._selected_delivery()
        if delivery is None:
            out.update(Text("No failed deliveries." if self.failed_only else "No deliveries.", style="dim"))
            return
        attempts = await self.app.engine.webhooks.attempts(delivery.id)
        text = Text(f"{delivery.id} · {delivery.event_type} · event {delivery.event_id}", style="bold")
        if not attempts:
            text.append("\nnot attempted yet", style="dim")
        for a in attempts:
            answer = endpoint_answer(a.status_code, a.error)
            text.append(f"\n#{a.attempt} {local_time(a.started_at)} · {answer} · {took(a.duration_ms)}")
            if a.response_excerpt:
                text.append(f" · {a.response_excerpt[:80]}", style="dim")
        out.update(text)

    # --- actions ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "replay":
            return self._selected_delivery() is not None
        if action in ("recover", "toggle_endpoint"):
            return self._selected_endpoint() is not None
        return True

    def action_toggle_failed(self) -> None:
        self.failed_only = not self.failed_only
        self.reload()

    def action_switch_table(self) -> None:
        endpoints = self.query_one("#webhooks-endpoints", DataTable)
        deliveries = self.query_one("#webhooks-deliveries", DataTable)
        (deliveries if endpoints.has_focus else endpoints).focus()

    def action_replay(self) -> None:
        if (delivery := self._selected_delivery()) is not None:
            self.replay(delivery.id)

    @engine_work(group="webhooks-action", what="replay the delivery")
    async def replay(self, delivery_id: str) -> None:
        delivery = await self.app.engine.webhooks.replay(delivery_id, actor=self.app.actor)
        self.notify(f"Delivery {delivery.id} ({delivery.event_type}) will be sent again.", title="Replay")
        self.reload()

    def action_recover(self) -> None:
        health = self._selected_endpoint()
        if health is None:
            return
        endpoint_id = health.endpoint.id

        def decided(since: datetime | None) -> None:
            if since is not None:
                self.recover(endpoint_id, since)

        self.app.push_screen(RecoverDialog(health.endpoint.url, self.app.engine.clock.now()), decided)

    @engine_work(group="webhooks-action", what="recover the endpoint")
    async def recover(self, endpoint_id: str, since: datetime) -> None:
        count = await self.app.engine.webhooks.recover(endpoint_id, since, actor=self.app.actor)
        self.notify(f"{count} {'delivery' if count == 1 else 'deliveries'} queued again since {local_time(since)}.", title="Recover")
        self.reload()

    def action_toggle_endpoint(self) -> None:
        if (health := self._selected_endpoint()) is not None:
            self.toggle_endpoint(health.endpoint.id, health.endpoint.enabled)

    @engine_work(group="webhooks-action", what="change the endpoint")
    async def toggle_endpoint(self, endpoint_id: str, enabled: bool) -> None:
        webhooks = self.app.engine.webhooks
        if enabled:
            endpoint = await webhooks.disable(endpoint_id, actor=self.app.actor, reason="disabled at the console")
            self.notify(f"{endpoint.url} disabled: its deliveries wait (recover re-sends them).", title="Webhooks")
        else:
            endpoint = await webhooks.enable(endpoint_id, actor=self.app.actor)
            self.notify(f"{endpoint.url} enabled.", title="Webhooks")
            self.app.clear_alert(f"webhook:{endpoint_id}")
        self.reload()
