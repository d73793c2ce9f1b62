"""``Form``: the container every console form is built in, and the console's one rule about typed
keys: while the focus is anywhere inside a form (an input, a button, a select...), a printable key
belongs to the form and never fires a screen or app shortcut. Tab onto the KHR/USD button and
type "table-7": nothing quits, nothing opens Audit.

Textual filters the bindings of every node above the focused one through each node below it
(``check_consume_key``, what ``Input`` uses for its own typing); a ``Form`` sits between its
fields and the screen, so it takes the printable keys out of the screen's and the app's bindings
for all its fields at once (and out of the footer, which shows only what a key would do). Keys
that are not characters (Enter, Tab, Escape, ctrl+...) pass as before.
"""

from __future__ import annotations

from textual.containers import Vertical

__all__ = ["Form"]


class Form(Vertical):
    """A vertical group of fields whose printable keys are never shortcuts."""

    DEFAULT_CSS = """
    Form {
        height: auto;
    }
    """

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return character is not None and character.isprintable()
