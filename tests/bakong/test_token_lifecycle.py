"""The token's life: read locally, renewed on schedule or once on errorCode 6, stored, never shown."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from engine.bakong import BakongClient, InMemoryRequestLedger, InMemoryTokenStore
from engine.bakong.sandbox import issue_token
from engine.errors import BakongError, ConfigError, TokenExpired, TransactionNotFound
from tests.bakong.conftest import MakeClient, SandboxUnderTest, SteppingClock


async def test_renewal_is_due_only_near_expiry_and_spends_nothing_before(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    store = InMemoryTokenStore()
    client = make_client(token_store=store, renew_days_before_expiry=14)
    info = client.token_info()
    assert info is not None and info.days_left == 90
    assert await client.renew_token_if_due() is None
    assert sandbox.requests() == 0

    clock.advance(timedelta(days=77).total_seconds())  # 13 days left
    old = sandbox.token
    renewed = await client.renew_token_if_due()
    assert renewed is not None and renewed.days_left == 90
    assert sandbox.token != old and await store.load() == sandbox.token
    assert sandbox.requests("renew_token") == 1
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_md5("a" * 32)  # the new token is accepted


async def test_no_scheduled_renewal_without_email_or_when_disabled(make_client: MakeClient, clock: SteppingClock) -> None:
    clock.advance(timedelta(days=89).total_seconds())
    assert await make_client(email=None).renew_token_if_due() is None
    assert await make_client(renew_days_before_expiry=0).renew_token_if_due() is None
    with pytest.raises(ConfigError):
        await make_client(email=None).renew_token()


async def test_error_code_6_renews_once_and_retries_once(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    store = InMemoryTokenStore()
    ledger = InMemoryRequestLedger()
    client = make_client(token_store=store, ledger=ledger)
    old_fingerprint = client.fingerprint
    await sandbox.sandbox.renew_token()  # someone renewed elsewhere: our token is now refused
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_md5("a" * 32)
    assert client.fingerprint != old_fingerprint
    assert await store.load() == sandbox.token
    assert sandbox.requests("check_transaction_by_md5") == 2
    assert sandbox.requests("renew_token") == 1
    assert [r.outcome for r in ledger.records] == ["bakong-token-expired", "ok", "transaction-not-found"]


async def test_error_code_6_with_a_failing_renewal_is_token_expired(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client(email="not-registered@example.com")
    await sandbox.sandbox.renew_token()
    with pytest.raises(TokenExpired) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert "renewing it failed" in caught.value.message and "not registered" in caught.value.message
    assert sandbox.requests("check_transaction_by_md5") == 1
    assert sandbox.requests("renew_token") == 1


async def test_concurrent_rejections_share_one_renewal(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client()
    await sandbox.sandbox.renew_token()
    results = await asyncio.gather(
        *(client.check_transaction_by_md5(f"{i:032x}") for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, TransactionNotFound) for r in results)
    assert sandbox.requests("renew_token") == 1


async def test_a_locally_expired_token_is_renewed_before_anything_is_sent(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    client = make_client()
    clock.advance(timedelta(days=91).total_seconds())
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_md5("a" * 32)
    assert sandbox.requests("renew_token") == 1
    assert sandbox.requests("check_transaction_by_md5") == 1  # the expired token was never sent


async def test_a_locally_expired_token_without_email_fails_without_a_request(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    client = make_client(email=None)
    clock.advance(timedelta(days=91).total_seconds())
    with pytest.raises(TokenExpired) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert "expired on 2026-04-15" in caught.value.message
    with pytest.raises(TokenExpired):
        await make_client(token=None, email=None).check_payments(["a" * 32])
    assert sandbox.requests() == 0


async def test_load_token_adopts_a_stored_token_that_outlives_the_configured_one(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    configured = sandbox.token
    clock.advance(86400)
    newer = await sandbox.sandbox.renew_token()
    client = make_client(token=configured, token_store=InMemoryTokenStore(newer))
    info = await client.load_token()
    assert info is not None and info.fingerprint == BakongClient(
        base_url="http://x", clock=clock, ledger=InMemoryRequestLedger(), token=newer
    ).fingerprint
    # an older stored token does not replace a newer configured one
    older = issue_token(b"x" * 32, now=clock.now() - timedelta(days=30), rng=__import__("random").Random(1))
    keep = make_client(token=newer, token_store=InMemoryTokenStore(older))
    assert (await keep.load_token()).fingerprint == info.fingerprint
    # with nothing configured, the stored token is used
    bare = make_client(token=None, token_store=InMemoryTokenStore(newer))
    assert (await bare.load_token()).fingerprint == info.fingerprint
    with pytest.raises(TransactionNotFound):
        await bare.check_transaction_by_md5("a" * 32)


async def test_set_token_imports_by_hand(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    store = InMemoryTokenStore()
    client = make_client(token="stale", token_store=store, email=None)
    info = await client.set_token(sandbox.token)
    assert await store.load() == sandbox.token and info.days_left == 90
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_md5("a" * 32)
    assert sandbox.requests() == 1


async def test_the_token_never_appears_in_reprs_errors_or_logs(
    make_client: MakeClient, sandbox: SandboxUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = InMemoryTokenStore()
    client = make_client(token_store=store, max_retries=1)
    tokens = {sandbox.token}
    errors: list[BakongError] = []
    await sandbox.sandbox.renew_token()  # forces errorCode 6, a renewal and a retry
    tokens.add(sandbox.token)
    with pytest.raises(TransactionNotFound) as not_found:
        await client.check_transaction_by_md5("a" * 32)
    errors.append(not_found.value)
    tokens.add(sandbox.token)
    sandbox.set_faults(error_rate=1.0)
    with pytest.raises(BakongError) as server_error:
        await client.check_payments(["a" * 32])
    errors.append(server_error.value)
    sandbox.set_faults(error_rate=0.0, token_expired=True)
    with pytest.raises(TokenExpired) as expired:
        await client.check_transaction_by_md5("a" * 32)
    errors.append(expired.value)
    tokens.add(sandbox.token)
    tokens.add(await store.load() or "")

    shown = [repr(client), str(client), repr(client.token_info()), repr(store), repr(sandbox.sandbox)]
    shown += [str(e) for e in errors] + [repr(e) for e in errors]
    shown += [r.getMessage() for r in caplog.records]
    assert any("renewed" in line for line in shown)  # the logs did say what happened
    for token in tokens:
        assert token
        for line in shown:
            assert token not in line
            assert token.split(".")[1] not in line
