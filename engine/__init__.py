"""The headless core of bakong-console: KHQR, Bakong client and sandbox, storage, services, workers.

Nothing in ``engine`` imports Textual, Rich, typer or ``bakong_console``: the import-linter contracts
in pyproject.toml enforce it, and tests/test_boundaries.py proves the engine loads without them.
"""

__version__ = "0.1.0"
