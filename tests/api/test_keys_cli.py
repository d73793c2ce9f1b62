"""`bakong-console keys create|list|revoke` on both databases: the key is printed once, on stdout
alone; lists show prefixes only; revoked keys no longer authenticate."""

from __future__ import annotations

import asyncio
import re

import pytest
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.clock import SystemClock
from engine.config import load_settings
from engine.db.bootstrap import open_storage
from engine.errors import Unauthorized
from engine.services.api_keys import ApiKeyService

runner = CliRunner()


def _authenticate(env: dict[str, str], plaintext: str) -> str:
    async def run() -> str:
        settings = load_settings(environ=env)
        storage = await open_storage(settings, clock=SystemClock())
        try:
            return (await ApiKeyService(storage, clock=SystemClock()).authenticate(plaintext)).name
        finally:
            await storage.db.dispose()

    return asyncio.run(run())


def test_create_list_revoke(cli_env: dict[str, str]) -> None:
    env = cli_env  # the database is upgraded

    created = runner.invoke(app, ["keys", "create", "shop-backend", "--scopes", "payments:read,payments:write"], env=env)
    assert created.exit_code == 0, created.output
    plaintext = created.stdout.strip()
    assert re.fullmatch(r"bk_[0-9a-z]{8}_[A-Za-z0-9_-]{43}", plaintext)
    assert "scopes payments:write,payments:read" in created.stderr and "not shown again" in created.stderr
    assert _authenticate(env, plaintext) == "shop-backend"

    again = runner.invoke(app, ["keys", "create", "shop-backend"], env=env)
    assert again.exit_code == 1 and again.stderr.strip().startswith("error: an active API key named 'shop-backend'")
    bad = runner.invoke(app, ["keys", "create", "other", "--scopes", "payments:delete"], env=env)
    assert bad.exit_code == 1 and len(bad.stderr.strip().splitlines()) == 1 and "unknown scope" in bad.stderr

    listed = runner.invoke(app, ["keys", "list"], env=env)
    assert listed.exit_code == 0
    assert plaintext not in listed.stdout and plaintext.split("_")[1] in listed.stdout
    key_id = listed.stdout.splitlines()[1].split()[0]
    assert key_id.startswith("key_")

    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--reason", "rotated"], env=env)
    assert revoked.exit_code == 0 and revoked.stdout.strip() == f"revoked API key {key_id} (shop-backend)"
    with pytest.raises(Unauthorized):
        _authenticate(env, plaintext)
    twice = runner.invoke(app, ["keys", "revoke", key_id], env=env)
    assert twice.exit_code == 1 and "already revoked" in twice.stderr
    missing = runner.invoke(app, ["keys", "revoke", "key_nope"], env=env)
    assert missing.exit_code == 1 and "no API key key_nope" in missing.stderr

    assert "no API keys" in runner.invoke(app, ["keys", "list"], env=env).stdout
    assert "revoked" in runner.invoke(app, ["keys", "list", "--all"], env=env).stdout
