"""Schemathesis against our own OpenAPI document, in-process: valid and invalid requests to every
operation must never answer a 5xx, and every answer must match the document (status code,
content type, headers, body schema); invalid requests must be refused with a 4xx.

Hypothesis drives the cases in a worker thread; each request is sent through the app on the
test's event loop (where the engine and its database connections live).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine.runtime import Engine
from tests.api.conftest import ADMIN, client_for
from tests.api.test_payments_api import create

MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance, response_schema_conformance]


def _httpx_kwargs(case: schemathesis.Case, key: str) -> dict[str, Any]:
    sent = case.as_transport_kwargs(base_url="http://api.test")
    out: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "params": sent.get("params"),
        "headers": {**(sent.get("headers") or {}), "X-API-Key": key},
    }
    if "json" in sent:
        out["json"] = sent["json"]
    elif sent.get("data") is not None:
        out["content"] = sent["data"]
    return out


@pytest.mark.parametrize("api_overrides", [{"rate_limit_per_minute": 1_000_000, "monitor_max_seconds": 0.0}])
async def test_no_5xx_and_no_schema_violation(app: FastAPI, key: str, engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    await engine.subscriptions.add_plan("basic", "Basic", "20000", "KHR", 30, 0, actor=ADMIN)
    schema = schemathesis.openapi.from_dict(app.openapi())
    async with client_for(app) as client:
        await create(client, {"X-API-Key": key}, reference="fuzz-seed")
        assert (await client.post("/api/subscriptions", json={"user_id": "u-1", "plan": "basic"}, headers={"X-API-Key": key})).status_code == 201

        def send(case: schemathesis.Case) -> httpx.Response:
            future = asyncio.run_coroutine_threadsafe(client.request(**_httpx_kwargs(case, key)), loop)
            return future.result(timeout=60)

        def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode) -> None:
            checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

            @hypothesis_settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                case.validate_response(send(case), checks=checks)

            run()

        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 17  # with the two card images (qr.svg, qr.png)
        for operation in operations:
            has_inputs = any(True for _ in operation.iter_parameters()) or bool(operation.body)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_inputs else (GenerationMode.POSITIVE,):
                await asyncio.to_thread(fuzz, operation, mode)
