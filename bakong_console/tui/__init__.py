"""The Textual operator console: a cashier's new-payment screen and an operator's live boards.

The console is handed an open :class:`engine.runtime.Engine` (``create_app(engine)``) and never
touches the database or Bakong itself: engine calls run in async workers, and one bridge turns
the engine's committed events into Textual messages.

Layout (Frogmouth's taxonomy): ``app.py`` (the App and its factory), ``bridge.py`` (engine events
→ messages), ``messages.py``, ``work.py`` (the worker decorator and the one error path),
``keys.py`` (binding ids and remapping), ``formatting.py``, ``screens/``, ``widgets/``,
``dialogs/`` and ``console.tcss``.
"""

from bakong_console.tui.app import BakongConsoleApp, create_app

__all__ = ["BakongConsoleApp", "create_app"]
