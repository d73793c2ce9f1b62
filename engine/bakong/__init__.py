"""The Bakong Open API: a budgeted, typed client and a faithful sandbox of the API.

The client (``BakongClient``) reaches production, the NBC test environment, an operator's relay or
the sandbox; every request is reserved in a ``RequestLedger`` first, and every failure is one of
``engine.errors``' Bakong exceptions. The sandbox (``engine.bakong.sandbox``) serves the same paths
and envelopes for the console, the daemon, tests and users' own backends.
"""

from engine.bakong.budget import BudgetUsage, InMemoryRequestLedger, RequestLedger, bakong_day
from engine.bakong.client import BakongClient
from engine.bakong.environments import BASE_URLS, NBC_TEST_URL, PRODUCTION_URL, SANDBOX_URL, Endpoint, base_url_for
from engine.bakong.lookups import BULK_LIMIT
from engine.bakong.models import (
    AccountInfo,
    CheckOutcome,
    CheckStatus,
    DeepLink,
    Diagnosis,
    DiagnosisKind,
    Transaction,
)
from engine.bakong.token import BakongToken, InMemoryTokenStore, TokenInfo, TokenStore, token_fingerprint

__all__ = [
    "BASE_URLS",
    "BULK_LIMIT",
    "NBC_TEST_URL",
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "AccountInfo",
    "BakongClient",
    "BakongToken",
    "BudgetUsage",
    "CheckOutcome",
    "CheckStatus",
    "DeepLink",
    "Diagnosis",
    "DiagnosisKind",
    "Endpoint",
    "InMemoryRequestLedger",
    "InMemoryTokenStore",
    "RequestLedger",
    "TokenInfo",
    "TokenStore",
    "Transaction",
    "bakong_day",
    "base_url_for",
    "token_fingerprint",
]
