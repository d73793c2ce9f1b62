"""The typer command line: one sub-app per command group, composed in ``main``."""
