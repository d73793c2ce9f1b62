"""Terminals: the counters that make payments.

Every console is a terminal (``[console] terminal``, by default the machine's host name); each
payment it makes records the terminal's name, so reports can total per counter and a customer
display can follow one counter. Payments made through the API or the CLI have no terminal.
"""

from __future__ import annotations

import re
import socket

__all__ = ["TERMINAL_RULE", "default_terminal_name", "is_terminal_name", "terminal_name"]

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TERMINAL_RULE = "must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_terminal_name(name: str) -> bool:
    """Whether ``name`` can name a terminal (it is also a path segment of the display's address)."""
    return _NAME.fullmatch(name) is not None


def default_terminal_name() -> str:
    """The machine's short host name made into a terminal name ("terminal" when it has none)."""
    host = socket.gethostname().split(".")[0].lower()
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", host).strip("-._")[:64]
    return cleaned if cleaned and is_terminal_name(cleaned) else "terminal"


def terminal_name(configured: str) -> str:
    """The terminal a console is: the configured name, else the host name's."""
    return configured.strip() or default_terminal_name()
