"""Payment detail: every field of one payment, its status timeline, the Bakong record, the
webhook deliveries about it with each attempt, and its QR (toasts beside it, never over it).
Reloads when the payment changes.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Label, Static

from bakong_console.times import local_time
from bakong_console.tui.context import ConsoleContext
from bakong_console.tui.formatting import amount_text, endpoint_answer, status_badge, took
from bakong_console.tui.screens.actions import PaymentActions
from bakong_console.tui.widgets.alerts import AlertBar
from bakong_console.tui.widgets.header import EngineHeader
from bakong_console.tui.widgets.khqr_code import KHQRCode, keep_toasts_off
from bakong_console.tui.work import engine_work
from engine.records import Event, Payment, PaymentStatus, StatusChange, WebhookAttempt, WebhookDelivery

__all__ = ["PaymentDetailScreen"]


def _fields(p: Payment) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("Payment", p.id),
        ("Status", status_badge(p.status.value)),
        ("Amount", amount_text(p.amount_minor, p.currency)),
        ("Reference", p.reference),
        ("Bill number", p.bill_number),
        ("Note", p.description),
        ("Customer", p.customer_id),
        ("Created", f"{local_time(p.created_at)} by {p.created_by_type}:{p.created_by}"),
        ("Expires", local_time(p.expires_at)),
        ("Paid", local_time(p.paid_at) if p.paid_at else None),
        ("Receiving account", p.receiving_account),
        ("Payer account", p.payer_account),
        ("KHQR MD5", p.md5),
        ("Bakong hash", p.bakong_hash),
        ("Checks", f"{p.check_count}" + (f" · last {local_time(p.last_checked_at)}: {p.last_check_result}" if p.last_checked_at else "")),
        ("Next check", local_time(p.next_check_at) if p.next_check_at else "not scheduled"),
        ("Check requested", local_time(p.check_requested_at) if p.check_requested_at else None),
        ("Late watch until", local_time(p.late_watch_until) if p.late_watch_until else None),
        ("Idempotency key", p.idempotency_key),
        ("API key", p.api_key_id),
        ("Subscription", p.subscription_id),
        ("Invoice", p.invoice_id),
        ("Deep link", p.deep_link),
        ("Updated", local_time(p.updated_at) if p.updated_at else None),
    ]
    for label, value in rows:
        if isinstance(value, Text):
            grid.add_row(label, value)
        else:
            grid.add_row(label, Text("—" if value in (None, "") else str(value), style="" if value not in (None, "") else "dim"))
    return grid


def _timeline(history: list[StatusChange]) -> Table:
    table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
    table.add_column("When", no_wrap=True)
    table.add_column("Change", no_wrap=True)
    table.add_column("Why", ratio=1, overflow="fold")
    table.add_column("Who", no_wrap=True)
    for change in history:
        move = Text()
        if change.from_status:
            move.append(change.from_status, style="dim")
            move.append(" → ")
        move.append_text(status_badge(change.to_status))
        table.add_row(local_time(change.at), move, change.reason, change.actor)
    return table


def _deliveries(deliveries: list[tuple[WebhookDelivery, list[WebhookAttempt]]], urls: dict[str, str]) -> Group | Text:
    if not deliveries:
        return Text("No webhook deliveries about this payment.", style="dim")
    table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
    table.add_column("Event", no_wrap=True)
    table.add_column("Endpoint", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Attempt", ratio=1, overflow="fold")
    for delivery, attempts in deliveries:
        endpoint = urls.get(delivery.endpoint_id, delivery.endpoint_id)
        table.add_row(delivery.event_type, endpoint, delivery.status, f"{delivery.attempt_count} attempt(s)")
        for attempt in attempts:
            answer = endpoint_answer(attempt.status_code, attempt.error)
            table.add_row("", "", Text(f"#{attempt.attempt}", style="dim"), f"{local_time(attempt.started_at)} · {answer} · {took(attempt.duration_ms)}")
    return Group(table)


class PaymentDetailScreen(PaymentActions):
    """Everything about one payment."""

    app: ConsoleContext  # type: ignore[assignment]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="detail.close"),
        *PaymentActions.PAYMENT_BINDINGS,
    ]

    def __init__(self, payment_id: str) -> None:
        super().__init__(classes="detail-screen")
        self.payment_id = payment_id
        self.payment: Payment | None = None

    def compose(self) -> ComposeResult:
        yield EngineHeader()
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-title")
            with Horizontal(id="detail-top"):
                yield Static(id="detail-fields")
                yield KHQRCode(id="detail-code")
            yield Label("Status timeline", classes="section-title")
            yield Static(id="detail-timeline")
            yield Label("Bakong record", classes="section-title")
            yield Static(id="detail-bakong")
            yield Label("Webhook deliveries", classes="section-title")
            yield Static(id="detail-webhooks")
        yield AlertBar()
        yield Footer()

    def on_mount(self) -> None:
        self.app.payments_signal.subscribe(self, self._payments_changed)
        self.app.webhooks_signal.subscribe(self, lambda _event: self.load())
        self.query_one("#detail-body").focus()
        self.load()

    def _payments_changed(self, changes: dict[str, Event]) -> None:
        if self.payment_id in changes:
            self.load()

    def action_close(self) -> None:
        self.dismiss()

    def current_payment_id(self) -> str | None:
        return self.payment_id

    def current_status(self) -> PaymentStatus | None:
        return self.payment.status if self.payment else None

    @engine_work(exclusive=True, group="detail-load", what="load the payment")
    async def load(self) -> None:
        engine = self.app.engine
        payment = await engine.payments.get(self.payment_id)
        history = await engine.payments.history(self.payment_id)
        deliveries = []
        for delivery in await engine.webhooks.deliveries_for_subject("payment", self.payment_id):
            deliveries.append((delivery, await engine.webhooks.attempts(delivery.id)))
        urls = {e.id: e.url for e in await engine.webhooks.list_endpoints()} if deliveries else {}
        self.payment = payment
        title = Text()
        title.append_text(status_badge(payment.status.value, 14))
        title.append(f"  {amount_text(payment.amount_minor, payment.currency)}", style="bold")
        if payment.reference:
            title.append(f"  ref {payment.reference}")
        self.query_one("#detail-title", Static).update(title)
        self.query_one("#detail-fields", Static).update(_fields(payment))
        self.query_one("#detail-code", KHQRCode).qr = payment.khqr
        self.query_one("#detail-timeline", Static).update(_timeline(history))
        record = payment.bakong_record
        self.query_one("#detail-bakong", Static).update(
            Text(json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False)) if record else Text("Not found on Bakong yet.", style="dim")
        )
        self.query_one("#detail-webhooks", Static).update(_deliveries(deliveries, urls))
        self.refresh_bindings()
        self.call_after_refresh(self._keep_toasts_off_the_qr)

    def on_resize(self) -> None:
        self.call_after_refresh(self._keep_toasts_off_the_qr)

    def _keep_toasts_off_the_qr(self) -> None:
        keep_toasts_off(self.query_one("#detail-code", KHQRCode))
