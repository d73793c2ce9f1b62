"""`python -m bakong_console` runs the CLI."""

from bakong_console.cli.main import run

run()
