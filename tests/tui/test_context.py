"""The console's imports run one way: the App imports its screens, and screens, dialogs and
widgets see the App only as a ``ConsoleContext``, which the App really offers."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

from textual.screen import Screen
from textual.signal import Signal

from bakong_console.tui import context as context_module
from bakong_console.tui.context import ConsoleContext
from bakong_console.tui.state import Alert, ConsoleState, EngineStatus
from engine.records import Actor, Event
from engine.runtime import Engine
from tests.tui.conftest import console_app

TUI = Path(context_module.__file__).resolve().parent
APP_MODULE = "bakong_console.tui.app"


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports anywhere (``if TYPE_CHECKING`` blocks and functions too),
    with ``from package import name`` counted as importing ``package.name`` as well."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_screen_dialog_or_widget_imports_the_app() -> None:
    offenders = {}
    for folder in ("screens", "dialogs", "widgets"):
        for path in sorted((TUI / folder).rglob("*.py")):
            found = {
                name
                for name in _imported_modules(path)
                if name == APP_MODULE or name.startswith(APP_MODULE + ".") or name in ("bakong_console.tui.BakongConsoleApp", "bakong_console.tui.create_app")
            }
            if found:
                offenders[str(path.relative_to(TUI))] = sorted(found)
    assert offenders == {}
    # The App does import them: the one direction left.
    assert "bakong_console.tui.screens.board" in _imported_modules(TUI / "app.py")


def _members() -> dict[str, object]:
    return {name: value for name, value in vars(ConsoleContext).items() if not name.startswith("_")}


def test_the_context_is_narrow() -> None:
    # What screens, dialogs and widgets use of the App; a new need is added here on purpose.
    assert sorted(_members()) == [
        "actor", "alerts_signal", "audit_signal", "bell", "bell_on_paid", "clear_alert", "engine", "open_payment",
        "payments_signal", "push_screen", "sandbox", "screen", "show_error", "state", "status_seconds",
        "status_signal", "subscriptions_signal", "tick_seconds", "watch_seconds", "webhooks_signal",
    ]  # fmt: skip


async def test_the_app_offers_everything_the_context_promises(snapshot_engine: Engine) -> None:
    names = {"Engine": Engine, "Actor": Actor, "Event": Event, "ConsoleState": ConsoleState,
             "EngineStatus": EngineStatus, "Alert": Alert, "Signal": Signal, "Screen": Screen}  # fmt: skip
    app = console_app(snapshot_engine)
    async with app.run_test(size=(100, 32)):
        for name, member in _members().items():
            assert hasattr(app, name), name
            offered = getattr(app, name)
            if isinstance(member, property):
                hint = typing.get_type_hints(member.fget, localns=names)["return"]
                expected = typing.get_origin(hint) or hint
                assert isinstance(offered, expected), (name, type(offered), hint)
            else:
                assert callable(offered), name
                promised = inspect.signature(member).parameters
                given = inspect.signature(offered).parameters
                for pname, param in promised.items():
                    if pname == "self":
                        continue
                    assert pname in given and given[pname].kind == param.kind, (name, pname)
