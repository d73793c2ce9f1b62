"""The servers some tests need (PostgreSQL, Redis): when one is down those tests skip locally,
but fail when BAKONG_CONSOLE_REQUIRE_POSTGRES=1 (set by .ci/run, which starts both), so CI can
never pass without running them."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_SERVICES = os.environ.get("BAKONG_CONSOLE_REQUIRE_POSTGRES") == "1"


def unavailable(message: str, tests: str) -> NoReturn:
    """A server the test needs is down: skip locally, fail in CI."""
    if REQUIRE_SERVICES:
        pytest.fail(message + f"; CI requires the {tests} tests to run", pytrace=False)
    pytest.skip(message)
