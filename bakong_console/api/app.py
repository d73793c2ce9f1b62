"""``create_app(engine)``: the FastAPI application the main backend calls.

The app is handed an open ``Engine`` and never opens one; ``bakong-console serve`` runs it with
uvicorn in the engine's event loop (``bakong_console.api.server.uvicorn_config``). The OpenAPI
document is at ``/api/openapi.json`` and the interactive docs at ``/api/docs``.

The payer's pages (``bakong_console.web``: the hosted checkout under ``/pay``) are mounted in the
same app; their context is ``app.state.web``, closed (``close()``) before the server stops.

State lives in ``app.state.api`` (an ``ApiContext``): the engine, the API settings, the API key
service, the rate limiter, the metrics and the client-address resolver. Call
``await app.state.api.aclose()`` when the server stops (it closes the Redis connection pool).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from bakong_console import __version__
from bakong_console.api.docs import mount_docs
from bakong_console.api.edge import ApiEdge
from bakong_console.api.metrics import ApiMetrics
from bakong_console.api.problems import FieldError, Problem, install_problem_handlers
from bakong_console.api.ratelimit import Limiter, build_limiter
from bakong_console.api.routes import cards, payments, subscriptions, system
from bakong_console.api.routing import ApiRoute, StaticPaths
from bakong_console.api.security import SECURITY_SCHEMES, ClientAddress, required_scope
from bakong_console.web.app import make_context, web_mounts
from engine.config import ApiSettings
from engine.runtime import Engine
from engine.services.api_keys import ApiKeyService
from engine.services.health import HealthReadout

__all__ = ["ApiContext", "create_app", "native_telemetry"]

DESCRIPTION = """\
Payments by KHQR on the Bakong rail, subscriptions on 30-day cycles, and the events feed.

**Authentication**: an API key (`bakong-console keys create NAME --scopes ...`) in the `X-API-Key`
header or as `Authorization: Bearer <key>`. Scopes: `payments:write`, `payments:read`,
`subscriptions:write`, `subscriptions:read`, `events:read`.

**Limits**: `api.rate_limit_per_minute` requests per key (429 with `Retry-After`); an address that
fails authentication `api.auth_failures_before_block` times is blocked for `api.block_seconds`.

**Responses**: `{"data": ..., "meta": {"request_id": ...}}`; errors are RFC 9457 problem documents
(`application/problem+json`) whose `type` names the kind of error (`/api/problems/<kind>`).
"""


@dataclass
class ApiContext:
    engine: Engine
    settings: ApiSettings
    keys: ApiKeyService
    limiter: Limiter
    metrics: ApiMetrics
    addresses: ClientAddress
    readout: HealthReadout

    async def aclose(self) -> None:
        await self.limiter.aclose()


def create_app(engine: Engine, *, limiter: Limiter | None = None) -> FastAPI:
    """The API on this engine. ``limiter`` replaces the one ``api.rate_limit_backend`` names."""
    settings = engine.settings.api
    telemetry = native_telemetry()
    app = FastAPI(
        title="bakong-console API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/api/openapi.json",
        docs_url=None,  # served from local assets below (mount_docs), not a CDN
        redoc_url=None,
        telemetry=telemetry,
    )
    metrics = ApiMetrics()
    app.state.clock = engine.clock
    app.state.api = ApiContext(
        engine=engine,
        settings=settings,
        keys=engine.api_keys,
        limiter=limiter
        or build_limiter(
            settings.rate_limit_backend,
            settings.redis_url,
            engine.clock,
            failures_before_block=settings.auth_failures_before_block,
            block_seconds=settings.block_seconds,
            prefix=settings.redis_key_prefix,
        ),
        metrics=metrics,
        addresses=ClientAddress(settings.trusted_proxies),
        readout=HealthReadout(engine.storage),
    )
    app.router.route_class = ApiRoute  # routes added to the app itself are dispatched alike
    install_problem_handlers(app)
    app.add_middleware(ApiEdge, max_body_bytes=settings.max_body_bytes, metrics=metrics)
    routers = (payments.router, cards.router, subscriptions.router, system.router)
    for router in routers:
        # The routes themselves, not the router: an included router is matched route by route
        # twice per request (once to match, once to dispatch), a plain route once.
        app.router.routes.extend(router.routes)
    # The payer's pages (/pay): plain HTML, their own headers and error pages, no API key.
    app.state.web = make_context(engine, client_address=app.state.api.addresses.of)
    app.router.routes.extend(web_mounts(app.state.web))
    if not any(telemetry.values()):
        app.router.routes.insert(0, StaticPaths(app.router.routes))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (FieldError, Problem):
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                body.pop("$defs", None)
                components[model.__name__] = body
            _document_security(schema, [route for router in routers for route in router.routes])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    mount_docs(app, openapi_url="/api/openapi.json", title=app.title)
    return app


#: The OpenTelemetry API's stand-ins for the global providers until an SDK sets them (the test
#: FastAPI itself makes).
_UNSET_PROVIDERS = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)


def native_telemetry() -> dict[str, bool]:
    """FastAPI's native OpenTelemetry, per signal (tracing, metrics, logs): on where an SDK has
    set that signal's global provider when the app is made, as ``opentelemetry-instrument`` does
    before ``serve`` starts. FastAPI would otherwise look the three providers up again on every
    request to learn that none is set: 14 µs, a quarter of an unkeyed ping's CPU."""
    from opentelemetry import _logs, metrics, trace

    def configured(provider: object) -> bool:
        return (type(provider).__module__, type(provider).__qualname__) not in _UNSET_PROVIDERS

    return {
        "tracing": configured(trace.get_tracer_provider()),
        "metrics": configured(metrics.get_meter_provider()),
        "logs": configured(_logs.get_logger_provider()),
    }


def _scope_of(dependant: Dependant) -> str | None:
    for dependency in dependant.dependencies:
        scope = required_scope(dependency.call) or _scope_of(dependency)
        if scope is not None:
            return scope
    return None


def _document_security(schema: dict[str, Any], routes: list[BaseRoute]) -> None:
    """Every route that requires a scope accepts either key scheme, and says which scope."""
    schema["components"]["securitySchemes"] = SECURITY_SCHEMES
    either = [{name: []} for name in SECURITY_SCHEMES]
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        scope = _scope_of(route.dependant)
        if scope is None:
            continue
        for method in route.methods:
            operation = schema["paths"][route.path_format][method.lower()]
            operation["security"] = either
            operation["description"] = f"{operation.get('description', '')}\n\nRequires an API key with the `{scope}` scope.".strip()
