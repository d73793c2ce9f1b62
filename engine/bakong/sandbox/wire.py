"""What the sandbox answers with, byte for byte as Bakong does.

JSON envelopes (``responseCode``, ``responseMessage``, ``errorCode``, ``data``) with Bakong's own
messages, nginx's bare HTML error pages (403, 429, 5xx), the maintenance page served with 200, the
malformed bodies the ``malformed_rate`` fault sends, and the control paths' ``{"error": …}``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

__all__ = [
    "ITEM_MESSAGES",
    "JSON",
    "MAINTENANCE_PAGE",
    "MALFORMED_BODIES",
    "MSG_FAILED",
    "MSG_FOUND",
    "MSG_LIST",
    "MSG_NOT_FOUND",
    "MSG_STATIC",
    "MSG_UNAUTHORIZED",
    "control_error",
    "dumps",
    "envelope",
    "html",
]

JSON = "application/json"

MSG_FOUND = "Getting transaction successfully."
MSG_LIST = "Getting transaction data successfully."
MSG_NOT_FOUND = "Transaction could not be found. Please check and try again."
MSG_STATIC = "Sorry, the system does not support static QR code."
MSG_FAILED = "Transaction failed."
MSG_UNAUTHORIZED = "Unauthorized, not yet requested for token or code invalid"
ITEM_MESSAGES = {
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
MAINTENANCE_PAGE = b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>Bakong is under maintenance</h1></body></html>"
MALFORMED_BODIES = {
    "truncated": b'{"responseCode":0,"responseMessage":"Getting transaction successfully.","errorCode":nu',
    "empty": b"",
    "not-envelope": b'{"status":"ok","result":[]}',
}


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def envelope(code: int | None, message: str, data: Any = None, *, status: int = 200) -> Response:
    body = {"responseCode": 0 if code is None else 1, "responseMessage": message, "errorCode": code, "data": data}
    return Response(dumps(body), status_code=status, media_type=JSON)


def html(status: int, body: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
    merged = {"server": "nginx"}
    merged.update(headers or {})
    return Response(body if body is not None else _nginx(status, _REASONS.get(status, "Error")),
                    status_code=status, media_type="text/html", headers=merged)


def control_error(message: str, status: int = 422) -> Response:
    return Response(dumps({"error": message}), status_code=status, media_type=JSON)
