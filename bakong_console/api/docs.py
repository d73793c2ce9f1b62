"""The interactive API docs (``/api/docs``): Swagger UI served from this installation, never a CDN.

FastAPI's default page loads Swagger UI's script and style sheet from a CDN, so it is blank on a
machine without internet access (a shop's back office, a locked-down server). Here the same page
points at the assets the ``fastapi-offline`` package ships (a current Swagger UI, which reads
OpenAPI 3.1), served under ``/api/docs/assets/``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = ["DOCS_ASSETS_URL", "DOCS_URL", "mount_docs", "swagger_ui_assets"]

DOCS_URL = "/api/docs"
DOCS_ASSETS_URL = "/api/docs/assets"


def swagger_ui_assets() -> Path:
    """The directory holding ``swagger-ui-bundle.js``, ``swagger-ui.css`` and ``favicon.png``."""
    return Path(str(files("fastapi_offline") / "static"))


def mount_docs(app: FastAPI, *, openapi_url: str, title: str) -> None:
    """Serve the Swagger UI page at ``DOCS_URL`` and its assets beside it (no key needed: the
    document itself is public, and trying an operation asks for the key in the page)."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=swagger_ui_assets()), name="api-docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} — docs",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
        )
