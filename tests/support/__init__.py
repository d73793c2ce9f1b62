"""What test packages share and import by name: settings and config files on a test database,
an engine on the manual clock and the helpers that move it, a loopback webhook receiver, free
ports, the plan catalogue. Shared fixtures live in tests/conftest.py; these are plain functions
and classes, so no test module imports another package's conftest."""
