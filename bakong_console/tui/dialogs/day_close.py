"""``DayCloseDialog``: the end-of-day close (Z report) of one day, from the Reports screen (``z``).

It reads the day's report, shows the Z report as ``close-day`` prints it (``bakong_console.zreport``:
what the close would freeze, or what it froze), who will be recorded as closing it (the console's
actor, as the audit log names it), and what still needs a decision, a line per status saying what
to do. Confirming closes the day through the engine's one close service
(``engine.day_close.close``), the same call the CLI makes: while payments wait it needs "force" and
a reason typed here. A closed day is shown read-only, with when and by whom it was closed.

Unlike the payment dialogs, this one makes its engine calls itself: an answer the service refuses
(already closed, a payment that came in meanwhile, a day still to come) belongs in the dialog,
beside what the operator is deciding, not in a toast behind it. Only what the engine does not
explain (a bug) goes to the App's error handler. Escape leaves without writing anything; the
dialog returns the ``DayClose`` it wrote, or None.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from bakong_console.times import local_time
from bakong_console.tui.context import ConsoleContext
from bakong_console.tui.formatting import status_badge
from bakong_console.tui.widgets.form import Form
from bakong_console.tui.work import engine_work
from bakong_console.zreport import receipt
from engine.errors import BakongConsoleError, InvalidInput, InvalidTransition
from engine.report_records import OPEN_STATUSES, DayClose, DayReport

__all__ = ["DayCloseDialog", "decisions_text", "waiting_counts"]

REASON_LIMIT = 500


def waiting_counts(report: DayReport) -> dict[str, int]:
    """How many payments of the day wait in each open status (all of them, every currency)."""
    counts = dict.fromkeys(OPEN_STATUSES, 0)
    for s in report.statuses:
        if s.status in counts:
            counts[s.status] += s.count
    return {status: n for status, n in counts.items() if n}


def _what_to_do(status: str, n: int, *, today: bool) -> str:
    one = n == 1
    them = "it" if one else "them"
    if status == "NEEDS_REVIEW":
        return f"amount or account differ: resolve {them} (R on the board)"
    if status == "PAID_LATE":
        return f"paid after expiry: accept or reject {them} (R on the board)"
    if today:
        return f"the payer may still pay: wait until {'it is' if one else 'they are'} paid or expired"
    return f"checked until {'it expires' if one else 'they expire'}: wait, or cancel {them} (x on the board)"


def decisions_text(report: DayReport, today: date) -> Text:
    """What still needs a decision before ``report``'s day can be closed, a line per status."""
    waiting = waiting_counts(report)
    total = sum(waiting.values())
    if not total:
        return Text("Nothing waits for a decision.", style="green")
    text = Text(f"{total} {'payment needs' if total == 1 else 'payments need'} a decision:\n", style="bold")
    for i, (status, n) in enumerate(waiting.items()):
        if i:
            text.append("\n")
        text.append_text(status_badge(status, 12))
        text.append(f" {n:>3}  ", style="bold")
        text.append(_what_to_do(status, n, today=report.day == today))
    return text


class DayCloseDialog(ModalScreen[DayClose | None]):
    """The Z report of one day, what waits, and the close itself."""

    app: ConsoleContext  # type: ignore[assignment]

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back", id="dialog.close")]

    def __init__(self, day: date) -> None:
        super().__init__(classes="dialog")
        self.day = day
        #: The day's report as last read (None until read, or when the day cannot be read).
        self.report: DayReport | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box -close"):
            yield Label(f"Close {self.day:%A} {self.day.isoformat()} (Z report)", id="close-title", classes="dialog-title")
            with Horizontal(id="close-columns"):
                with VerticalScroll(id="close-preview-box"):
                    yield Static("Reading the day…", id="close-preview", markup=False)
                with Vertical(id="close-side"):
                    # What the operator reads scrolls; what they decide with stays in sight below it.
                    with VerticalScroll(id="close-info"):
                        yield Static("", id="close-who")
                        yield Static("", id="close-waiting")
                    with Form(id="close-decision"):
                        yield Checkbox("Close anyway (force)", id="close-force", compact=True)
                        yield Input(placeholder="reason (required to force)", id="close-reason", max_length=REASON_LIMIT, compact=True)
                        yield Static("", id="close-reason-error", classes="field-error")
                        yield Static("", id="close-error", classes="field-error")
                        with Horizontal(classes="dialog-buttons"):
                            yield Button("Close the day", id="close-confirm", variant="warning", compact=True)
                            yield Button("Back", id="close-back", compact=True)

    def on_mount(self) -> None:
        self._say("")
        self._show_controls(closing=False, forcing=False)
        self.query_one("#close-back", Button).focus()
        self.load()

    # --- reading ----------------------------------------------------------------------------------

    @engine_work(exclusive=True, group="day-close-load", what="read the day to close")
    async def load(self) -> None:
        """Read the day's report (a closed day's carries its frozen close) and lay it out."""
        try:
            report = await self.app.engine.reports.day(self.day)
        except BakongConsoleError as exc:
            self.report = None
            self.query_one("#close-preview", Static).update("")
            self._say(f"This day cannot be closed: {exc.message}")
            self._show_controls(closing=False, forcing=False)
            return
        self.show(report)

    def show(self, report: DayReport) -> None:
        """Lay ``report`` out: the frozen close of a closed day, else the close to confirm."""
        self.report = report
        today = self.app.engine.reports.today()
        waiting = self.query_one("#close-waiting", Static)
        who = self.query_one("#close-who", Static)
        if report.close is not None:
            close = report.close
            self.query_one("#close-title", Label).update(f"{report.day:%A} {report.day.isoformat()} is closed (Z report)")
            said = Text("Closed ", style="bold")
            said.append(local_time(close.closed_at))
            said.append(" by ", style="bold")
            said.append(close.closed_by)
            if close.forced:
                said.append("\nForced: ", style="bold red")
                said.append(close.reason or "")
            said.append("\nA closed day never changes: later changes to its payments are adjustments on the next open day.", style="dim")
            who.update(said)
            waiting.update(Text(f"Open at close: {len(close.open_items)}", style="dim") if close.open_items else "")
            self._show_controls(closing=False, forcing=False)
        else:
            said = Text("To be closed by ", style="bold")
            said.append(str(self.app.actor))
            said.append(" (this console)", style="dim")
            forcing = bool(waiting_counts(report))
            if report.day == today and not forcing:
                said.append("\nToday is not over: later payments stay out of this close.", style="dim")
            who.update(said)
            waiting.update(decisions_text(report, today))
            self._show_controls(closing=True, forcing=forcing)
            self.query_one("#close-force" if forcing else "#close-confirm").focus()
        self._show_preview()

    def _show_preview(self) -> None:
        """The Z report as it stands: as frozen, or as closing now (forced, with the reason typed)."""
        if self.report is None:
            return
        force = self.query_one("#close-force", Checkbox).value
        reason = self.query_one("#close-reason", Input).value
        preview = self.app.engine.day_close.preview(self.report, actor=self.app.actor, force=force, reason=reason)
        self.query_one("#close-preview", Static).update(receipt(preview))

    def _show_controls(self, *, closing: bool, forcing: bool) -> None:
        self.query_one("#close-confirm", Button).display = closing
        self.query_one("#close-force", Checkbox).display = forcing
        reason = self.query_one("#close-reason", Input)
        reason.display = forcing
        reason.disabled = not self.query_one("#close-force", Checkbox).value

    def _say(self, message: str, *, field: str | None = None) -> None:
        """Show ``message`` by the reason field (``field="reason"``) or under the controls."""
        by_reason = field == "reason"
        for selector, shown in (("#close-reason-error", by_reason), ("#close-error", not by_reason)):
            line = self.query_one(selector, Static)
            line.update(message if shown else "")
            line.display = bool(message) and shown

    # --- deciding ---------------------------------------------------------------------------------

    @on(Checkbox.Changed, "#close-force")
    def force_changed(self, event: Checkbox.Changed) -> None:
        reason = self.query_one("#close-reason", Input)
        reason.disabled = not event.value
        self._say("")
        if event.value:
            reason.focus()
        self._show_preview()

    @on(Input.Changed, "#close-reason")
    def reason_changed(self) -> None:
        self._show_preview()

    @on(Button.Pressed, "#close-confirm")
    @on(Input.Submitted, "#close-reason")
    def confirm(self) -> None:
        """Close the day when nothing waits, or by force with a reason; otherwise say what is missing."""
        report = self.report
        if report is None or report.close is not None:
            return
        force = self.query_one("#close-force", Checkbox).value
        reason = self.query_one("#close-reason", Input).value.strip()
        waiting = sum(waiting_counts(report).values())
        if waiting and not force:
            self._say(f"{waiting} {'payment waits' if waiting == 1 else 'payments wait'} for a decision: decide first, or tick 'Close anyway' and give a reason.")
            self.query_one("#close-force", Checkbox).focus()
            return
        if force and not reason:
            self._say("A reason is required to close by force.", field="reason")
            self.query_one("#close-reason", Input).focus()
            return
        self._say("")
        self.query_one("#close-confirm", Button).disabled = True
        self._close(force=force, reason=reason or None)

    @engine_work(exclusive=True, group="day-close", what="close the day")
    async def _close(self, *, force: bool, reason: str | None) -> None:
        try:
            close = await self.app.engine.day_close.close(self.day, actor=self.app.actor, force=force, reason=reason)
        except BakongConsoleError as exc:
            self.query_one("#close-confirm", Button).disabled = False
            self._say(exc.message, field=exc.field if isinstance(exc, InvalidInput) else None)
            if isinstance(exc, InvalidTransition):
                # Something changed since the dialog read the day (a payment, a close elsewhere):
                # show the day as it is now, the refusal kept beside it.
                report = await self.app.engine.reports.day(self.day)
                self.show(report)
                self._say(exc.message)
            return
        self.dismiss(close)

    @on(Button.Pressed, "#close-back")
    def back(self) -> None:
        self.dismiss(None)
