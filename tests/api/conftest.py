"""API fixtures: the app on the whole engine (SQLite and PostgreSQL, manual clock, built-in sandbox),
an httpx client over ASGI, and API keys.

Override API settings per test with ``@pytest.mark.parametrize("api_overrides", [{...}])``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bakong_console.api import create_app
from engine.config import Settings
from engine.records import Actor, ActorType
from engine.runtime import Engine
from tests.support.settings import make_settings

CLIENT_IP = "203.0.113.7"
ADMIN = Actor(ActorType.CLI, "test-admin")


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def engine_settings(db_url: str, api_overrides: dict[str, Any]) -> Settings:
    # no Bakong client retries: a retry would sleep on the manual clock inside a request
    return make_settings(db_url, api=api_overrides, bakong={"max_retries": 0})


@pytest.fixture
async def app(engine: Engine) -> AsyncIterator[FastAPI]:
    application = create_app(engine)
    try:
        yield application
    finally:
        await application.state.api.aclose()


def client_for(app: FastAPI, ip: str = CLIENT_IP, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000), **kwargs)
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


KeyFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def make_key(engine: Engine) -> KeyFactory:
    """``await make_key("name", scopes=[...])`` -> the plaintext key (every scope by default)."""
    counter = iter(range(1000))

    async def make(name: str | None = None, scopes: list[str] | None = None) -> str:
        _, plaintext = await engine.api_keys.create(name or f"backend-{next(counter)}", scopes, actor=ADMIN)
        return plaintext

    return make


@pytest.fixture
async def key(make_key: KeyFactory) -> str:
    return await make_key("main-backend")


@pytest.fixture
def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}
