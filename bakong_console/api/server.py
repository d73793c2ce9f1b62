"""How to serve the API with uvicorn inside the engine's event loop (``bakong-console serve``).

``uvicorn_config`` turns uvicorn's own proxy-header handling off: uvicorn would otherwise
believe ``X-Forwarded-For`` from 127.0.0.1 and rewrite the client address before the API sees
it, letting a local client choose the address that IP blocks and the audit log record. The API
applies ``api.trusted_proxies`` itself (``bakong_console.api.security.ClientAddress``).
"""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI

from engine.config import ApiSettings

__all__ = ["uvicorn_config"]


def uvicorn_config(app: FastAPI, settings: ApiSettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn Config for ``create_app(engine)`` on ``settings.host:settings.port``."""
    options: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        access_log=False,
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)
