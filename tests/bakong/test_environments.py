"""Where the client points: environments, an operator's base URL, settings, and the engine boundary."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.bakong import BakongClient, Endpoint, InMemoryRequestLedger, base_url_for
from engine.bakong.environments import NBC_TEST_URL, PRODUCTION_URL, SANDBOX_URL
from engine.clock import ManualClock
from engine.config import BakongSettings
from engine.errors import ConfigError


def test_base_urls_per_environment_and_override() -> None:
    assert base_url_for(BakongSettings(environment="production", token="t")) == "https://api-bakong.nbc.gov.kh" == PRODUCTION_URL
    assert base_url_for(BakongSettings(environment="nbc-test", token="t")) == "https://sit-api-bakong.nbc.gov.kh" == NBC_TEST_URL
    assert base_url_for(BakongSettings(environment="sandbox")) == SANDBOX_URL
    relay = BakongSettings(environment="custom", base_url="https://relay.example.com/bakong/")
    assert base_url_for(relay) == "https://relay.example.com/bakong"
    with pytest.raises(ConfigError):
        base_url_for(BakongSettings(environment="custom"))


def test_every_endpoint_is_a_v1_post_path() -> None:
    assert {e.label for e in Endpoint} == {
        "check_transaction_by_md5", "check_transaction_by_md5_list", "check_transaction_by_hash",
        "check_transaction_by_hash_list", "check_transaction_by_short_hash", "check_transaction_by_instruction_ref",
        "check_transaction_by_external_ref", "generate_deeplink_by_qr", "check_bakong_account", "renew_token",
    }
    assert all(e.value == f"/v1/{e.label}" for e in Endpoint)


async def test_from_settings_carries_every_bakong_setting() -> None:
    settings = BakongSettings(
        environment="nbc-test", token="SECRET-TOKEN-VALUE", email="me@example.com", daily_budget=42, timeout_seconds=9,
        connect_timeout_seconds=2, max_retries=4, renew_days_before_expiry=7, bulk_retry_after_seconds=120,
    )
    async with BakongClient.from_settings(settings, clock=ManualClock(), ledger=InMemoryRequestLedger()) as client:
        assert client.base_url == NBC_TEST_URL and client.environment == "nbc-test"
        assert (client.daily_budget, client.max_retries, client.renew_days_before_expiry) == (42, 4, 7)
        assert client.bulk_retry_after_seconds == 120 and client.email == "me@example.com" and client.has_token
        assert client._http.timeout.read == 9 and client._http.timeout.connect == 2
        assert "SECRET-TOKEN-VALUE" not in repr(client)


def test_the_client_loads_without_the_sandbox_or_any_face() -> None:
    # (httpx itself imports rich and click for its own CLI when they are installed, so rich is not checked)
    code = (
        "import sys, engine.bakong, engine.bakong.client;"
        "bad = [m for m in ('textual', 'typer', 'starlette', 'uvicorn', 'bakong_console', 'engine.bakong.sandbox')"
        " if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
