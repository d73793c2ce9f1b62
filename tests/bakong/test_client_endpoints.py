"""Every endpoint of the client against the sandbox, in-process and over loopback HTTP, and every
Bakong error code the sandbox can give, as the client reports it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from engine.bakong import BakongClient, CheckStatus, InMemoryRequestLedger
from engine.errors import (
    AccountNotFound,
    BadRequest,
    BakongServerError,
    InvalidInput,
    QuotaExhausted,
    StaticQRNotSupported,
    TokenExpired,
    TransactionFailed,
    TransactionNotFound,
    UnknownRefusal,
)
from tests.bakong.conftest import MERCHANT, MakeClient, SandboxUnderTest


async def test_md5_lookup_finds_a_paid_qr_with_exact_fields(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    qr = sandbox.qr(Decimal("12.50"))
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_md5(qr.md5)
    transfer = await sandbox.sandbox.pay(qr=qr.qr)
    tx = await client.check_transaction_by_md5(qr.md5)
    assert tx.hash == transfer.hash and len(tx.hash) == 64
    assert tx.amount == Decimal("12.50") and tx.amount_minor == 1250 and tx.currency == "USD"
    assert tx.to_account_id == MERCHANT
    assert tx.from_account_id == transfer.from_account and tx.from_account_id.endswith(("@abaa", "@acld", "@wing", "@cadi"))
    assert tx.created_at == sandbox.clock.now()
    assert tx.acknowledged_at is not None and tx.acknowledged_at > tx.created_at
    assert tx.external_ref == transfer.external_ref
    # md5 lookups carry no tracking details, as on Bakong
    assert tx.tracking_status is None and tx.instruction_ref is None
    assert tx.raw["hash"] == transfer.hash


async def test_full_hash_short_hash_and_reference_lookups(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    transfer = await sandbox.sandbox.pay(md5="a" * 32, amount="4000", currency="KHR", to_account=MERCHANT)
    by_hash = await client.check_transaction_by_hash(transfer.hash)
    assert by_hash.amount == Decimal(4000) and by_hash.currency == "KHR"
    assert by_hash.tracking_status == "SUCCESS" and by_hash.instruction_ref == transfer.instruction_ref
    by_short = await client.check_transaction_by_short_hash(transfer.short_hash, Decimal("4000"), "KHR")
    assert by_short.hash == transfer.hash
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_short_hash(transfer.short_hash, Decimal("4001"), "KHR")
    assert (await client.check_transaction_by_external_ref(transfer.external_ref)).hash == transfer.hash
    assert (await client.check_transaction_by_instruction_ref(transfer.instruction_ref)).hash == transfer.hash
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_hash("f" * 64)
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_external_ref("100FT99999999999")


async def test_short_hash_sends_the_amount_as_an_exact_number(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    transfer = await sandbox.sandbox.pay(md5="b" * 32, amount="0.10", currency="USD", to_account=MERCHANT)
    tx = await client.check_transaction_by_short_hash(transfer.short_hash.upper(), "0.1", "usd")
    assert tx.amount == Decimal("0.1") and tx.amount_minor == 10


async def test_hash_list_reconciles_found_payments(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    paid = [await sandbox.sandbox.pay(md5=f"{i:032x}", amount="1", currency="USD", to_account=MERCHANT) for i in range(60)]
    unknown = "e" * 64
    outcomes = await client.check_transactions_by_hash_list([t.hash for t in paid] + [unknown])
    assert sandbox.requests("check_transaction_by_hash_list") == 2  # 61 hashes: 50 + 11
    assert all(outcomes[t.hash].status is CheckStatus.PAID for t in paid)
    assert outcomes[unknown].status is CheckStatus.NOT_FOUND
    assert outcomes[paid[0].hash].transaction.tracking_status == "SUCCESS"


async def test_md5_list_splits_long_lists_by_50(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    md5s = [f"{i:032x}" for i in range(101)]
    await sandbox.sandbox.pay(md5=md5s[100], amount="2.5", currency="USD", to_account=MERCHANT)
    outcomes = await client.check_transactions_by_md5_list(md5s)
    assert sandbox.requests("check_transaction_by_md5_list") == 3
    assert sandbox.sandbox.stats["md5_checks"] == 101
    assert list(outcomes) == md5s
    assert outcomes[md5s[100]].status is CheckStatus.PAID
    assert sum(o.status is CheckStatus.NOT_FOUND for o in outcomes.values()) == 100
    assert await client.check_transactions_by_md5_list([]) == {}


async def test_deeplink_for_a_dynamic_qr_and_refusals(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    qr = sandbox.qr(Decimal("3"))
    link = await client.generate_deeplink(qr.qr, app_name="Shop", app_icon_url="https://shop.test/i.png", callback_url="https://shop.test/paid")
    assert link.short_link.startswith("https://bakongsit.page.link/")
    assert (await client.generate_deeplink(qr.qr)).short_link == link.short_link
    static = sandbox.qr(None, "KHR")
    with pytest.raises(StaticQRNotSupported) as caught:
        await client.generate_deeplink(static.qr)
    assert caught.value.error_code == 2
    with pytest.raises(InvalidInput):
        await client.generate_deeplink(qr.qr, app_name="Shop")  # source info is all or nothing
    with pytest.raises(BadRequest) as bad:
        await client.generate_deeplink("not a khqr")
    assert bad.value.error_code == 5


async def test_account_check_exists_frozen_missing_and_malformed(client: BakongClient) -> None:
    info = await client.check_bakong_account("sandbox_shop@devb")
    assert info.account_id == "sandbox_shop@devb" and info.message == "Account ID exists"
    assert info.account_status == "ACTIVATED" and info.kyc_status == "FULL_KYC" and info.can_receive is True
    assert info.can_take_payments
    frozen = await client.check_bakong_account("frozen_shop@devb")
    assert frozen.frozen is True and not frozen.can_take_payments
    with pytest.raises(AccountNotFound) as missing:
        await client.check_bakong_account("unknown_shop@devb")
    assert missing.value.error_code == 11
    with pytest.raises(AccountNotFound) as malformed:
        await client.check_bakong_account("no spaces allowed")
    assert malformed.value.error_code == 12


async def test_account_check_works_without_a_token(make_client: MakeClient) -> None:
    client = make_client(token=None, email=None)
    assert (await client.check_bakong_account("someone@devb")).can_take_payments


async def test_renew_token_returns_a_fresh_token_and_the_old_one_stops_working(
    make_client: MakeClient, sandbox: SandboxUnderTest
) -> None:
    client = make_client()
    old = sandbox.token
    info = await client.renew_token()
    assert sandbox.token != old and info.fingerprint == client.fingerprint
    assert info.days_left == 90
    assert await client._store.load() == sandbox.token  # saved through the TokenStore
    stale = make_client(token=old, email=None)
    with pytest.raises(TokenExpired):
        await stale.check_transaction_by_md5("a" * 32)
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_md5("a" * 32)


async def test_error_code_10_unregistered_email(make_client: MakeClient) -> None:
    client = make_client(email="someone-else@example.com")
    with pytest.raises(BadRequest) as caught:
        await client.renew_token()
    assert caught.value.error_code == 10


async def test_error_code_3_failed_transfer(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    qr = sandbox.qr(Decimal("5"))
    await sandbox.sandbox.pay(qr=qr.qr, fail=True)
    with pytest.raises(TransactionFailed) as caught:
        await client.check_transaction_by_md5(qr.md5)
    assert caught.value.error_code == 3
    assert (await client.check_payments([qr.md5]))[qr.md5].status is CheckStatus.FAILED


async def test_error_code_2_static_qr(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    static = sandbox.qr(None, "KHR")
    await sandbox.sandbox.pay(qr=static.qr, amount="10000")
    with pytest.raises(StaticQRNotSupported):
        await client.check_transaction_by_md5(static.md5)
    outcome = (await client.check_payments([static.md5]))[static.md5]
    assert outcome.status is CheckStatus.STATIC_QR and outcome.transaction is None


async def test_error_code_6_without_renewal_is_token_expired(make_client: MakeClient) -> None:
    client = make_client(token="not-the-sandbox-token", email=None)
    with pytest.raises(TokenExpired) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert caught.value.error_code == 6 and caught.value.http_status_code == 401


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        (5, BadRequest, "Missing required fields"),
        (4, BakongServerError, "Deeplink provider error"),
        (7, BakongServerError, "Email server is down"),
        (9, BakongServerError, "Cannot connect to server"),
        (99, UnknownRefusal, "Something new"),
        (14, UnknownRefusal, "Relay code"),
    ],
)
async def test_forced_error_codes_are_refusals_that_are_not_retried(
    make_client: MakeClient, sandbox: SandboxUnderTest, code: int, error: type[Exception], message: str
) -> None:
    ledger = InMemoryRequestLedger()
    client = make_client(ledger=ledger)
    sandbox.set_faults(force_error_code=code, force_error_message=message)
    with pytest.raises(error) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert caught.value.error_code == code and message in caught.value.message
    assert sandbox.requests() == 1  # a JSON refusal is an answer: retrying would only spend budget
    assert [r.outcome for r in ledger.records] == [caught.value.kind]
    assert not isinstance(caught.value, TransactionNotFound)


async def test_error_code_17_is_quota_exhausted_until_local_midnight(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client()
    sandbox.set_faults(daily_quota=2)
    for _ in range(2):
        with pytest.raises(TransactionNotFound):
            await client.check_transaction_by_md5("a" * 32)
    with pytest.raises(QuotaExhausted) as caught:
        await client.check_transaction_by_md5("a" * 32)
    assert caught.value.error_code == 17
    assert caught.value.until == datetime.fromisoformat("2026-01-15T17:00:00+00:00")


async def test_invalid_input_is_refused_before_any_request(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    for call in (
        client.check_transaction_by_md5("xyz"),
        client.check_transaction_by_hash("ab" * 8),
        client.check_transaction_by_short_hash("abcdefgh", "1", "USD"),
        client.check_transaction_by_short_hash("abcdef12", "1", "EUR"),
        client.check_transaction_by_short_hash("abcdef12", "-1", "USD"),
        client.check_transaction_by_external_ref(""),
        client.check_payments(["a" * 32, "not-an-md5"]),
        client.check_bakong_account(" "),
        client.generate_deeplink(""),
    ):
        with pytest.raises(InvalidInput):
            await call
    assert sandbox.requests() == 0
