"""The sandbox's Bakong endpoints: the same paths, bodies and envelopes as the Bakong Open API.

200 with errorCode 1 for "not found", 2 for a static QR, 3 for a failed transfer, 5 for a bad
request body; bulk lists answer one item per key in the layout the ``list_item_layout`` fault
chooses. Hash lookups see the ``hash_drift`` fault. Accounts for ``check_bakong_account``: any
well-formed ``name@bank`` id exists, except ids whose name starts with ``unknown`` or ``missing``
(errorCode 11); names starting with ``frozen`` are frozen; a malformed id is errorCode 12.
``renew_token`` issues a fresh token for the registered e-mail (errorCode 10 for another).
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from typing import Any

from starlette.responses import Response

from engine.bakong.environments import Endpoint
from engine.bakong.sandbox.bank_app import ACCOUNT_ID, PretendBankApp, parse_amount, read_khqr
from engine.bakong.sandbox.gateway import Auth, Handler
from engine.bakong.sandbox.store import SandboxTransfer
from engine.bakong.sandbox.wire import (
    ITEM_MESSAGES,
    MSG_FAILED,
    MSG_FOUND,
    MSG_LIST,
    MSG_NOT_FOUND,
    MSG_STATIC,
    envelope,
)
from engine.errors import InvalidInput
from engine.money import EXPONENT

__all__ = ["BakongEndpoints"]

SHORT_HASH = re.compile(r"^[0-9a-fA-F]{8}$")


class BakongEndpoints(PretendBankApp):
    """Answers Bakong's lookups, deep links, accounts and token renewal from the transfer store."""

    email: str

    # --- rendering --------------------------------------------------------------------------------

    def _tx_json(self, t: SandboxTransfer, *, detailed: bool) -> dict[str, Any]:
        faults = self.faults
        if faults.amounts_as_strings:
            amount: Any = f"{t.amount:.{EXPONENT.get(t.currency, 2)}f}"
        elif t.currency == "KHR" and t.amount == t.amount.to_integral_value():
            amount = int(t.amount)
        else:
            amount = float(t.amount)
        created: Any = float(t.created_ms) if faults.float_timestamps else t.created_ms
        acknowledged: Any = float(t.acknowledged_ms) if faults.float_timestamps else t.acknowledged_ms
        return {
            "hash": t.hash,
            "fromAccountId": t.from_account,
            "toAccountId": t.to_account,
            "currency": t.currency,
            "amount": amount,
            "description": t.description,
            "createdDateMs": created,
            "acknowledgedDateMs": acknowledged,
            "trackingStatus": t.tracking_status if detailed else None,
            "receiverBank": t.to_account.rpartition("@")[2].upper() if detailed else None,
            "receiverBankAccount": t.to_account if detailed else None,
            "instructionRef": t.instruction_ref if detailed else None,
            "externalRef": t.external_ref,
        }

    def _single(self, t: SandboxTransfer | None, *, by_md5: bool, detailed: bool) -> Response:
        if by_md5 and (self.faults.static_qr or (t is not None and t.static_qr)):
            return envelope(2, MSG_STATIC)
        if t is None:
            return envelope(1, MSG_NOT_FOUND)
        if t.failed:
            return envelope(3, MSG_FAILED)
        return envelope(None, MSG_FOUND, self._tx_json(t, detailed=detailed))

    def _item(self, key_field: str, key: str, t: SandboxTransfer | None, *, by_md5: bool) -> dict[str, Any]:
        faults = self.faults
        tx = None
        if faults.item_service_failed_rate and self.rng.random() < faults.item_service_failed_rate:
            status = "SERVICE_FAILED"
        elif by_md5 and (faults.static_qr or (t is not None and t.static_qr)):
            status = "STATIC_QR"
        elif t is None:
            status = "NOT_FOUND"
        elif t.failed:
            status = "FAILED"
        else:
            status = "SUCCESS"
            tx = self._tx_json(t, detailed=not by_md5)
        item: dict[str, Any] = {key_field: key, "status": status, "message": ITEM_MESSAGES[status]}
        layout = faults.list_item_layout
        if layout == "data":
            item["data"] = tx
        elif layout == "transaction":
            item["transaction"] = tx
        elif tx is not None:
            for name, value in tx.items():
                item.setdefault(name, value)
        return item

    def _drifted(self, found: dict[str, SandboxTransfer]) -> dict[str, SandboxTransfer]:
        """Hash lookups as the ``hash_drift`` fault has Bakong's records differ from what was paid."""
        drift = self.faults.hash_drift
        if not drift:
            return found
        out: dict[str, SandboxTransfer] = {}
        for tx_hash, transfer in found.items():
            kind = drift.get(tx_hash)
            if kind == "not_found":
                continue
            if kind == "amount":
                unit = Decimal(100) if transfer.currency == "KHR" else Decimal("0.01")
                transfer = dataclasses.replace(transfer, amount=transfer.amount + unit)
            elif kind == "currency":
                transfer = dataclasses.replace(transfer, currency="USD" if transfer.currency == "KHR" else "KHR")
            elif kind == "account":
                transfer = dataclasses.replace(transfer, to_account="someone_else@aclb")
            elif kind == "failed":
                transfer = dataclasses.replace(transfer, tracking_status="FAILED_AT_ACH")
            out[tx_hash] = transfer
        return out

    # --- Bakong endpoints -------------------------------------------------------------------------

    async def _by_md5(self, payload: Any) -> Response:
        md5 = payload.get("md5") if isinstance(payload, dict) else None
        if not isinstance(md5, str) or not 1 <= len(md5) <= 255:
            return envelope(5, "Field md5 is required and must be 1 to 255 characters.")
        self.stats["md5_checks"] += 1
        found = await self.store.by_md5s([md5], visible_at_ms=self._now_ms())
        return self._single(found.get(md5), by_md5=True, detailed=False)

    async def _list(self, payload: Any, key_field: str) -> Response:
        if not isinstance(payload, list) or not payload or not all(isinstance(k, str) for k in payload):
            return envelope(5, f"Request body must be a list of {key_field} strings.")
        if len(payload) > 50:
            return envelope(5, f"The maximum number of {key_field} per request is 50.")
        by_md5 = key_field == "md5"
        now_ms = self._now_ms()
        if by_md5:
            self.stats["md5_checks"] += len(payload)
            found = await self.store.by_md5s(payload, visible_at_ms=now_ms)
        else:
            self.stats["hash_checks"] += len(payload)
            found = self._drifted(await self.store.by_hashes(payload, visible_at_ms=now_ms))
        get = found.get
        items = [self._item(key_field, key, get(key), by_md5=by_md5) for key in payload]
        return envelope(None, MSG_LIST, items)

    async def _by_md5_list(self, payload: Any) -> Response:
        return await self._list(payload, "md5")

    async def _by_hash_list(self, payload: Any) -> Response:
        return await self._list(payload, "hash")

    async def _by_hash(self, payload: Any) -> Response:
        tx_hash = payload.get("hash") if isinstance(payload, dict) else None
        if not isinstance(tx_hash, str) or not tx_hash:
            return envelope(5, "Field hash is required.")
        self.stats["hash_checks"] += 1
        found = self._drifted(await self.store.by_hashes([tx_hash], visible_at_ms=self._now_ms()))
        return self._single(found.get(tx_hash), by_md5=False, detailed=True)

    async def _by_short_hash(self, payload: Any) -> Response:
        if not isinstance(payload, dict):
            return envelope(5, "Fields hash, amount and currency are required.")
        short, amount, currency = payload.get("hash"), payload.get("amount"), payload.get("currency")
        if not isinstance(short, str) or not SHORT_HASH.match(short):
            return envelope(5, "Field hash must be the 8-character short hash.")
        if currency not in ("KHR", "USD"):
            return envelope(5, "Field currency must be KHR or USD.")
        try:
            value = parse_amount(amount)
        except InvalidInput:
            return envelope(5, "Field amount must be a number.")
        t = await self.store.by_short_hash(short.lower(), value, currency, visible_at_ms=self._now_ms())
        return self._single(t, by_md5=False, detailed=True)

    async def _by_ref(self, payload: Any, field: str) -> Response:
        ref = payload.get(field) if isinstance(payload, dict) else None
        if not isinstance(ref, str) or not 1 <= len(ref) <= 255:
            return envelope(5, f"Field {field} is required.")
        now_ms = self._now_ms()
        if field == "externalRef":
            t = await self.store.by_external_ref(ref, visible_at_ms=now_ms)
        else:
            t = await self.store.by_instruction_ref(ref, visible_at_ms=now_ms)
        return self._single(t, by_md5=False, detailed=True)

    async def _by_instruction_ref(self, payload: Any) -> Response:
        return await self._by_ref(payload, "instructionRef")

    async def _by_external_ref(self, payload: Any) -> Response:
        return await self._by_ref(payload, "externalRef")

    async def _deeplink(self, payload: Any) -> Response:
        qr = payload.get("qr") if isinstance(payload, dict) else None
        if not isinstance(qr, str) or not qr:
            return envelope(5, "Field qr is required.")
        source = payload.get("sourceInfo")
        if source is not None:
            fields = ("appIconUrl", "appName", "appDeepLinkCallback")
            if not isinstance(source, dict) or not all(isinstance(source.get(f), str) and source.get(f) for f in fields):
                return envelope(5, "sourceInfo needs appIconUrl, appName and appDeepLinkCallback.")
        try:
            read = read_khqr(qr, now_ms=self._now_ms(), allow_expired=False)
        except InvalidInput as exc:
            return envelope(5, f"Invalid KHQR: {exc.message}")
        if read["static"]:
            return envelope(2, MSG_STATIC)
        link = f"https://bakongsit.page.link/sbx{read['md5'][:12]}"
        return envelope(None, "Getting deep link successfully", {"shortLink": link})

    async def _account(self, payload: Any) -> Response:
        account = payload.get("accountId") if isinstance(payload, dict) else None
        if not isinstance(account, str) or not account:
            return envelope(5, "Field accountId is required.")
        if len(account) > 32 or not ACCOUNT_ID.match(account):
            return envelope(12, "Account ID is invalid")
        name = account.partition("@")[0].lower()
        if name.startswith(("unknown", "missing")):
            return envelope(11, "Account ID not found")
        frozen = name.startswith("frozen")
        data = {
            "bakongAccountId": account,
            "fullName": name.replace("_", " ").replace(".", " ").title(),
            "accountStatus": "ACTIVATED",
            "kycStatus": "FULL_KYC",
            "canReceive": not frozen,
            "frozen": frozen,
        }
        return envelope(None, "Account ID exists", data)

    async def _renew(self, payload: Any) -> Response:
        email = payload.get("email") if isinstance(payload, dict) else None
        if not isinstance(email, str) or not email or len(email) > 30:
            return envelope(5, "Field email is required and must be at most 30 characters.")
        if email.strip().lower() != self.email.strip().lower():
            return envelope(10, "Not registered yet")
        token = await self.renew_token()
        return envelope(None, "Token has been issued", {"token": token})

    def _v1_table(self) -> list[tuple[Endpoint, Handler, Auth]]:
        return [
            (Endpoint.MD5, self._by_md5, "required"),
            (Endpoint.MD5_LIST, self._by_md5_list, "required"),
            (Endpoint.HASH, self._by_hash, "required"),
            (Endpoint.HASH_LIST, self._by_hash_list, "required"),
            (Endpoint.SHORT_HASH, self._by_short_hash, "required"),
            (Endpoint.INSTRUCTION_REF, self._by_instruction_ref, "required"),
            (Endpoint.EXTERNAL_REF, self._by_external_ref, "required"),
            (Endpoint.DEEPLINK, self._deeplink, "optional"),
            (Endpoint.ACCOUNT, self._account, "optional"),
            (Endpoint.RENEW_TOKEN, self._renew, "none"),
        ]
