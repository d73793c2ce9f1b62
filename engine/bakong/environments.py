"""Where the Bakong Open API lives: the hosts of each environment and the paths of its endpoints.

The production and NBC test (SIT) hosts are the ``.gov.kh`` ones; an operator may point
``bakong.base_url`` anywhere else (the older ``.org.kh`` domain, their own relay, a standalone
sandbox). The built-in sandbox is reached in-process, so its base URL is only a label.
"""

from __future__ import annotations

from enum import StrEnum

from engine.config import BakongSettings
from engine.errors import ConfigError

__all__ = [
    "BASE_URLS",
    "NBC_TEST_URL",
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "Endpoint",
    "base_url_for",
]

PRODUCTION_URL = "https://api-bakong.nbc.gov.kh"
NBC_TEST_URL = "https://sit-api-bakong.nbc.gov.kh"
#: The label of the built-in sandbox when it is served in-process (httpx.ASGITransport).
SANDBOX_URL = "http://bakong-sandbox.internal"

BASE_URLS: dict[str, str] = {
    "production": PRODUCTION_URL,
    "nbc-test": NBC_TEST_URL,
    "sandbox": SANDBOX_URL,
}


class Endpoint(StrEnum):
    """Every Open API endpoint we call; the value is its path (all are POST with a JSON body)."""

    MD5 = "/v1/check_transaction_by_md5"
    MD5_LIST = "/v1/check_transaction_by_md5_list"
    HASH = "/v1/check_transaction_by_hash"
    HASH_LIST = "/v1/check_transaction_by_hash_list"
    SHORT_HASH = "/v1/check_transaction_by_short_hash"
    INSTRUCTION_REF = "/v1/check_transaction_by_instruction_ref"
    EXTERNAL_REF = "/v1/check_transaction_by_external_ref"
    DEEPLINK = "/v1/generate_deeplink_by_qr"
    ACCOUNT = "/v1/check_bakong_account"
    RENEW_TOKEN = "/v1/renew_token"

    @property
    def label(self) -> str:
        """The endpoint's name without ``/v1/`` (what the request ledger and stats record)."""
        return self.value.rsplit("/", 1)[1]


def base_url_for(settings: BakongSettings) -> str:
    """The base URL to use: ``base_url`` when set, else the environment's own host."""
    if settings.base_url:
        return settings.base_url.rstrip("/")
    try:
        return BASE_URLS[settings.environment]
    except KeyError:
        raise ConfigError(f"bakong.environment {settings.environment!r} has no base URL; set bakong.base_url") from None
