"""The headless core of bakong-console: KHQR, Bakong client and sandbox, storage, services, workers.

Nothing in ``engine`` imports Textual, Rich, typer or ``bakong_console``; a test enforces it.
"""

__version__ = "0.1.0"
