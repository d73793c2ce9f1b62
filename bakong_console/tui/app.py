"""The console App and ``create_app``, the one factory the CLI and the tests both use.

Harlequin's split: the App is handed an open ``Engine`` and never opens or closes it; the CLI
opens the engine, runs the App, and closes the engine (leases released) however the App ends.
Screens are Textual *modes* (board, cashier, webhooks, subscriptions, audit, displays, reports) so
switching keeps each one's state; the payment detail screen is pushed over whichever mode opened it.

Engine → console: ``EngineBridge`` posts coalescing messages; the App republishes them on
signals that screens and widgets subscribe to. Console → engine: ``engine_work`` workers; their
failures come back to ``show_error``, the one error handler.

The App depends on its screens, never the reverse: screens see it as a ``ConsoleContext``
(``context.py``), the part of it they may use, which the App satisfies structurally.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.signal import Signal

from bakong_console.times import clock_time
from bakong_console.tui.bridge import EngineBridge
from bakong_console.tui.dialogs.error import report_error
from bakong_console.tui.keys import binding_ids, checked_keymap
from bakong_console.tui.messages import AlertRaised, AuditChanged, PaymentsChanged, SubscriptionsChanged, WebhooksChanged
from bakong_console.tui.screens.audit import AuditScreen
from bakong_console.tui.screens.board import BoardScreen
from bakong_console.tui.screens.cashier import CashierScreen
from bakong_console.tui.screens.detail import PaymentDetailScreen
from bakong_console.tui.screens.displays import DisplaysScreen
from bakong_console.tui.screens.reports import ReportsScreen
from bakong_console.tui.screens.subscriptions import SubscriptionsScreen
from bakong_console.tui.screens.webhooks import WebhooksScreen
from bakong_console.tui.state import Alert, ConsoleState, EngineStatus
from bakong_console.tui.time_input import parse_instant
from bakong_console.tui.widgets.payments_table import PendingPaymentsTable
from bakong_console.tui.work import engine_work
from engine import events as ev
from engine.db.payments import PaymentFilter
from engine.errors import InvalidInput
from engine.records import Actor, ActorType, Event, PaymentStatus
from engine.runtime import Engine

__all__ = ["BakongConsoleApp", "create_app"]

log = logging.getLogger("bakong_console.tui")

_REVIEW = (PaymentStatus.NEEDS_REVIEW, PaymentStatus.PAID_LATE)


class BakongConsoleApp(App[int]):
    """The operator console over one open engine."""

    CSS_PATH = "console.tcss"
    TITLE = "bakong-console"

    MODES: ClassVar[dict[str, Any]] = {
        "board": BoardScreen,
        "cashier": CashierScreen,
        "webhooks": WebhooksScreen,
        "subscriptions": SubscriptionsScreen,
        "audit": AuditScreen,
        "displays": DisplaysScreen,
        "reports": ReportsScreen,
    }
    DEFAULT_MODE = "board"
    #: No focus lands anywhere by itself: each screen puts it where its keys are meant to go (the
    #: board's table, the cashier's amount, nothing on the cashier's QR face). Textual's default
    #: would give it to the first focusable widget, even one that is not displayed: the hidden
    #: form under the QR, or the board's search box while the board starts.
    AUTO_FOCUS: ClassVar[str | None] = None

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "show_mode('board')", "Board", id="app.board"),
        Binding("n", "show_mode('cashier')", "New payment", id="app.new_payment"),
        Binding("w", "show_mode('webhooks')", "Webhooks", id="app.webhooks"),
        Binding("s", "show_mode('subscriptions')", "Subscriptions", id="app.subscriptions"),
        Binding("a", "show_mode('audit')", "Audit", id="app.audit"),
        Binding("r", "show_mode('reports')", "Reports", id="app.reports"),
        Binding("d", "show_mode('displays')", "Displays", show=False, id="app.displays"),
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="app.interrupt"),
    ]

    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (30, "-tall")]
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-wide")]

    #: Every class whose bindings an operator may remap (``console.bindings``).
    BINDING_OWNERS: ClassVar[tuple[type[Any], ...]] = ()

    def __init__(
        self,
        engine: Engine,
        *,
        actor: Actor,
        keymap: dict[str, str] | None = None,
        bell_on_paid: bool = True,
        status_seconds: float = 5.0,
        tick_seconds: float = 1.0,
        watch_seconds: float = 2.0,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.actor = actor
        self.bell_on_paid = bell_on_paid
        #: How often the header re-reads leases, budget and token (real seconds).
        self.status_seconds = status_seconds
        #: How often countdowns repaint (real seconds; the time shown comes from the engine clock).
        self.tick_seconds = tick_seconds
        #: How often the board re-reads the payments on screen that are still being checked.
        self.watch_seconds = watch_seconds
        info = engine.info
        self.state = ConsoleState(EngineStatus(sandbox=info.sandbox, environment=info.environment, database=info.database))
        self.payments_signal: Signal[dict[str, Event]] = Signal(self, "payments")
        self.status_signal: Signal[EngineStatus] = Signal(self, "engine-status")
        self.alerts_signal: Signal[dict[str, Alert]] = Signal(self, "alerts")
        self.webhooks_signal: Signal[Event] = Signal(self, "webhooks")
        self.subscriptions_signal: Signal[Event] = Signal(self, "subscriptions")
        self.audit_signal: Signal[Event] = Signal(self, "audit")
        self.bridge = EngineBridge(self, engine.bus)
        #: The fingerprint of the token Bakong refused (errorCode 6), from the poller's alert: the
        #: token alert stays up while that token is in use, whatever its own expiry date says.
        self.refused_token: str | None = None
        if keymap:
            self.set_keymap(keymap)

    @property
    def sandbox(self) -> bool:
        """True when payments can be paid through the built-in sandbox from the console."""
        return self.engine.sandbox is not None

    # --- lifecycle --------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.bridge.start()
        self.refresh_status()
        self.refresh_review_alert()
        self.set_interval(self.status_seconds, self.refresh_status, name="engine-status")

    def on_unmount(self) -> None:
        self.bridge.stop()

    # --- engine events ----------------------------------------------------------------------------

    def on_payments_changed(self, message: PaymentsChanged) -> None:
        self.payments_signal.publish(message.changes)
        review = False
        for event in message.changes.values():
            status = event.payload.get("status")
            if status in _REVIEW or event.payload.get("previous_status") in _REVIEW:
                review = True
            if event.type in (ev.PAYMENT_NEEDS_REVIEW, ev.PAYMENT_PAID_LATE):
                if event.type == ev.PAYMENT_PAID_LATE:
                    what = "was paid after it expired"
                elif event.payload.get("previous_status") == "CANCELLED":
                    what = "was paid after it was cancelled"
                else:
                    what = "was paid with a different amount or account"
                ref = event.payload.get("reference") or event.subject_id
                self.notify(f"Payment {ref} {what}: decide it on the board (R).", title="Needs review", severity="warning", timeout=10)
        if review:
            self.refresh_review_alert()

    def on_alert_raised(self, message: AlertRaised) -> None:
        event = message.event
        text = str(event.payload.get("message") or event.type.removeprefix("alert.").replace("_", " "))
        if event.type == ev.ALERT_BAKONG_RECOVERED:
            self.clear_alert("bakong")
            self.notify(text, title="Bakong", severity="information")
            return
        key, severity, title = {
            ev.ALERT_TOKEN_EXPIRED: ("token", "error", "Bakong token expired"),
            ev.ALERT_TOKEN_EXPIRING: ("token", "warning", "Bakong token expiring"),
            ev.ALERT_QUOTA_EXHAUSTED: ("quota", "error", "Bakong quota spent"),
            ev.ALERT_BAKONG_UNREACHABLE: ("bakong", "error", "Bakong unreachable"),
            ev.ALERT_WEBHOOK_ENDPOINT_DISABLED: (f"webhook:{event.subject_id}", "warning", "Webhook endpoint disabled"),
            ev.ALERT_BACKUP_FAILED: ("backup", "error", "Backup failed"),
            ev.ALERT_OPENING_HOURS_MISMATCH: ("hours", "warning", "Opening hours look wrong"),
            ev.ALERT_RECONCILIATION_FAILED: ("reconciliation", "warning", "Reconciliation flagged payments"),
            ev.ALERT_PAID_AFTER_CANCEL: (f"paid-after-cancel:{event.subject_id}", "error", "Cancelled KHQR paid"),
        }.get(event.type, (event.type, "warning", "Alert"))
        if event.type == ev.ALERT_QUOTA_EXHAUSTED and event.payload.get("until"):
            text = f"Bakong quota spent until {clock_time(parse_instant(str(event.payload['until'])))}"
        elif event.type == ev.ALERT_TOKEN_EXPIRED:
            text = "Bakong token expired: polling paused until a new token is set"
            self.refused_token = str(event.payload.get("token") or "") or None
        elif event.type == ev.ALERT_WEBHOOK_ENDPOINT_DISABLED:
            text = f"webhook endpoint {event.payload.get('url') or event.subject_id} disabled"
        elif event.type == ev.ALERT_BAKONG_UNREACHABLE:
            text = f"Bakong: {text}"
        self.set_alert(Alert(key, text, severity, event.occurred_at))
        self.notify(text, title=title, severity="error" if severity == "error" else "warning", timeout=10)

    def on_webhooks_changed(self, message: WebhooksChanged) -> None:
        self.webhooks_signal.publish(message.event)

    def on_subscriptions_changed(self, message: SubscriptionsChanged) -> None:
        self.subscriptions_signal.publish(message.event)

    def on_audit_changed(self, message: AuditChanged) -> None:
        self.audit_signal.publish(message.event)

    # --- header and alerts ------------------------------------------------------------------------

    def set_alert(self, alert: Alert) -> None:
        current = self.state.alerts.get(alert.key)
        if current is not None and current.message == alert.message and current.severity == alert.severity:
            return
        self.state.alerts = {**self.state.alerts, alert.key: alert}
        self.alerts_signal.publish(self.state.alerts)

    def clear_alert(self, key: str) -> None:
        if key in self.state.alerts:
            self.state.alerts = {k: v for k, v in self.state.alerts.items() if k != key}
            self.alerts_signal.publish(self.state.alerts)

    @engine_work(exclusive=True, group="engine-status", what="read the engine status")
    async def refresh_status(self) -> None:
        """Re-read who runs the workers, the Bakong budget and the token (header and alerts)."""
        engine = self.engine
        now = engine.clock.now()
        leases = await engine.leases()
        usage = await engine.client.budget_usage()
        token = engine.client.token_info()
        paused = engine.poller_state
        refused = token is not None and token.fingerprint in (
            self.refused_token,
            paused.paused_fingerprint if paused.paused_reason else None,
        )
        if token is None or not refused:
            self.refused_token = None
        poller = next((lease for lease in leases if lease.name == "poller"), None)
        if poller is None or poller.expires_at <= now:
            workers = "nobody"
        else:
            workers = "here" if poller.holder == engine.holder else "daemon"
        status = replace(
            self.state.status,
            workers=workers,
            workers_holder=poller.holder if poller else None,
            requests_left=usage.remaining,
            requests_budget=usage.budget,
            token_days=token.days_left if token else None,
            token_expired=bool(token and (token.expired or refused)),
        )
        if status != self.state.status:
            self.state.status = status
            self.status_signal.publish(status)
        if poller is not None and poller.holder != engine.holder and poller.expires_at <= now:
            self.set_alert(
                Alert("daemon", f"daemon heartbeat missing: {poller.holder} stopped renewing the poller lease", "error", poller.expires_at)
            )
        elif workers != "nobody":
            self.clear_alert("daemon")
        if token is not None and (token.expired or refused):
            self.set_alert(Alert("token", "Bakong token expired: polling paused until a new token is set", "error"))
        elif "token" in self.state.alerts and token is not None and not token.expired and self.state.alerts["token"].severity == "error":
            self.clear_alert("token")
        if usage.exhausted_until is not None and usage.exhausted_until > now:
            self.set_alert(Alert("quota", f"Bakong quota spent until {clock_time(usage.exhausted_until)}", "error"))
        else:
            self.clear_alert("quota")

    @engine_work(exclusive=True, group="review-count", what="count payments needing review")
    async def refresh_review_alert(self) -> None:
        page, more = await self.engine.payments.search(PaymentFilter(statuses=_REVIEW), limit=1000)
        if not page:
            self.clear_alert("review")
            return
        count = f"{len(page)}{'+' if more else ''}"
        noun = "payment needs" if len(page) == 1 and not more else "payments need"
        self.set_alert(Alert("review", f"{count} {noun} review", "warning"))

    # --- errors -----------------------------------------------------------------------------------

    def show_error(self, exc: BaseException, *, action: str = "do that", source: object | None = None) -> None:
        """The one error handler (``dialogs.error.report_error``): a field's complaint by the
        field, other engine errors as a toast, anything unexpected in an error dialog."""
        report_error(self, exc, action=action, source=source, log=log)

    # --- navigation -------------------------------------------------------------------------------

    async def action_show_mode(self, mode: str) -> None:
        """Show one of the console's screens (b, n, w, s, a, d, r) itself: switch to its mode and close
        what was opened over it (a payment's detail), so b always shows the board."""
        if mode != self.current_mode:
            await self.switch_mode(mode)
        while len(self.screen_stack) > 1:
            await self.pop_screen()

    def open_payment(self, payment_id: str) -> None:
        """Push the detail screen of one payment over the current screen."""
        self.push_screen(PaymentDetailScreen(payment_id))

    # --- command palette --------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every action reachable from ``screen`` (its bindings and the app's), plus screen extras."""
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.system or not active.enabled:
                continue
            title = binding.description
            if title in seen:
                continue
            seen.add(title)
            shown_key = self.get_key_display(binding)
            yield SystemCommand(title, f"{shown_key}  ·  {binding.id or binding.action}", partial(self.run_action, binding.action, active.node))
        extra = getattr(screen, "palette_commands", None)
        if extra is not None:
            for title, help_text, callback in extra():
                if title not in seen:
                    seen.add(title)
                    yield SystemCommand(title, help_text, callback)
        yield SystemCommand("Theme", "Change the colour theme", self.action_change_theme)
        yield SystemCommand("Keys", "Show every key of this screen", self.action_show_help_panel)


#: Every class with bindings an operator may remap through ``console.bindings``.
BakongConsoleApp.BINDING_OWNERS = (
    BakongConsoleApp,
    BoardScreen,
    CashierScreen,
    PaymentDetailScreen,
    WebhooksScreen,
    SubscriptionsScreen,
    AuditScreen,
    DisplaysScreen,
    ReportsScreen,
    PendingPaymentsTable,
)


def create_app(
    engine: Engine,
    *,
    actor: Actor | None = None,
    status_seconds: float = 5.0,
    tick_seconds: float = 1.0,
    watch_seconds: float = 2.0,
) -> BakongConsoleApp:
    """The console over ``engine``, configured from ``engine.settings.console``.

    Refuses (``InvalidInput``) an unknown binding id or theme in the settings.
    """
    console = engine.settings.console
    keymap = checked_keymap(console.bindings, binding_ids(BakongConsoleApp.BINDING_OWNERS))
    if actor is None:
        name = console.cashier.strip()
        if not name:
            try:
                name = getpass.getuser()
            except (KeyError, OSError):
                name = "cashier"
        actor = Actor(ActorType.CASHIER, name)
    app = BakongConsoleApp(
        engine,
        actor=actor,
        keymap=keymap,
        bell_on_paid=console.bell_on_paid,
        status_seconds=status_seconds,
        tick_seconds=tick_seconds,
        watch_seconds=watch_seconds,
    )
    if console.theme not in app.available_themes:
        raise InvalidInput(
            f"console.theme: unknown theme {console.theme!r}; available: {', '.join(sorted(app.available_themes))}",
            field="console.theme",
        )
    app.theme = console.theme
    return app
