"""The Bakong sandbox: an ASGI app that answers like the Bakong Open API, plus its control paths.

Same paths, request bodies and envelopes as Bakong (``engine.bakong.environments.Endpoint``):
200 with errorCode 1 for "not found", 401 with errorCode 6 for a bad token, errorCode 17 once a
daily quota is spent, bare nginx HTML for 403s. Transfers come from a pretend bank app
(``BakongSandbox.pay`` / ``POST /sandbox/pay``) that reads the KHQR as a banking app would, and
live in a ``TransferStore``. Faults are injected on demand (``SandboxFaults``).

Control paths (not part of Bakong):

- ``POST /sandbox/pay``: ``{"qr": …}`` or ``{"md5", "amount", "currency", "to_account"}``; options
  ``amount`` (a static QR needs it; on a dynamic QR it overrides the QR's), ``wrong_amount``,
  ``to_account`` (a wrong receiver), ``late_seconds`` (paid that long after the QR expired; by MD5,
  that long from now), ``paid_at_ms``, ``from_account``, ``fail`` (a transfer that failed),
  ``description``. A transfer dated in the future stays invisible to lookups until then.
- ``GET /sandbox/transfers?limit=N``, ``GET|POST /sandbox/faults`` (``{"reset": true}`` clears),
  ``GET /sandbox/stats``, ``POST /sandbox/stats/reset``, ``GET /sandbox/info``.

Accounts for ``check_bakong_account``: any well-formed ``name@bank`` id exists, except ids whose
name starts with ``unknown`` or ``missing`` (errorCode 11); names starting with ``frozen`` are
frozen; a malformed id is errorCode 12.

Latency and hangs are real time (``asyncio.sleep``): they model the network. Everything Bakong
would time-stamp or meter per day uses the injected clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.bakong.budget import bakong_day
from engine.bakong.environments import Endpoint
from engine.bakong.sandbox.faults import SandboxFaults
from engine.bakong.sandbox.store import SandboxTransfer, TransferStore
from engine.bakong.sandbox.tokens import issue_token
from engine.bakong.token import read_jwt_claims, token_fingerprint
from engine.clock import Clock
from engine.errors import BakongConsoleError, InvalidInput
from engine.money import EXPONENT, check_currency

__all__ = ["PAYER_ACCOUNTS", "BakongSandbox", "SandboxApp", "create_sandbox_app"]

#: Pooled Bakong accounts of payers' banks: what ``fromAccountId`` shows for bank-app payers.
PAYER_ACCOUNTS = ("abaakhppxxx@abaa", "acledakhppxxx@acld", "wingkhppxxx@wing", "cadikhppxxx@cadi")

Auth = Literal["required", "optional", "none"]
Handler = Callable[[Any], Awaitable[Response]]

_JSON = "application/json"
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_.\-]+@[A-Za-z0-9]+$")
_SHORT_HASH = re.compile(r"^[0-9a-fA-F]{8}$")

_MSG_FOUND = "Getting transaction successfully."
_MSG_LIST = "Getting transaction data successfully."
_MSG_NOT_FOUND = "Transaction could not be found. Please check and try again."
_MSG_STATIC = "Sorry, the system does not support static QR code."
_MSG_FAILED = "Transaction failed."
_MSG_UNAUTHORIZED = "Unauthorized, not yet requested for token or code invalid"
_ITEM_MESSAGES = {
    "SUCCESS": "Transaction success",
    "NOT_FOUND": "Transaction could not be found. Please check and try again",
    "STATIC_QR": "Sorry, the system does not support static QR code",
    "FAILED": "Transaction failed",
    "SERVICE_FAILED": "Service failed, please try again",
}


def _nginx(status: int, reason: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


_REASONS = {403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
_MAINTENANCE = b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>Bakong is under maintenance</h1></body></html>"
_MALFORMED = {
    "truncated": b'{"responseCode":0,"responseMessage":"Getting transaction successfully.","errorCode":nu',
    "empty": b"",
    "not-envelope": b'{"status":"ok","result":[]}',
}


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _envelope(code: int | None, message: str, data: Any = None, *, status: int = 200) -> Response:
    body = {"responseCode": 0 if code is None else 1, "responseMessage": message, "errorCode": code, "data": data}
    return Response(_dumps(body), status_code=status, media_type=_JSON)


def _html(status: int, body: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
    merged = {"server": "nginx"}
    merged.update(headers or {})
    return Response(body if body is not None else _nginx(status, _REASONS.get(status, "Error")),
                    status_code=status, media_type="text/html", headers=merged)


def _control_error(message: str, status: int = 422) -> Response:
    return Response(_dumps({"error": message}), status_code=status, media_type=_JSON)


class BakongSandbox:
    """The sandbox's state and behaviour; ``app`` is its ASGI application."""

    def __init__(
        self,
        store: TransferStore,
        *,
        clock: Clock,
        token: str | None = None,
        email: str = "merchant@example.com",
        faults: SandboxFaults | None = None,
        rng: random.Random | None = None,
        secret: bytes | None = None,
        on_token_renewed: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.secret = secret or self.rng.randbytes(32)
        self.email = email
        self.faults = faults or SandboxFaults()
        self.faults.check()
        self.on_token_renewed = on_token_renewed
        self.stats: Counter[str] = Counter()
        self._quota_used: dict[tuple[str, date], int] = {}
        self._token = ""
        self._authorization = ""
        self._token_exp: float | None = None
        self._set_token(token or issue_token(self.secret, now=clock.now(), rng=self.rng))
        self.app = SandboxApp(self)

    # --- token ------------------------------------------------------------------------------------

    @property
    def token(self) -> str:
        """The one token the sandbox accepts right now."""
        return self._token

    def _set_token(self, token: str) -> None:
        self._token = token
        self._authorization = f"Bearer {token}"
        exp = (read_jwt_claims(token) or {}).get("exp")
        self._token_exp = float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None

    async def renew_token(self) -> str:
        """Issue a fresh 90-day token; the previous one stops working."""
        self._set_token(issue_token(self.secret, now=self.clock.now(), rng=self.rng))
        if self.on_token_renewed is not None:
            await self.on_token_renewed(self._token)
        return self._token

    def _authorized(self, header: str | None) -> bool:
        if header != self._authorization:
            return False
        return self._token_exp is None or self.clock.now().timestamp() < self._token_exp

    def __repr__(self) -> str:
        return f"BakongSandbox(token={token_fingerprint(self._token)!r}, faults={self.faults!r})"

    # --- the pretend bank app ---------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    async def pay(
        self,
        *,
        qr: str | None = None,
        md5: str | None = None,
        amount: Decimal | int | str | None = None,
        currency: str | None = None,
        to_account: str | None = None,
        wrong_amount: bool = False,
        late_seconds: float | None = None,
        paid_at_ms: int | None = None,
        from_account: str | None = None,
        fail: bool = False,
        description: str | None = None,
    ) -> SandboxTransfer:
        """Record a transfer as a bank app would make it; InvalidInput for what a bank app refuses."""
        now_ms = self._now_ms()
        static = False
        expires_ms: int | None = None
        if qr is not None:
            read = _read_qr(qr, now_ms=now_ms, allow_expired=late_seconds is not None or paid_at_ms is not None)
            md5 = read["md5"]
            static = read["static"]
            expires_ms = read["expires_ms"]
            currency = read["currency"]
            receiver = read["to_account"]
            if amount is None:
                amount = read["amount"]
                if amount is None:
                    raise InvalidInput("a static KHQR has no amount: the payer must enter one (amount)", field="amount")
        else:
            if not md5 or not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
                raise InvalidInput("give a KHQR (qr) or its 32-hex MD5 (md5)", field="md5")
            md5 = md5.lower()
            if amount is None or not currency or not to_account:
                raise InvalidInput("paying by MD5 needs amount, currency and to_account", field="amount")
            receiver = to_account
        code = check_currency(currency or "")
        value = _decimal(amount)
        if wrong_amount:
            unit = Decimal(100) if code == "KHR" else Decimal("0.01")
            value = value - unit if value > unit else value + unit
        if to_account:
            receiver = to_account
        if not _ACCOUNT_ID.match(receiver or ""):
            raise InvalidInput(f"receiving account {receiver!r} is not a Bakong account id", field="to_account")
        if paid_at_ms is not None:
            created = int(paid_at_ms)
        elif late_seconds is not None:
            created = (expires_ms if expires_ms is not None else now_ms) + int(float(late_seconds) * 1000)
        else:
            created = now_ms
        transfer = SandboxTransfer(
            hash=f"{self.rng.getrandbits(256):064x}",
            md5=md5,
            from_account=from_account or self.rng.choice(PAYER_ACCOUNTS),
            to_account=receiver,
            currency=code,
            amount=value,
            created_ms=created,
            acknowledged_ms=created + self.rng.randint(300, 2500),
            external_ref=f"100FT{self.rng.randrange(10**11):011d}",
            instruction_ref=f"SBX{self.rng.randrange(10**13):013d}",
            description=description,
            tracking_status="FAILED_AT_ACH" if fail else "SUCCESS",
            static_qr=static,
        )
        await self.store.add(transfer)
        self.stats["payments"] += 1
        return transfer

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
            return _envelope(2, _MSG_STATIC)
        if t is None:
            return _envelope(1, _MSG_NOT_FOUND)
        if t.failed:
            return _envelope(3, _MSG_FAILED)
        return _envelope(None, _MSG_FOUND, self._tx_json(t, detailed=detailed))

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
        item: dict[str, Any] = {key_field: key, "status": status, "message": _ITEM_MESSAGES[status]}
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
            return _envelope(5, "Field md5 is required and must be 1 to 255 characters.")
        self.stats["md5_checks"] += 1
        found = await self.store.by_md5s([md5], visible_at_ms=self._now_ms())
        return self._single(found.get(md5), by_md5=True, detailed=False)

    async def _list(self, payload: Any, key_field: str) -> Response:
        if not isinstance(payload, list) or not payload or not all(isinstance(k, str) for k in payload):
            return _envelope(5, f"Request body must be a list of {key_field} strings.")
        if len(payload) > 50:
            return _envelope(5, f"The maximum number of {key_field} per request is 50.")
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
        return _envelope(None, _MSG_LIST, items)

    async def _by_md5_list(self, payload: Any) -> Response:
        return await self._list(payload, "md5")

    async def _by_hash_list(self, payload: Any) -> Response:
        return await self._list(payload, "hash")

    async def _by_hash(self, payload: Any) -> Response:
        tx_hash = payload.get("hash") if isinstance(payload, dict) else None
        if not isinstance(tx_hash, str) or not tx_hash:
            return _envelope(5, "Field hash is required.")
        self.stats["hash_checks"] += 1
        found = self._drifted(await self.store.by_hashes([tx_hash], visible_at_ms=self._now_ms()))
        return self._single(found.get(tx_hash), by_md5=False, detailed=True)

    async def _by_short_hash(self, payload: Any) -> Response:
        if not isinstance(payload, dict):
            return _envelope(5, "Fields hash, amount and currency are required.")
        short, amount, currency = payload.get("hash"), payload.get("amount"), payload.get("currency")
        if not isinstance(short, str) or not _SHORT_HASH.match(short):
            return _envelope(5, "Field hash must be the 8-character short hash.")
        if currency not in ("KHR", "USD"):
            return _envelope(5, "Field currency must be KHR or USD.")
        try:
            value = _decimal(amount)
        except InvalidInput:
            return _envelope(5, "Field amount must be a number.")
        t = await self.store.by_short_hash(short.lower(), value, currency, visible_at_ms=self._now_ms())
        return self._single(t, by_md5=False, detailed=True)

    async def _by_ref(self, payload: Any, field: str) -> Response:
        ref = payload.get(field) if isinstance(payload, dict) else None
        if not isinstance(ref, str) or not 1 <= len(ref) <= 255:
            return _envelope(5, f"Field {field} is required.")
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
            return _envelope(5, "Field qr is required.")
        source = payload.get("sourceInfo")
        if source is not None:
            fields = ("appIconUrl", "appName", "appDeepLinkCallback")
            if not isinstance(source, dict) or not all(isinstance(source.get(f), str) and source.get(f) for f in fields):
                return _envelope(5, "sourceInfo needs appIconUrl, appName and appDeepLinkCallback.")
        try:
            read = _read_qr(qr, now_ms=self._now_ms(), allow_expired=False)
        except InvalidInput as exc:
            return _envelope(5, f"Invalid KHQR: {exc.message}")
        if read["static"]:
            return _envelope(2, _MSG_STATIC)
        link = f"https://bakongsit.page.link/sbx{read['md5'][:12]}"
        return _envelope(None, "Getting deep link successfully", {"shortLink": link})

    async def _account(self, payload: Any) -> Response:
        account = payload.get("accountId") if isinstance(payload, dict) else None
        if not isinstance(account, str) or not account:
            return _envelope(5, "Field accountId is required.")
        if len(account) > 32 or not _ACCOUNT_ID.match(account):
            return _envelope(12, "Account ID is invalid")
        name = account.partition("@")[0].lower()
        if name.startswith(("unknown", "missing")):
            return _envelope(11, "Account ID not found")
        frozen = name.startswith("frozen")
        data = {
            "bakongAccountId": account,
            "fullName": name.replace("_", " ").replace(".", " ").title(),
            "accountStatus": "ACTIVATED",
            "kycStatus": "FULL_KYC",
            "canReceive": not frozen,
            "frozen": frozen,
        }
        return _envelope(None, "Account ID exists", data)

    async def _renew(self, payload: Any) -> Response:
        email = payload.get("email") if isinstance(payload, dict) else None
        if not isinstance(email, str) or not email or len(email) > 30:
            return _envelope(5, "Field email is required and must be at most 30 characters.")
        if email.strip().lower() != self.email.strip().lower():
            return _envelope(10, "Not registered yet")
        token = await self.renew_token()
        return _envelope(None, "Token has been issued", {"token": token})

    # --- the request pipeline ---------------------------------------------------------------------

    async def _serve(
        self,
        endpoint: Endpoint,
        handler: Handler,
        auth: Auth,
        header: str | None,
        read_body: Callable[[], Awaitable[bytes]],
    ) -> Response:
        faults = self.faults
        stats = self.stats
        stats[endpoint.label] += 1
        stats["total"] += 1
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if (
            faults.geo_blocked
            or (faults.bulk_blocked and endpoint is Endpoint.MD5_LIST)
            or (faults.hash_list_blocked and endpoint is Endpoint.HASH_LIST)
        ):
            return _html(403)
        rng = self.rng
        if faults.timeout_rate and rng.random() < faults.timeout_rate:
            await asyncio.sleep(faults.hang_seconds)
            return _html(504)
        if faults.error_rate and rng.random() < faults.error_rate:
            return _html(faults.server_error_status)
        if faults.rate_limit_rate and rng.random() < faults.rate_limit_rate:
            return _html(429, headers={"retry-after": str(faults.retry_after_seconds)})
        if faults.html_rate and rng.random() < faults.html_rate:
            return _html(200, _MAINTENANCE)
        if faults.malformed_rate and rng.random() < faults.malformed_rate:
            return Response(_MALFORMED[faults.malformed_kind], media_type=_JSON)
        if auth != "none":
            if header is not None or auth == "required":
                if faults.token_expired or not self._authorized(header):
                    return _envelope(6, _MSG_UNAUTHORIZED, status=401)
                if faults.daily_quota:
                    key = (self._token, bakong_day(self.clock.now()))
                    used = self._quota_used.get(key, 0) + 1
                    self._quota_used[key] = used
                    if used > faults.daily_quota:
                        return _envelope(
                            17, f"Daily request limit of {faults.daily_quota} exceeded. Please try again tomorrow."
                        )
        if faults.force_error_code is not None:
            return _envelope(faults.force_error_code, faults.force_error_message)
        body = await read_body()
        try:
            payload = json.loads(body, parse_float=Decimal) if body.strip() else None
        except (ValueError, UnicodeDecodeError):
            return _envelope(5, "Request body must be JSON.", status=400)
        return await handler(payload)

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

    def _routes(self) -> list[Route]:
        routes = [
            Route(ep.value, self._bind(ep, handler, auth), methods=["POST"]) for ep, handler, auth in self._v1_table()
        ]
        routes += [
            Route("/sandbox/pay", self._control_pay, methods=["POST"]),
            Route("/sandbox/transfers", self._control_transfers, methods=["GET"]),
            Route("/sandbox/faults", self._control_faults, methods=["GET", "POST"]),
            Route("/sandbox/stats", self._control_stats, methods=["GET"]),
            Route("/sandbox/stats/reset", self._control_stats_reset, methods=["POST"]),
            Route("/sandbox/info", self._control_info, methods=["GET"]),
        ]
        return routes

    def _bind(self, endpoint: Endpoint, handler: Handler, auth: Auth) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await self._serve(endpoint, handler, auth, request.headers.get("authorization"), request.body)

        serve.__name__ = endpoint.label
        return serve

    # --- control paths ----------------------------------------------------------------------------

    async def _control_pay(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}", parse_float=Decimal)
        except ValueError:
            return _control_error("body must be JSON", 400)
        if not isinstance(body, dict):
            return _control_error("body must be a JSON object", 400)
        known = {"qr", "md5", "amount", "currency", "to_account", "wrong_amount", "late_seconds",
                 "paid_at_ms", "from_account", "fail", "description"}
        unknown = sorted(set(body) - known)
        if unknown:
            return _control_error(f"unknown field {unknown[0]!r}")
        try:
            transfer = await self.pay(**body)
        except BakongConsoleError as exc:
            return _control_error(exc.message)
        except (TypeError, ValueError) as exc:
            return _control_error(str(exc))
        return Response(_dumps({"transfer": self._transfer_json(transfer)}), media_type=_JSON)

    def _transfer_json(self, t: SandboxTransfer) -> dict[str, Any]:
        record = t.to_record()
        record["short_hash"] = t.short_hash
        record["visible"] = t.created_ms <= self._now_ms()
        return record

    async def _control_transfers(self, request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            return _control_error("limit must be an integer", 400)
        transfers = await self.store.recent(max(0, min(limit, 1000)))
        return Response(_dumps({"transfers": [self._transfer_json(t) for t in transfers]}), media_type=_JSON)

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = json.loads(await request.body() or b"{}")
            except ValueError:
                return _control_error("body must be JSON", 400)
            if not isinstance(changes, dict):
                return _control_error("body must be a JSON object", 400)
            base = SandboxFaults() if changes.pop("reset", False) else self.faults
            try:
                self.faults = base.updated(changes)
            except InvalidInput as exc:
                return _control_error(exc.message)
        return Response(_dumps({"faults": self.faults.to_dict()}), media_type=_JSON)

    def stats_snapshot(self) -> dict[str, Any]:
        counts = dict(self.stats)
        requests = {ep.label: counts.get(ep.label, 0) for ep in Endpoint}
        return {
            "requests": requests,
            "total": counts.get("total", 0),
            "md5_checks": counts.get("md5_checks", 0),
            "hash_checks": counts.get("hash_checks", 0),
            "payments": counts.get("payments", 0),
        }

    async def _control_stats(self, request: Request) -> Response:
        return Response(_dumps(self.stats_snapshot()), media_type=_JSON)

    async def _control_stats_reset(self, request: Request) -> Response:
        self.stats.clear()
        return Response(_dumps(self.stats_snapshot()), media_type=_JSON)

    async def _control_info(self, request: Request) -> Response:
        info = {
            "environment": "sandbox",
            "email": self.email,
            "token_fingerprint": token_fingerprint(self._token),
            "token_expires_at": self._token_exp,
            "now": self.clock.now().isoformat(),
        }
        return Response(_dumps(info), media_type=_JSON)


class SandboxApp:
    """The sandbox's ASGI entry point: Bakong's POST paths go straight to their handlers (the bulk
    path must stay cheap), everything else (control paths, 404s, 405s) through Starlette."""

    def __init__(self, sandbox: BakongSandbox) -> None:
        self.sandbox = sandbox
        self.router = Starlette(routes=sandbox._routes())
        self.router.state.sandbox = sandbox
        self.state = self.router.state
        self._v1 = {ep.value: (ep, handler, auth) for ep, handler, auth in sandbox._v1_table()}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self._v1.get(scope["path"])
            if route is not None:
                endpoint, handler, auth = route
                header = None
                for name, value in scope["headers"]:
                    if name == b"authorization":
                        header = value.decode("latin-1")
                        break

                async def read_body() -> bytes:
                    chunks = []
                    while True:
                        message = await receive()
                        if message["type"] != "http.request":
                            break
                        chunks.append(message.get("body", b""))
                        if not message.get("more_body", False):
                            break
                    return b"".join(chunks)

                response = await self.sandbox._serve(endpoint, handler, auth, header, read_body)
                await response(scope, receive, send)
                return
        await self.router(scope, receive, send)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise InvalidInput("amount must be a number", field="amount")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise InvalidInput(f"amount {value!r} is not a number", field="amount") from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput(f"amount {value!r} must be a positive number", field="amount")
    return amount


def _read_qr(qr: str, *, now_ms: int, allow_expired: bool) -> dict[str, Any]:
    """A KHQR as a banking app reads it: receiver, currency, amount, expiry; refuses invalid ones."""
    from engine import khqr  # imported here: the bulk path never needs it

    try:
        khqr.validate(qr, now_ms=now_ms)
    except khqr.KHQRError as exc:
        if not (allow_expired and exc.code == 46):
            raise InvalidInput(f"a bank app refuses this KHQR: {exc.message}", field="qr") from None
    fields = khqr.decode(qr)
    currency = {"116": "KHR", "840": "USD"}.get(fields.get("transaction_currency") or "")
    if currency is None:
        raise InvalidInput("a bank app refuses this KHQR: unsupported currency", field="qr")
    amount_text = fields.get("transaction_amount")
    static = fields.get("point_of_initiation_method") != "12" or not amount_text
    expiration = fields.get("expiration_timestamp")
    return {
        "md5": khqr.md5(qr),
        "to_account": fields.get("bakong_account_id") or "",
        "currency": currency,
        "amount": None if static else Decimal(amount_text),
        "static": static,
        "expires_ms": int(expiration) if expiration and expiration.isdigit() else None,
    }


def create_sandbox_app(
    store: TransferStore,
    *,
    clock: Clock,
    token: str | None = None,
    email: str = "merchant@example.com",
    faults: SandboxFaults | None = None,
    rng: random.Random | None = None,
    secret: bytes | None = None,
    on_token_renewed: Callable[[str], Awaitable[None]] | None = None,
) -> SandboxApp:
    """The sandbox as an ASGI app; its ``BakongSandbox`` is ``app.state.sandbox``.

    ``token``: the token it accepts (None: it issues its own 90-day HS256 JWT, read it from
    ``app.state.sandbox.token``). ``email``: the registered address ``renew_token`` accepts.
    ``on_token_renewed`` is awaited with each new token so the caller can persist it.
    """
    return BakongSandbox(
        store,
        clock=clock,
        token=token,
        email=email,
        faults=faults,
        rng=rng,
        secret=secret,
        on_token_renewed=on_token_renewed,
    ).app
