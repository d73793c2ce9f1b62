"""The Textual operator console: a cashier's new-payment screen and an operator's live boards.

The console is handed an open :class:`engine.runtime.Engine` (``create_app(engine)``) and never
touches the database or Bakong itself: engine calls run in async workers, and one bridge turns
the engine's committed events into Textual messages.

Layout (Frogmouth's taxonomy): ``app.py`` (the App and its factory), ``context.py`` (what screens,
dialogs and widgets may ask of the App), ``bridge.py`` (engine events → messages),
``messages.py``, ``work.py`` (the worker decorator and the one error path), ``keys.py`` (binding
ids and remapping), ``formatting.py``, ``board_rows.py`` (the board's rows and paging),
``screens/``, ``widgets/``, ``dialogs/`` and ``console.tcss``.

Imports run one way: ``app.py`` imports the screens, nothing under ``screens/``, ``dialogs/`` or
``widgets/`` imports ``app.py``. ``create_app`` and ``BakongConsoleApp`` load on first use here,
so importing this package (as importing any of its modules does) does not load the App.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bakong_console.tui.app import BakongConsoleApp, create_app

__all__ = ["BakongConsoleApp", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bakong_console.tui import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
