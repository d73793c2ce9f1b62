"""The setup screen: going live as one form, with the KHQR the customers will scan beside it.

Every question of ``engine.services.setup.SETUP_FIELDS`` is one row; each answer is checked as it
is typed (``SetupSession.check``: the KHQR rules, opening hours, the token's expiry) and the
reason shows under its field. Leaving the Bakong account asks Bakong about it, leaving the
database connects to it (async workers, never in a handler). The preview beside the form is a
static KHQR made from the merchant fields as they stand, with the name, city and currency under
it. ``ctrl+s`` saves: every answer is checked again, requests included; nothing is written while
one is wrong (the first wrong field gets the focus). Once written, Bakong's verdict on the new
file (``diagnose``) and what to do about it replace the buttons, and Enter finishes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from bakong_console.tui.widgets.khqr_code import KHQRCode
from bakong_console.tui.work import engine_work
from engine.services.setup import SETUP_FIELDS, FieldCheck, SetupField, SetupSession

if TYPE_CHECKING:
    from bakong_console.tui.setup_app import SetupApp

__all__ = ["SetupScreen", "field_id"]

#: The shop's estimate of a normal day's payments (its note depends on the weekdays' hours).
_ESTIMATE = "hours.expected_payments_per_day"
#: Answers that change the preview.
_PREVIEW_FIELDS = {f.name for f in SETUP_FIELDS if f.section == "Merchant"}


def _home_as_tilde(text: str) -> str:
    """Paths under the home directory as ``~/...``: shorter, and the same on every machine."""
    home = str(Path.home())
    return text.replace(home + "/", "~/") if home not in ("", "/") else text


def field_id(name: str) -> str:
    """The input's id for a setup question (``merchant.name`` -> ``setup-merchant-name``)."""
    return "setup-" + name.replace(".", "-").replace("_", "-")


class SetupScreen(Screen[None]):
    """The form, the preview, Save."""

    app: SetupApp  # type: ignore[assignment]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True, id="setup.save"),
        Binding("escape", "quit_setup", "Quit without saving", id="setup.quit"),
    ]

    def __init__(self, session: SetupSession, answers: dict[str, str], *, reason: str | None = None) -> None:
        super().__init__(id="setup")
        self.session = session
        self.answers = dict(answers)
        #: What a secret field keeps when left empty ("keep current").
        self.kept_secrets = {f.name: answers.get(f.name, "") for f in SETUP_FIELDS if f.secret}
        self.reason = reason
        self.saved = False

    # --- layout -----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="setup-title"):
            yield Label("Going live", classes="setup-heading")
            yield Static(f"writes {_home_as_tilde(str(self.session.path))}", id="setup-target")
        if self.reason:
            yield Static(f"Setup first: {self.reason}.", id="setup-reason")
        with Horizontal(id="setup-body"):
            with VerticalScroll(id="setup-form"):
                section = ""
                for field in SETUP_FIELDS:
                    if field.section != section:
                        section = field.section
                        yield Label(section, classes="setup-section")
                    yield from self._row(field)
            with Vertical(id="setup-preview"):
                yield KHQRCode(id="setup-code")
                yield Static(id="setup-preview-name")
                yield Static(id="setup-preview-place")
                yield Static(id="setup-preview-account")
                yield Static(id="setup-preview-token")
        with Horizontal(id="setup-actions"):
            yield Static("ctrl+s checks everything and writes the file; nothing is written until it is all valid.", id="setup-status")
            yield Button("Save", id="setup-save", variant="primary", compact=True)
            yield Button("Quit", id="setup-quit", compact=True)
        yield Footer()

    def _row(self, field: SetupField) -> ComposeResult:
        value = "" if field.secret else _home_as_tilde(self.answers.get(field.name, "")) if field.name == "data_key_file" else self.answers.get(field.name, "")
        placeholder = field.hint
        if field.secret and self.kept_secrets.get(field.name):
            placeholder = "keep current (type a new one to replace it)"
        elif field.choices:
            placeholder = " / ".join(field.choices)
        row_id = field_id(field.name)
        with Horizontal(classes="setup-row", id=f"{row_id}-row"):
            yield Label(field.label, classes="setup-label")
            yield Input(value=value, placeholder=placeholder, password=field.secret, id=row_id, compact=True)
        yield Static("", id=f"{row_id}-message", classes="setup-message", markup=False)

    def on_mount(self) -> None:
        for field in SETUP_FIELDS:
            self._show_check(field.name, self.session.check(field.name, self._answers()), quiet_empty=True)
        self._apply_visibility()
        self._refresh_preview()
        self.query_one(f"#{field_id(SETUP_FIELDS[0].name)}", Input).focus()

    # --- answers ----------------------------------------------------------------------------------

    def _answers(self) -> dict[str, str]:
        answers = dict(self.answers)
        for name, kept in self.kept_secrets.items():
            if not answers.get(name):
                answers[name] = kept
        return answers

    def _field_of(self, input_id: str | None) -> SetupField | None:
        return next((f for f in SETUP_FIELDS if field_id(f.name) == input_id), None)

    @on(Input.Changed)
    def answer_changed(self, event: Input.Changed) -> None:
        field = self._field_of(event.input.id)
        if field is None or self.saved:
            return
        self.answers[field.name] = event.value
        answers = self._answers()
        self._show_check(field.name, self.session.check(field.name, answers))
        if field.name == "merchant.type":
            self._apply_visibility()
        if field.name in _PREVIEW_FIELDS:
            self._refresh_preview()
        if field.name in ("token", "environment"):
            self._show_check("base_url", self.session.check("base_url", answers), quiet_empty=True)
            self._refresh_token_line()
        if field.name.startswith("hours.") and field.name != _ESTIMATE:
            # the estimate's note says whether any weekday has hours to use it on
            self._show_check(_ESTIMATE, self.session.check(_ESTIMATE, answers), quiet_empty=True)

    @on(Input.Submitted)
    def answer_submitted(self, event: Input.Submitted) -> None:
        field = self._field_of(event.input.id)
        if field is None:
            return
        self._ask_about(field.name)
        self.focus_next()

    @on(Input.Blurred)
    def answer_left(self, event: Input.Blurred) -> None:
        field = self._field_of(event.input.id)
        if field is not None and not self.saved:
            self._ask_about(field.name)

    def _ask_about(self, name: str) -> None:
        """The answers only a request can check, once the person moves on."""
        answers = self._answers()
        if name == "merchant.bakong_account_id" and self.session.check(name, answers).ok:
            self.check_account(answers)
        elif name == "database" and self.session.check(name, answers).ok:
            self.check_database(answers)

    @engine_work(exclusive=True, group="setup-account", what="check the account with Bakong")
    async def check_account(self, answers: dict[str, str]) -> None:
        self._message("merchant.bakong_account_id", "asking Bakong…", "-note")
        self._show_check("merchant.bakong_account_id", await self.session.check_account(answers))

    @engine_work(exclusive=True, group="setup-database", what="connect to the database")
    async def check_database(self, answers: dict[str, str]) -> None:
        self._message("database", "connecting…", "-note")
        self._show_check("database", await self.session.check_database(answers))

    # --- messages ---------------------------------------------------------------------------------

    def _message(self, name: str, text: str, kind: str) -> None:
        message = self.query_one(f"#{field_id(name)}-message", Static)
        message.update(_home_as_tilde(text))
        for cls in ("-error", "-note", "-warning"):
            message.remove_class(cls)
        if text:
            message.add_class(kind)
        message.display = bool(text)

    def _show_check(self, name: str, check: FieldCheck, *, quiet_empty: bool = False) -> None:
        if check.error:
            # An untouched empty field is not told off before the person gets to it.
            if quiet_empty and not str(self._answers().get(name, "")).strip():
                self._message(name, "", "-error")
                return
            self._message(name, f"✗ {check.error}", "-error")
        elif check.note:
            self._message(name, f"{'!' if check.warning else '✓'} {check.note}", "-warning" if check.warning else "-note")
        else:
            self._message(name, "", "-note")

    def show_field_error(self, field: str, message: str) -> bool:
        """Put an engine complaint about an answer under that answer (the error handler asks)."""
        if not any(f.name == field for f in SETUP_FIELDS):
            return False
        self._message(field, f"✗ {message.split(': ', 1)[-1] if message.startswith(self._label(field)) else message}", "-error")
        self.query_one(f"#{field_id(field)}", Input).focus()
        return True

    @staticmethod
    def _label(name: str) -> str:
        return next(f.label for f in SETUP_FIELDS if f.name == name)

    def _apply_visibility(self) -> None:
        answers = self._answers()
        applicable = {f.name for f in self.session.applicable(answers)}
        for field in SETUP_FIELDS:
            shown = field.name in applicable
            self.query_one(f"#{field_id(field.name)}-row").display = shown
            if not shown:
                self._message(field.name, "", "-note")

    def _refresh_preview(self) -> None:
        answers = self._answers()
        result = self.session.preview(answers)
        merchant = self.session.merchant_of(answers)
        self.query_one("#setup-code", KHQRCode).qr = result.qr if result else None
        name = merchant.name or "(merchant name)"
        self.query_one("#setup-preview-name", Static).update(Text(name, style="bold"))
        currency = (answers.get("currency") or "KHR").upper()
        self.query_one("#setup-preview-place", Static).update(f"{merchant.city or 'Phnom Penh'} · {currency}")
        self.query_one("#setup-preview-account", Static).update(
            Text(merchant.bakong_account_id or "(Bakong account)", style="dim")
            if result
            else Text("fix the merchant fields to see the KHQR", style="dim")
        )
        self._refresh_token_line()

    def _refresh_token_line(self) -> None:
        check = self.session.check("token", self._answers())
        line = self.query_one("#setup-preview-token", Static)
        line.update(Text(check.note, style="dim") if check.ok and check.note else "")

    # --- saving -----------------------------------------------------------------------------------

    @on(Button.Pressed, "#setup-save")
    def save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#setup-quit")
    def quit_pressed(self) -> None:
        self.action_quit_setup()

    def action_quit_setup(self) -> None:
        self.app.exit(self.app.outcome)

    def action_save(self) -> None:
        if self.saved:
            self.app.exit(self.app.outcome)
            return
        self._status("Checking every answer (the account with Bakong, the database)…")
        self.save()

    def _status(self, text: str | Text) -> None:
        self.query_one("#setup-status", Static).update(text)

    @engine_work(exclusive=True, group="setup-save", what="save the setup")
    async def save(self) -> None:
        answers = self._answers()
        errors, checks = await self.session.validate(answers)
        for name, check in checks.items():
            self._show_check(name, check)
        if errors:
            first = next(iter(errors))
            if first in {f.name for f in SETUP_FIELDS}:
                self.query_one(f"#{field_id(first)}", Input).focus()
            count = len(errors)
            self._status(Text(f"Not written: {count} answer{'s' if count > 1 else ''} to fix ({errors[first]}).", style="bold red"))
            return
        result = await self.session.save(answers)
        self.saved = True
        self.app.outcome = (result, None)
        self._status(f"Wrote {result.config_path} (0600). Asking Bakong for its verdict…")
        diagnosis, advice = await self.session.diagnose(result.settings)
        self.app.outcome = (result, (diagnosis, advice))
        verdict = Text(f"Wrote {result.config_path}.  Bakong: {diagnosis.kind.value}: {diagnosis.sentence}")
        if advice:
            verdict.append(f"\n→ {advice}", style="bold")
        verdict.append("\nEnter (or ctrl+s) finishes.", style="dim")
        self._status(verdict)
        self.query_one("#setup-save", Button).label = "Done"
        self.query_one("#setup-save", Button).focus()

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [("Save", "Check everything and write the config file", self.action_save)]
