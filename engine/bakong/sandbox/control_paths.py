"""The sandbox's control paths (not part of Bakong): pay, transfers, faults, stats, info.

- ``POST /sandbox/pay``: the pretend bank app's ``pay`` (see ``bank_app``) with a JSON body;
  unknown fields are refused.
- ``GET /sandbox/transfers?limit=N``, ``GET|POST /sandbox/faults`` (``{"reset": true}`` clears),
  ``GET /sandbox/stats``, ``POST /sandbox/stats/reset``, ``GET /sandbox/info``.

Errors are ``{"error": …}`` with 400 (not JSON) or 422 (refused). ``SandboxControl`` (``control``)
is the client for these paths.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine.bakong.environments import Endpoint
from engine.bakong.sandbox.endpoints import BakongEndpoints
from engine.bakong.sandbox.faults import SandboxFaults
from engine.bakong.sandbox.store import SandboxTransfer
from engine.bakong.sandbox.wire import JSON, control_error, dumps
from engine.bakong.token import token_fingerprint
from engine.errors import BakongConsoleError, InvalidInput

__all__ = ["ControlPaths"]


class ControlPaths(BakongEndpoints):
    """The ``/sandbox/...`` handlers: drive the sandbox and read what it did."""

    async def _control_pay(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}", parse_float=Decimal)
        except ValueError:
            return control_error("body must be JSON", 400)
        if not isinstance(body, dict):
            return control_error("body must be a JSON object", 400)
        known = {"qr", "md5", "amount", "currency", "to_account", "wrong_amount", "late_seconds",
                 "paid_at_ms", "from_account", "fail", "description"}
        unknown = sorted(set(body) - known)
        if unknown:
            return control_error(f"unknown field {unknown[0]!r}")
        try:
            transfer = await self.pay(**body)
        except BakongConsoleError as exc:
            return control_error(exc.message)
        except (TypeError, ValueError) as exc:
            return control_error(str(exc))
        return Response(dumps({"transfer": self._transfer_json(transfer)}), media_type=JSON)

    def _transfer_json(self, t: SandboxTransfer) -> dict[str, Any]:
        record = t.to_record()
        record["short_hash"] = t.short_hash
        record["visible"] = t.created_ms <= self._now_ms()
        return record

    async def _control_transfers(self, request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            return control_error("limit must be an integer", 400)
        transfers = await self.store.recent(max(0, min(limit, 1000)))
        return Response(dumps({"transfers": [self._transfer_json(t) for t in transfers]}), media_type=JSON)

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = json.loads(await request.body() or b"{}")
            except ValueError:
                return control_error("body must be JSON", 400)
            if not isinstance(changes, dict):
                return control_error("body must be a JSON object", 400)
            base = SandboxFaults() if changes.pop("reset", False) else self.faults
            try:
                self.faults = base.updated(changes)
            except InvalidInput as exc:
                return control_error(exc.message)
        return Response(dumps({"faults": self.faults.to_dict()}), media_type=JSON)

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
        return Response(dumps(self.stats_snapshot()), media_type=JSON)

    async def _control_stats_reset(self, request: Request) -> Response:
        self.stats.clear()
        return Response(dumps(self.stats_snapshot()), media_type=JSON)

    async def _control_info(self, request: Request) -> Response:
        info = {
            "environment": "sandbox",
            "email": self.email,
            "token_fingerprint": token_fingerprint(self._token),
            "token_expires_at": self._token_exp,
            "now": self.clock.now().isoformat(),
        }
        return Response(dumps(info), media_type=JSON)
