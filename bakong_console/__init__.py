"""The faces of bakong-console: the typer CLI, the Textual console and the HTTP API."""

from engine import __version__

__all__ = ["__version__"]
