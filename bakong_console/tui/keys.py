"""Binding ids and the operator's key remapping (``[console] bindings = { "board.cancel" = "delete" }``).

Every ``Binding`` in the console has an id (Posting's idiom); ``settings.console.bindings`` maps
ids to keys and becomes the App's keymap. An id that no binding has is refused at start-up with
the list of valid ids, so a typo is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from textual.binding import Binding, BindingType
from textual.dom import DOMNode

from engine.errors import InvalidInput

__all__ = ["binding_ids", "checked_keymap"]


def _bindings(node_types: Iterable[type[DOMNode]]) -> Iterable[Binding]:
    for node_type in node_types:
        for cls in node_type.__mro__:
            for item in cls.__dict__.get("BINDINGS", ()):
                binding: BindingType = item
                if isinstance(binding, Binding):
                    yield binding


def binding_ids(node_types: Iterable[type[DOMNode]]) -> set[str]:
    """Every binding id declared by these classes (and their bases)."""
    return {b.id for b in _bindings(node_types) if b.id}


def checked_keymap(bindings: Mapping[str, str], known: set[str]) -> dict[str, str]:
    """The keymap from settings, refusing unknown ids and empty keys."""
    keymap: dict[str, str] = {}
    for binding_id, keys in bindings.items():
        if binding_id not in known:
            raise InvalidInput(
                f"console.bindings: unknown binding id {binding_id!r}; known ids: {', '.join(sorted(known))}",
                field="console.bindings",
            )
        text = str(keys).strip()
        if not text:
            raise InvalidInput(f"console.bindings: no key given for {binding_id!r}", field="console.bindings")
        keymap[binding_id] = text
    return keymap
