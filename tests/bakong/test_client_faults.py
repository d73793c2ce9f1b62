"""Each sandbox fault, and what the client does about it: retries (with budget), refusals, parsing."""

from __future__ import annotations

import random
import socket
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine.bakong import BakongClient, CheckStatus, InMemoryRequestLedger
from engine.errors import (
    BakongServerError,
    BakongUnreachable,
    GeoBlocked,
    MalformedResponse,
    RateLimited,
    StaticQRNotSupported,
    TokenExpired,
    TransactionNotFound,
    UnknownRefusal,
)
from tests.bakong.conftest import MERCHANT, MakeClient, SandboxUnderTest, SteppingClock


async def test_5xx_is_retried_with_full_jitter_and_every_attempt_is_budgeted(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    ledger = InMemoryRequestLedger()
    client = make_client(ledger=ledger, max_retries=3, backoff_base_seconds=0.5, rng=random.Random(3))
    sandbox.set_faults(error_rate=1.0, server_error_status=502)
    with pytest.raises(BakongServerError) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert caught.value.http_status_code == 502
    assert sandbox.requests() == 4
    assert [r.outcome for r in ledger.records] == ["bakong-server-error"] * 4
    assert [r.http_status for r in ledger.records] == [502] * 4
    assert len(clock.slept) == 3
    expected = random.Random(3)
    assert clock.slept == [expected.uniform(0, 0.5 * 2**i) for i in range(3)]
    assert all(0 <= s <= 0.5 * 2**i for i, s in enumerate(clock.slept))


async def test_a_flaky_server_is_ridden_out_by_retries(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client(max_retries=10)
    sandbox.set_faults(error_rate=0.5)
    for _ in range(5):
        with pytest.raises(TransactionNotFound):
            await client.check_transaction_by_md5("a" * 32)
    assert sandbox.requests() > 5


async def test_429_honours_retry_after_then_gives_up(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    client = make_client(max_retries=2)
    sandbox.set_faults(rate_limit_rate=1.0, retry_after_seconds=7)
    with pytest.raises(RateLimited) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert caught.value.retry_after == 7.0 and caught.value.http_status_code == 429
    assert clock.slept == [7.0, 7.0]
    assert sandbox.requests() == 3


async def test_429_with_a_long_retry_after_is_not_waited_for(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    client = make_client(max_retries=2, max_retry_after_seconds=60)
    sandbox.set_faults(rate_limit_rate=1.0, retry_after_seconds=3600)
    with pytest.raises(RateLimited) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert caught.value.retry_after == 3600.0
    assert clock.slept == [] and sandbox.requests() == 1


async def test_latency_is_tolerated(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client()
    sandbox.set_faults(latency_ms=30)
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_md5("a" * 32)
    assert sandbox.requests() == 1


async def test_a_hanging_server_times_out_as_unreachable(
    make_client: MakeClient, sandbox: SandboxUnderTest, wire: str, clock: SteppingClock
) -> None:
    ledger = InMemoryRequestLedger()
    if wire == "loopback":
        client = make_client(ledger=ledger, timeout_seconds=0.2, max_retries=1)
        sandbox.set_faults(timeout_rate=1.0, hang_seconds=1.5)
        with pytest.raises(BakongUnreachable) as caught:
            await client.check_transaction_by_md5("a" * 32)
        assert "in time" in caught.value.message
        assert [r.outcome for r in ledger.records] == ["bakong-unreachable"] * 2
        assert [r.http_status for r in ledger.records] == [None, None]
    else:
        # in-process there is no socket to time out: the hang ends in the gateway's 504
        client = make_client(ledger=ledger, max_retries=1)
        sandbox.set_faults(timeout_rate=1.0, hang_seconds=0.05)
        with pytest.raises(BakongServerError) as caught:
            await client.check_transaction_by_md5("a" * 32)
        assert caught.value.http_status_code == 504
    assert len(clock.slept) == 1 and sandbox.requests() == 2


async def test_connection_refused_is_unreachable_and_retried(clock: SteppingClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ledger = InMemoryRequestLedger()
    async with BakongClient(base_url=f"http://127.0.0.1:{port}", clock=clock, ledger=ledger, token="t", max_retries=2) as client:
        with pytest.raises(BakongUnreachable) as caught:
            await client.check_transaction_by_md5("a" * 32)
    assert "cannot reach Bakong" in caught.value.message
    assert len(ledger.records) == 3 and len(clock.slept) == 2
    assert caught.value.__cause__ is None and caught.value.__suppress_context__ in (True, False)


async def test_an_html_200_is_malformed_and_not_retried(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client()
    sandbox.set_faults(html_rate=1.0)
    with pytest.raises(MalformedResponse) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert "HTML" in caught.value.message
    assert sandbox.requests() == 1


@pytest.mark.parametrize("kind", ["truncated", "empty", "not-envelope"])
async def test_malformed_bodies_are_refusals_never_payment_states(
    make_client: MakeClient, sandbox: SandboxUnderTest, kind: str
) -> None:
    client = make_client()
    sandbox.set_faults(malformed_rate=1.0, malformed_kind=kind)
    with pytest.raises(MalformedResponse):
        await client.check_transaction_by_md5("a" * 32)
    with pytest.raises(MalformedResponse):
        await client.check_payments(["a" * 32])


async def test_expired_token_fault_renews_once_retries_once_then_fails(
    make_client: MakeClient, sandbox: SandboxUnderTest
) -> None:
    client = make_client()
    sandbox.set_faults(token_expired=True)
    with pytest.raises(TokenExpired) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert caught.value.error_code == 6
    assert sandbox.requests("check_transaction_by_md5") == 2
    assert sandbox.requests("renew_token") == 1


async def test_geo_blocking_is_reported_as_such(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client()
    sandbox.set_faults(geo_blocked=True)
    with pytest.raises(GeoBlocked) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert "Cambodia" in caught.value.message and caught.value.http_status_code == 403
    # the poller's call: the bulk 403 looks like a blocked bulk path, the single check then says why
    with pytest.raises(GeoBlocked):
        await client.check_payments(["a" * 32, "b" * 32])
    assert sandbox.requests("check_transaction_by_md5_list") == 1
    assert sandbox.requests("check_transaction_by_md5") == 2


async def test_static_qr_fault_answers_static_for_every_md5(
    make_client: MakeClient, sandbox: SandboxUnderTest
) -> None:
    client = make_client()
    qr = sandbox.qr(Decimal("1"))
    await sandbox.sandbox.pay(qr=qr.qr)
    sandbox.set_faults(static_qr=True)
    with pytest.raises(StaticQRNotSupported):
        await client.check_transaction_by_md5(qr.md5)
    outcomes = await client.check_payments([qr.md5, "b" * 32])
    assert {o.status for o in outcomes.values()} == {CheckStatus.STATIC_QR}


@pytest.mark.parametrize("layout", ["data", "transaction", "inline"])
async def test_string_amounts_float_timestamps_and_item_layouts_parse_the_same(
    make_client: MakeClient, sandbox: SandboxUnderTest, layout: str
) -> None:
    client = make_client()
    khr = await sandbox.sandbox.pay(md5="a" * 32, amount="40000", currency="KHR", to_account=MERCHANT)
    usd = await sandbox.sandbox.pay(md5="b" * 32, amount="12.05", currency="USD", to_account=MERCHANT)
    plain = await client.check_payments(["a" * 32, "b" * 32])
    sandbox.set_faults(amounts_as_strings=True, float_timestamps=True, list_item_layout=layout)
    odd = await client.check_payments(["a" * 32, "b" * 32])
    single = await client.check_transaction_by_md5("b" * 32)
    assert sandbox.sandbox.faults.amounts_as_strings
    for key, transfer in (("a" * 32, khr), ("b" * 32, usd)):
        a, b = plain[key].transaction, odd[key].transaction
        assert a is not None and b is not None
        assert a == b
        assert b.amount == transfer.amount and b.hash == transfer.hash
        assert b.created_at == datetime.fromtimestamp(transfer.created_ms / 1000, UTC)
    assert single.amount == Decimal("12.05") and single.amount_minor == 1205
    assert isinstance(odd["b" * 32].raw, dict)


async def test_service_failed_items_are_refused_per_item(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client()
    sandbox.set_faults(item_service_failed_rate=1.0)
    outcomes = await client.check_payments(["a" * 32, "b" * 32])
    for outcome in outcomes.values():
        assert outcome.status is CheckStatus.REFUSED
        assert isinstance(outcome.error, UnknownRefusal) and "SERVICE_FAILED" in outcome.error.message
