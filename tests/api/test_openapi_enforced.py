"""The OpenAPI document says what validation enforces: requests the API refuses with a 422 are
also outside the schema it publishes (a generated client must not be able to build them)."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    # References in the document are "#/components/...": keep the components beside the schema.
    return jsonschema_rs.validator_for({**schema, "components": document["components"]})


def _parameter(document: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    for parameter in document["paths"][path][method]["parameters"]:
        if parameter["name"] == name:
            return parameter["schema"]
    raise AssertionError(f"{method} {path} has no parameter {name!r}")


def _body(document: dict[str, Any], path: str) -> dict[str, Any]:
    return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "where"),
    [
        ("get", "/api/events", {"type": ""}, None, ("param", "type", [""])),
        ("get", "/api/payments/history", {"amount": "5e-324", "currency": "USD"}, None, ("param", "amount", "5e-324")),
        ("post", "/api/payments/create", None, {"amount": "0", "currency": "USD"}, ("body",)),
        ("post", "/api/payments/create", None, {"amount": "0.00", "currency": "KHR"}, ("body",)),
        ("post", "/api/payments/monitor", None, {"md5": "0" * 32, "payment_id": "pay_1"}, ("body",)),
        ("post", "/api/payments/monitor", None, {}, ("body",)),
    ],
    ids=["empty-event-type", "tiny-amount", "zero-amount", "zero-amount-with-decimals", "md5-and-payment-id", "neither"],
)
async def test_what_the_api_refuses_the_schema_forbids(
    app: FastAPI, client: httpx.AsyncClient, auth: dict[str, str], method: str, path: str,
    params: dict[str, str] | None, body: dict[str, Any] | None, where: tuple[Any, ...],
) -> None:  # fmt: skip
    response = await client.request(method.upper(), path, params=params, json=body, headers=auth)
    assert response.status_code == 422, response.text
    document = app.openapi()
    if where[0] == "param":
        _, name, value = where
        schema, instance = _parameter(document, path, method, name), value
        # A query value arrives as text; a number-typed parameter reads it as a number.
        if isinstance(value, str) and not _validator(document, schema).is_valid(value):
            return
        instance = float(value) if isinstance(value, str) else value
    else:
        schema, instance = _body(document, path), body
    assert not _validator(document, schema).is_valid(instance), f"the schema of {path} allows {instance!r}"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/payments/create", {"amount": "0.01", "currency": "USD"}),
        ("/api/payments/create", {"amount": 40000, "currency": "KHR"}),
        ("/api/payments/create", {"amount": "0100", "currency": "KHR"}),
        ("/api/payments/monitor", {"md5": "0" * 32}),
        ("/api/payments/monitor", {"payment_id": "pay_1", "md5": None}),
    ],
)
async def test_what_the_api_accepts_the_schema_still_allows(app: FastAPI, path: str, body: dict[str, Any]) -> None:
    document = app.openapi()
    assert _validator(document, _body(document, path)).is_valid(body)
