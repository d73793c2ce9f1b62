"""The budget: every request reserved before it is sent, refusals that send nothing, the
errorCode 17 latch until local midnight, and diagnose()."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from engine.bakong import BakongClient, DiagnosisKind, InMemoryRequestLedger
from engine.errors import BudgetExhausted, QuotaExhausted, TransactionNotFound
from tests.bakong.conftest import MakeClient, SandboxUnderTest, SteppingClock

MIDNIGHT = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)  # 00:00 on 16 January in Phnom Penh


class CountingLedger(InMemoryRequestLedger):
    """Remembers how many requests the sandbox had seen at each reservation."""

    def __init__(self, sandbox: SandboxUnderTest) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.seen_at_reserve: list[int] = []

    async def reserve(self, token_fingerprint: str, endpoint: str, *, now: datetime, daily_budget: int) -> int:
        self.seen_at_reserve.append(self.sandbox.requests())
        return await super().reserve(token_fingerprint, endpoint, now=now, daily_budget=daily_budget)


async def test_each_request_and_each_retry_is_reserved_before_it_is_sent(
    make_client: MakeClient, sandbox: SandboxUnderTest
) -> None:
    ledger = CountingLedger(sandbox)
    client = make_client(ledger=ledger, max_retries=2)
    with pytest.raises(TransactionNotFound):
        await client.check_transaction_by_md5("a" * 32)
    sandbox.set_faults(error_rate=1.0)
    with pytest.raises(Exception):
        await client.check_transaction_by_md5("a" * 32)
    assert ledger.seen_at_reserve == [0, 1, 2, 3]
    assert sandbox.requests() == 4 == len(ledger.records)
    usage = await client.budget_usage()
    assert usage.used == 4 and usage.remaining == client.daily_budget - 4


async def test_a_spent_budget_sends_nothing(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client(daily_budget=2, max_retries=5)
    sandbox.set_faults(error_rate=1.0)
    with pytest.raises(BudgetExhausted) as caught:
        await client.check_transaction_by_md5("a" * 32)  # the retries spend the budget
    assert caught.value.until == MIDNIGHT
    assert sandbox.requests() == 2
    with pytest.raises(BudgetExhausted):
        await client.check_payments(["a" * 32])
    assert sandbox.requests() == 2


async def test_error_code_17_latches_until_local_midnight_then_requests_resume(
    make_client: MakeClient, sandbox: SandboxUnderTest, clock: SteppingClock
) -> None:
    ledger = InMemoryRequestLedger()
    client = make_client(ledger=ledger)
    sandbox.set_faults(daily_quota=3)
    for _ in range(3):
        await client.check_payments(["a" * 32])
    with pytest.raises(QuotaExhausted) as caught:
        await client.check_payments(["a" * 32])
    assert caught.value.until == MIDNIGHT and caught.value.error_code == 17
    assert sandbox.requests() == 4
    usage = await client.budget_usage()
    assert usage.exhausted_until == MIDNIGHT and usage.used == 4

    # until midnight nothing at all is sent, whichever endpoint
    clock.set(datetime(2026, 1, 15, 16, 59, 59, tzinfo=UTC))
    for call in (client.check_payments(["a" * 32]), client.check_transaction_by_hash("f" * 64), client.check_bakong_account("x@devb")):
        with pytest.raises(QuotaExhausted):
            await call
    assert sandbox.requests() == 4
    assert (await client.diagnose()).kind is DiagnosisKind.OUT_OF_QUOTA
    assert sandbox.requests() == 4

    # a new Bakong day: the latch is gone and Bakong's own quota has reset
    clock.set(MIDNIGHT)
    outcomes = await client.check_payments(["a" * 32])
    assert outcomes["a" * 32].status.value == "not_found"
    assert sandbox.requests() == 5


async def test_diagnose_fine_spends_one_request(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    client = make_client()
    diagnosis = await client.diagnose()
    assert diagnosis.kind is DiagnosisKind.FINE and diagnosis.ok
    assert "accepts the token" in diagnosis.sentence and "9999 of 10000" in diagnosis.sentence
    assert "expires in 90 days" in diagnosis.sentence
    assert diagnosis.requests_spent == 1 and sandbox.requests() == 1


@pytest.mark.parametrize(
    ("faults", "kind", "phrase"),
    [
        ({"geo_blocked": True}, DiagnosisKind.GEO_BLOCKED, "outside Cambodia"),
        ({"token_expired": True}, DiagnosisKind.UNAUTHORIZED, "refused the token"),
        ({"daily_quota": 1, "force_error_code": 17}, DiagnosisKind.OUT_OF_QUOTA, "Out of quota"),
        ({"error_rate": 1.0}, DiagnosisKind.DEGRADED, "failing"),
        ({"html_rate": 1.0}, DiagnosisKind.DEGRADED, "failing"),
    ],
)
async def test_diagnose_names_the_problem_in_one_sentence(
    make_client: MakeClient, sandbox: SandboxUnderTest, faults: dict, kind: DiagnosisKind, phrase: str
) -> None:
    client = make_client()
    sandbox.set_faults(**faults)
    diagnosis = await client.diagnose()
    assert diagnosis.kind is kind
    assert phrase in diagnosis.sentence and "\n" not in diagnosis.sentence
    assert sandbox.requests() == 1 and sandbox.requests("renew_token") == 0


async def test_diagnose_without_a_token_or_budget_sends_nothing(make_client: MakeClient, sandbox: SandboxUnderTest) -> None:
    assert (await make_client(token=None, email=None).diagnose()).kind is DiagnosisKind.UNAUTHORIZED
    spent = make_client(daily_budget=0)
    diagnosis = await spent.diagnose()
    assert diagnosis.kind is DiagnosisKind.OUT_OF_QUOTA and "budget" in diagnosis.sentence
    assert sandbox.requests() == 0


async def test_diagnose_unreachable(clock: SteppingClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with BakongClient(base_url=f"http://127.0.0.1:{port}", clock=clock, ledger=InMemoryRequestLedger(), token="t") as client:
        diagnosis = await client.diagnose()
    assert diagnosis.kind is DiagnosisKind.UNREACHABLE and "unreachable" in diagnosis.sentence
    assert clock.slept == []  # the probe is not retried
