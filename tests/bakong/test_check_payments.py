"""The poller's call: batches of 50 while the bulk endpoint works, single checks while it is
blocked (re-probed later), one outcome per MD5, and no answer thrown away on a refusal."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from engine.bakong import BakongClient, CheckStatus, InMemoryRequestLedger
from engine.errors import BulkEndpointBlocked, QuotaExhausted, RateLimited
from tests.bakong.conftest import MERCHANT, MakeClient, SandboxUnderTest, SteppingClock


def md5s(n: int, start: int = 0) -> list[str]:
    return [f"{i:032x}" for i in range(start, start + n)]


async def test_batches_of_50_with_one_outcome_per_md5_in_order(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    keys = md5s(120)
    for key in keys[::10]:
        await sandbox.sandbox.pay(md5=key, amount="1.50", currency="USD", to_account=MERCHANT)
    outcomes = await client.check_payments(keys + keys[:5])  # duplicates are asked once
    assert list(outcomes) == keys
    assert sandbox.requests("check_transaction_by_md5_list") == 3
    assert sandbox.requests("check_transaction_by_md5") == 0
    paid = {k for k, o in outcomes.items() if o.status is CheckStatus.PAID}
    assert paid == set(keys[::10])
    assert all(outcomes[k].transaction.amount == Decimal("1.50") for k in paid)
    assert all(o.status is CheckStatus.NOT_FOUND for k, o in outcomes.items() if k not in paid)
    assert await client.check_payments([]) == {}


async def test_blocked_bulk_falls_back_to_singles_and_is_probed_again_later(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    client = make_client(bulk_retry_after_seconds=600)
    keys = md5s(3)
    await sandbox.sandbox.pay(md5=keys[1], amount="2", currency="USD", to_account=MERCHANT)
    sandbox.set_faults(bulk_blocked=True)

    first = await client.check_payments(keys)
    assert [o.status for o in first.values()] == [CheckStatus.NOT_FOUND, CheckStatus.PAID, CheckStatus.NOT_FOUND]
    assert sandbox.requests("check_transaction_by_md5_list") == 1
    assert sandbox.requests("check_transaction_by_md5") == 3
    assert client.bulk_blocked_until == clock.now() + timedelta(seconds=600)

    # inside the window: singles only, the bulk path is not asked again
    clock.advance(599)
    await client.check_payments(keys)
    assert sandbox.requests("check_transaction_by_md5_list") == 1
    assert sandbox.requests("check_transaction_by_md5") == 6

    # the window has passed and bulk works again: one probe, and batches from then on
    sandbox.set_faults(bulk_blocked=False)
    clock.advance(1)
    assert client.bulk_blocked_until is None
    again = await client.check_payments(keys)
    assert [(o.status, o.transaction) for o in again.values()] == [(o.status, o.transaction) for o in first.values()]
    assert sandbox.requests("check_transaction_by_md5_list") == 2
    assert sandbox.requests("check_transaction_by_md5") == 6


async def test_a_probe_that_is_still_blocked_reopens_the_window(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    client = make_client(bulk_retry_after_seconds=60)
    sandbox.set_faults(bulk_blocked=True)
    await client.check_payments(md5s(2))
    clock.advance(61)
    await client.check_payments(md5s(2))
    assert sandbox.requests("check_transaction_by_md5_list") == 2
    assert sandbox.requests("check_transaction_by_md5") == 4
    assert client.bulk_blocked_until == clock.now() + timedelta(seconds=60)


async def test_a_zero_window_still_asks_the_blocked_bulk_path_once_per_call(
    make_client: MakeClient, sandbox: SandboxUnderTest
) -> None:
    client = make_client(bulk_retry_after_seconds=0)
    sandbox.set_faults(bulk_blocked=True)
    outcomes = await client.check_payments(md5s(60))
    assert len(outcomes) == 60
    assert sandbox.requests("check_transaction_by_md5_list") == 1
    assert sandbox.requests("check_transaction_by_md5") == 60


async def test_the_low_level_bulk_call_raises_when_blocked(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client()
    sandbox.set_faults(bulk_blocked=True)
    with pytest.raises(BulkEndpointBlocked):
        await client.check_transactions_by_md5_list(md5s(3))
    assert client.bulk_blocked_until is not None


async def test_a_refusal_before_any_answer_raises(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client(max_retries=0)
    sandbox.set_faults(rate_limit_rate=1.0, retry_after_seconds=5)
    with pytest.raises(RateLimited):
        await client.check_payments(md5s(75))
    assert sandbox.requests() == 1


async def test_a_refusal_mid_call_keeps_the_answers_already_paid_for(
    make_client: MakeClient, sandbox: SandboxUnderTest
) -> None:
    ledger = InMemoryRequestLedger()
    client = make_client(ledger=ledger)
    keys = md5s(6)
    await sandbox.sandbox.pay(md5=keys[0], amount="3", currency="USD", to_account=MERCHANT)
    # bulk blocked at the edge (nginx: not metered) and a Bakong quota of 3: 3 singles, then errorCode 17
    sandbox.set_faults(bulk_blocked=True, daily_quota=3)
    outcomes = await client.check_payments(keys)
    assert outcomes[keys[0]].status is CheckStatus.PAID
    assert [outcomes[k].status for k in keys[1:3]] == [CheckStatus.NOT_FOUND] * 2
    for key in keys[3:]:
        assert outcomes[key].status is CheckStatus.REFUSED
        assert isinstance(outcomes[key].error, QuotaExhausted)
    assert sandbox.requests("check_transaction_by_md5") == 4
    # the latch holds: the next call sends nothing
    before = sandbox.requests()
    with pytest.raises(QuotaExhausted):
        await client.check_payments(keys)
    assert sandbox.requests() == before


async def test_a_mid_call_refusal_on_the_bulk_path_keeps_earlier_batches(
    make_client: MakeClient, sandbox: SandboxUnderTest
) -> None:
    client = make_client()
    keys = md5s(120)
    sandbox.set_faults(daily_quota=2)
    outcomes = await client.check_payments(keys)
    assert all(outcomes[k].status is CheckStatus.NOT_FOUND for k in keys[:100])
    assert all(outcomes[k].status is CheckStatus.REFUSED for k in keys[100:])
    # another process with its own ledger but the same token: Bakong refuses at once, nothing learned
    with pytest.raises(QuotaExhausted):
        await make_client().check_transactions_by_md5_list(keys)


async def test_single_outcome_helper(client: BakongClient, sandbox: SandboxUnderTest) -> None:
    qr = sandbox.qr(Decimal("9.99"))
    assert (await client.check_payment(qr.md5)).status is CheckStatus.NOT_FOUND
    await sandbox.sandbox.pay(qr=qr.qr)
    outcome = await client.check_payment(qr.md5.upper())
    assert outcome.paid and outcome.key == qr.md5 and outcome.transaction.amount == Decimal("9.99")
