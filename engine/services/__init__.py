"""Use cases: the operations the console, the CLI and the HTTP API call on the engine."""
