"""The sandbox itself: Bakong's exact wire shapes, the pretend bank app, faults, stats, storage."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from engine.bakong.sandbox import (
    FileTransferStore,
    InMemoryTransferStore,
    SandboxControl,
    SandboxFaults,
    SandboxTransfer,
    ThreadedServer,
    create_sandbox_app,
)
from engine.clock import ManualClock
from engine.config import SandboxSettings
from engine.errors import BakongUnreachable, InvalidInput
from tests.bakong.conftest import EMAIL, MERCHANT, SandboxUnderTest


@pytest.fixture
async def http(sandbox: SandboxUnderTest) -> httpx.AsyncClient:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://sandbox.test") as client:
        yield client


def auth(sandbox: SandboxUnderTest) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox.token}", "Content-Type": "application/json"}


async def test_not_found_is_http_200_with_error_code_1(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    r = await http.post("/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=auth(sandbox))
    assert r.status_code == 200
    assert r.json() == {
        "responseCode": 1,
        "responseMessage": "Transaction could not be found. Please check and try again.",
        "errorCode": 1,
        "data": None,
    }


async def test_found_has_bakongs_data_shape(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    t = await sandbox.sandbox.pay(md5="a" * 32, amount="1.25", currency="USD", to_account=MERCHANT)
    r = await http.post("/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=auth(sandbox))
    body = r.json()
    assert (body["responseCode"], body["errorCode"], body["responseMessage"]) == (0, None, "Getting transaction successfully.")
    assert set(body["data"]) == {
        "hash", "fromAccountId", "toAccountId", "currency", "amount", "description", "createdDateMs",
        "acknowledgedDateMs", "trackingStatus", "receiverBank", "receiverBankAccount", "instructionRef", "externalRef",
    }
    assert body["data"]["amount"] == 1.25 and body["data"]["hash"] == t.hash
    assert body["data"]["createdDateMs"] == int(sandbox.clock.now().timestamp() * 1000)
    assert body["data"]["externalRef"].startswith("100FT") and len(body["data"]["externalRef"]) == 16


async def test_bad_token_is_401_with_error_code_6(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = await http.post("/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=headers)
        assert r.status_code == 401
        assert r.json() == {
            "responseCode": 1,
            "responseMessage": "Unauthorized, not yet requested for token or code invalid",
            "errorCode": 6,
            "data": None,
        }


async def test_an_expired_jwt_is_refused(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    sandbox.clock.advance(timedelta(days=90).total_seconds())
    r = await http.post("/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=auth(sandbox))
    assert r.status_code == 401 and r.json()["errorCode"] == 6


async def test_blocked_paths_answer_bare_nginx_html(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    sandbox.set_faults(bulk_blocked=True)
    r = await http.post("/v1/check_transaction_by_md5_list", json=["a" * 32], headers=auth(sandbox))
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert r.text.startswith("<html>") and "<center>nginx</center>" in r.text
    ok = await http.post("/v1/check_transaction_by_hash_list", json=["a" * 64], headers=auth(sandbox))
    assert ok.status_code == 200
    sandbox.set_faults(bulk_blocked=False, geo_blocked=True)
    for path in ("/v1/check_transaction_by_md5", "/v1/renew_token", "/v1/check_bakong_account"):
        assert (await http.post(path, json={})).status_code == 403


async def test_bulk_limits_and_bare_array_body(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    too_many = await http.post("/v1/check_transaction_by_md5_list", json=[f"{i:032x}" for i in range(51)], headers=auth(sandbox))
    assert too_many.status_code == 200 and too_many.json()["errorCode"] == 5
    wrapped = await http.post("/v1/check_transaction_by_md5_list", json={"md5List": ["a" * 32]}, headers=auth(sandbox))
    assert wrapped.json()["errorCode"] == 5
    items = (await http.post("/v1/check_transaction_by_md5_list", json=["a" * 32], headers=auth(sandbox))).json()
    assert items["data"] == [
        {"md5": "a" * 32, "status": "NOT_FOUND", "message": "Transaction could not be found. Please check and try again", "data": None}
    ]
    not_json = await http.post("/v1/check_transaction_by_md5", content=b"{oops", headers=auth(sandbox))
    assert not_json.status_code == 400 and not_json.json()["errorCode"] == 5


async def test_rate_limit_and_server_error_faults(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    sandbox.set_faults(rate_limit_rate=1.0, retry_after_seconds=9)
    r = await http.post("/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=auth(sandbox))
    assert r.status_code == 429 and r.headers["retry-after"] == "9"
    sandbox.set_faults(rate_limit_rate=0.0, error_rate=1.0, server_error_status=500)
    r = await http.post("/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=auth(sandbox))
    assert r.status_code == 500 and "nginx" in r.text


async def test_daily_quota_counts_every_request_per_token_and_resets_at_local_midnight(
    http: httpx.AsyncClient, sandbox: SandboxUnderTest
) -> None:
    sandbox.set_faults(daily_quota=2)
    codes = []
    for _ in range(4):
        r = await http.post("/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=auth(sandbox))
        codes.append(r.json()["errorCode"])
    assert codes == [1, 1, 17, 17]
    assert "Daily request limit of 2 exceeded" in r.json()["responseMessage"]
    sandbox.clock.set(datetime(2026, 1, 15, 17, 0, tzinfo=UTC))
    r = await http.post("/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=auth(sandbox))
    assert r.json()["errorCode"] == 1


async def test_pay_a_dynamic_qr_like_a_bank_app(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    qr = sandbox.qr(Decimal("12.50"))
    r = await http.post("/sandbox/pay", json={"qr": qr.qr, "from_account": "wingkhppxxx@wing"})
    assert r.status_code == 200
    transfer = r.json()["transfer"]
    assert transfer["md5"] == qr.md5 and transfer["amount"] == "12.50" and transfer["currency"] == "USD"
    assert transfer["to_account"] == MERCHANT and transfer["from_account"] == "wingkhppxxx@wing"
    assert len(transfer["hash"]) == 64 and int(transfer["hash"], 16) >= 0
    assert transfer["short_hash"] == transfer["hash"][:8] and transfer["visible"] is True
    assert transfer["created_ms"] < transfer["acknowledged_ms"]


async def test_pay_wrong_amount_and_wrong_account(sandbox: SandboxUnderTest) -> None:
    usd = sandbox.qr(Decimal("12.50"))
    assert (await sandbox.sandbox.pay(qr=usd.qr, wrong_amount=True)).amount == Decimal("12.49")
    khr = sandbox.qr(40000, "KHR")
    assert (await sandbox.sandbox.pay(qr=khr.qr, wrong_amount=True)).amount == Decimal(39900)
    assert (await sandbox.sandbox.pay(qr=khr.qr, amount="100")).amount == Decimal(100)
    elsewhere = await sandbox.sandbox.pay(qr=khr.qr, to_account="someone_else@abaa")
    assert elsewhere.to_account == "someone_else@abaa" and elsewhere.md5 == khr.md5


async def test_a_late_payment_appears_only_after_the_qr_expired(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    qr = sandbox.qr(Decimal("5"), minutes=10)
    transfer = await sandbox.sandbox.pay(qr=qr.qr, late_seconds=30)
    expiry_ms = int(sandbox.clock.now().timestamp() * 1000) + 600_000
    assert transfer.created_ms == expiry_ms + 30_000

    async def lookup() -> int:
        r = await http.post("/v1/check_transaction_by_md5", json={"md5": qr.md5}, headers=auth(sandbox))
        return r.json()["errorCode"]

    assert await lookup() == 1
    sandbox.clock.advance(629)
    assert await lookup() == 1
    sandbox.clock.advance(1)
    assert await lookup() is None


async def test_a_bank_app_refuses_expired_and_invalid_qrs(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    qr = sandbox.qr(Decimal("5"), minutes=1)
    sandbox.clock.advance(61)
    with pytest.raises(InvalidInput, match="expired"):
        await sandbox.sandbox.pay(qr=qr.qr)
    assert (await sandbox.sandbox.pay(qr=qr.qr, late_seconds=0)).created_ms > 0  # "paid late" on purpose
    r = await http.post("/sandbox/pay", json={"qr": qr.qr[:-4] + "0000"})
    assert r.status_code == 422 and "refuses" in r.json()["error"]
    r = await http.post("/sandbox/pay", json={"qr": qr.qr, "surprise": 1})
    assert r.status_code == 422 and "surprise" in r.json()["error"]
    r = await http.post("/sandbox/pay", json={"md5": "a" * 32, "amount": "1"})
    assert r.status_code == 422


async def test_paying_a_static_qr_needs_an_amount_and_is_untrackable_by_md5(
    http: httpx.AsyncClient, sandbox: SandboxUnderTest
) -> None:
    static = sandbox.qr(None, "KHR")
    with pytest.raises(InvalidInput, match="static"):
        await sandbox.sandbox.pay(qr=static.qr)
    transfer = await sandbox.sandbox.pay(qr=static.qr, amount="15000")
    assert transfer.static_qr and transfer.amount == Decimal(15000)
    single = await http.post("/v1/check_transaction_by_md5", json={"md5": static.md5}, headers=auth(sandbox))
    assert single.json()["errorCode"] == 2
    bulk = await http.post("/v1/check_transaction_by_md5_list", json=[static.md5], headers=auth(sandbox))
    assert bulk.json()["data"][0]["status"] == "STATIC_QR"
    by_hash = await http.post("/v1/check_transaction_by_hash", json={"hash": transfer.hash}, headers=auth(sandbox))
    assert by_hash.json()["responseCode"] == 0  # the transfer exists; only the md5 cannot find it


async def test_pay_by_md5_without_a_qr(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    r = await http.post(
        "/sandbox/pay", json={"md5": "A" * 32, "amount": "2.50", "currency": "usd", "to_account": MERCHANT, "paid_at_ms": 1768446000123}
    )
    transfer = r.json()["transfer"]
    assert transfer["md5"] == "a" * 32 and transfer["currency"] == "USD" and transfer["created_ms"] == 1768446000123


async def test_faults_endpoint_reads_changes_validates_and_resets(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    assert (await http.get("/sandbox/faults")).json()["faults"] == SandboxFaults().to_dict()
    r = await http.post("/sandbox/faults", json={"bulk_blocked": True, "error_rate": "0.25", "force_error_code": 9})
    faults = r.json()["faults"]
    assert faults["bulk_blocked"] is True and faults["error_rate"] == 0.25 and faults["force_error_code"] == 9
    assert sandbox.sandbox.faults.bulk_blocked
    for bad in ({"nope": 1}, {"error_rate": 2}, {"list_item_layout": "sideways"}, {"bulk_blocked": "maybe"}):
        assert (await http.post("/sandbox/faults", json=bad)).status_code == 422
    r = await http.post("/sandbox/faults", json={"reset": True, "static_qr": True})
    assert r.json()["faults"] == {**SandboxFaults().to_dict(), "static_qr": True}


def test_faults_from_settings() -> None:
    faults = SandboxFaults.from_settings(SandboxSettings(daily_quota=100, latency_ms=20, error_rate=0.1, bulk_blocked=True, geo_blocked=False))
    assert (faults.daily_quota, faults.latency_ms, faults.error_rate, faults.bulk_blocked) == (100, 20.0, 0.1, True)


async def test_stats_count_requests_per_endpoint(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    await http.post("/v1/check_transaction_by_md5", json={"md5": "a" * 32}, headers=auth(sandbox))
    await http.post("/v1/check_transaction_by_md5_list", json=["a" * 32, "b" * 32], headers=auth(sandbox))
    await http.post("/v1/check_transaction_by_md5_list", json=["a" * 32], headers={})
    stats = (await http.get("/sandbox/stats")).json()
    assert stats["requests"]["check_transaction_by_md5"] == 1
    assert stats["requests"]["check_transaction_by_md5_list"] == 2
    assert stats["requests"]["renew_token"] == 0
    assert stats["total"] == 3 and stats["md5_checks"] == 3
    reset = (await http.post("/sandbox/stats/reset")).json()
    assert reset["total"] == 0


async def test_renew_token_with_the_registered_email(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    old = sandbox.token
    r = await http.post("/v1/renew_token", json={"email": EMAIL.upper()})
    body = r.json()
    assert body["responseCode"] == 0 and body["data"]["token"] == sandbox.token != old
    assert (await http.post("/v1/renew_token", json={"email": "x@example.com"})).json()["errorCode"] == 10
    assert (await http.post("/v1/renew_token", json={"email": "a" * 31})).json()["errorCode"] == 5


async def test_renewal_callback_receives_the_new_token() -> None:
    seen: list[str] = []

    async def keep(token: str) -> None:
        seen.append(token)

    app = create_sandbox_app(InMemoryTransferStore(), clock=ManualClock(), token="fixed-token", email="a@b.c", on_token_renewed=keep)
    assert app.state.sandbox.token == "fixed-token"
    new = await app.state.sandbox.renew_token()
    assert seen == [new] and new != "fixed-token"


async def test_info_and_transfers_listing(http: httpx.AsyncClient, sandbox: SandboxUnderTest) -> None:
    for i in range(3):
        await sandbox.sandbox.pay(md5=f"{i:032x}", amount="1", currency="KHR", to_account=MERCHANT)
    listed = (await http.get("/sandbox/transfers?limit=2")).json()["transfers"]
    assert [t["md5"] for t in listed] == [f"{2:032x}", f"{1:032x}"]
    info = (await http.get("/sandbox/info")).json()
    assert info["environment"] == "sandbox" and info["email"] == EMAIL
    assert sandbox.token not in json.dumps(info)
    assert (await http.get("/v1/check_transaction_by_md5")).status_code == 405
    assert (await http.post("/v1/nope", json={})).status_code == 404


def _transfer(i: int, created_ms: int = 1000, **kw: object) -> SandboxTransfer:
    return SandboxTransfer(
        hash=f"{i:064x}", md5=kw.pop("md5", f"{i:032x}"), from_account="abaakhppxxx@abaa", to_account=MERCHANT,
        currency="USD", amount=Decimal("1.50"), created_ms=created_ms, acknowledged_ms=created_ms + 1,
        external_ref=f"100FT{i:011d}", instruction_ref=f"SBX{i:013d}", **kw,
    )


async def test_file_store_persists_transfers_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "sandbox" / "transfers.jsonl"
    store = FileTransferStore(path)
    await store.add(_transfer(1))
    await store.add(_transfer(2, created_ms=5000, md5=f"{1:032x}"))
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"hash": "torn')  # a crash mid-write
    reopened = FileTransferStore(path)
    assert len(reopened) == 2
    found = await reopened.by_md5s([f"{1:032x}"], visible_at_ms=10_000)
    assert found[f"{1:032x}"].hash == f"{1:064x}"  # the earliest of two payments of one QR
    assert (await reopened.by_short_hash(f"{2:064x}"[:8], Decimal("1.5"), "USD", visible_at_ms=10_000)) is not None
    with pytest.raises(ValueError):
        await reopened.add(_transfer(1))


async def test_store_lookups_hide_transfers_not_yet_made() -> None:
    store = InMemoryTransferStore([_transfer(1, created_ms=2000)])
    assert await store.by_md5s([f"{1:032x}"], visible_at_ms=1999) == {}
    assert await store.by_hashes([f"{1:064x}"], visible_at_ms=1999) == {}
    assert await store.by_external_ref(f"100FT{1:011d}", visible_at_ms=1999) is None
    assert await store.by_instruction_ref(f"SBX{1:013d}", visible_at_ms=2000) is not None
    assert [t.hash for t in await store.recent()] == [f"{1:064x}"]


async def test_control_client_over_loopback() -> None:
    clock = ManualClock()
    app = create_sandbox_app(InMemoryTransferStore(), clock=clock, email=EMAIL, rng=random.Random(5))
    with ThreadedServer(app) as server:
        async with SandboxControl(server.url) as control:
            transfer = await control.pay(md5="c" * 32, amount=Decimal("3.10"), currency="USD", to_account=MERCHANT)
            assert transfer["amount"] == "3.10"
            assert (await control.faults({"bulk_blocked": True}))["bulk_blocked"] is True
            assert (await control.faults())["bulk_blocked"] is True
            assert (await control.faults(reset=True))["bulk_blocked"] is False
            assert (await control.stats())["payments"] == 1
            assert (await control.reset_stats())["total"] == 0
            assert [t["hash"] for t in await control.transfers()] == [transfer["hash"]]
            assert (await control.info())["environment"] == "sandbox"
            with pytest.raises(InvalidInput):
                await control.pay(md5="c" * 32)
    async with SandboxControl(server.url) as gone:
        with pytest.raises(BakongUnreachable):
            await gone.stats()
