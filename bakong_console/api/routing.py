"""``ApiRoute``: how the API's routes are dispatched: exact-JSON bodies, and a direct call for
routes that need no dependency solving.

Bodies: JSON numbers arrive as ``Decimal`` (``12.35`` is exactly 12.35), and ``NaN`` and
``Infinity`` are refused (Python's json module would otherwise accept them).

Static paths: FastAPI finds a request's route by trying the routes in turn (a path regex per
route: 22 µs to reach the 24th). ``StaticPaths``, put first in the app's routes, finds a route
whose path has no parameter by one dict lookup on (path, method), where no earlier route
would take that request; every other request falls through to the walk.

Direct call: FastAPI solves every request's dependencies with generic machinery (a dependency
cache, scope bookkeeping, exit stacks, telemetry hooks) that cost a keyed status read about a
tenth of its CPU. A route without a body whose only dependencies are ``security.require``
checks (the keyed GETs: status, history, the events feed, the cards) is called directly: the key
check first (its refusals come first, as FastAPI orders them), then the path, query, header and
cookie parameters validated by FastAPI's own ``request_params_to_args`` (the same values, the
same 422 errors), then the endpoint. Any other route, or an app with ``dependency_overrides``,
goes through FastAPI's handler.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from bakong_console.api.security import required_scope

__all__ = ["ApiRoute", "StaticPaths"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a number JSON allows", name, 0)


class _ExactJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError("the body is not UTF-8", "", exc.start) from None
            self._json = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
        return self._json


def _answers_response(call: Callable[..., Any]) -> bool:
    try:
        returns = typing.get_type_hints(call).get("return")
    except Exception:  # an annotation that does not resolve: let FastAPI handle the route
        return False
    return isinstance(returns, type) and issubclass(returns, Response)


def _key_check(dependency: Dependant) -> bool:
    """A ``require`` dependency: an async call of the request alone."""
    return (
        required_scope(dependency.call) is not None
        and dependency.request_param_name is not None
        and not dependency.dependencies
        and not (dependency.path_params or dependency.query_params or dependency.header_params)
        and not (dependency.cookie_params or dependency.body_params)
    )


def _direct(dependant: Dependant) -> bool:
    """Whether FastAPI's dependency solving can be skipped for this endpoint."""
    return (
        dependant.call is not None
        and inspect.iscoroutinefunction(dependant.call)
        and _answers_response(dependant.call)
        and not dependant.body_params
        and all(_key_check(d) for d in dependant.dependencies)
        and dependant.websocket_param_name is None
        and dependant.http_connection_param_name is None
        and dependant.response_param_name is None
        and dependant.background_tasks_param_name is None
        and dependant.security_scopes_param_name is None
    )


class ApiRoute(APIRoute):
    """A route of the API: exact-JSON bodies; a direct call when nothing needs solving."""

    #: Whether requests skip FastAPI's dependency solving (set when the handler is built).
    direct = False

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        self.direct = _direct(self.dependant)
        if self.direct:
            return self._direct_handler(handler)
        if self.body_field is None:
            return handler

        async def exact_handler(request: Request) -> Response:
            return await handler(_ExactJSONRequest(request.scope, request.receive))

        return exact_handler

    def _direct_handler(self, solving: Handler) -> Handler:
        dependant = self.dependant
        call = typing.cast(Callable[..., Coroutine[Any, Any, Response]], dependant.call)
        checks = [(d.name, typing.cast(Callable[..., Any], d.call), d.request_param_name) for d in dependant.dependencies]
        request_name = dependant.request_param_name
        path, query, header, cookie = dependant.path_params, dependant.query_params, dependant.header_params, dependant.cookie_params

        async def direct_handler(request: Request) -> Response:
            if request.app.dependency_overrides:
                return await solving(request)
            values: dict[str, Any] = {}
            for name, check, param in checks:
                principal = await check(**{param: request})
                if name is not None:
                    values[name] = principal
            errors: list[Any] = []
            for fields, received in (
                (path, request.path_params if path else None),
                (query, request.query_params if query else None),
                (header, request.headers if header else None),
                (cookie, request.cookies if cookie else None),
            ):
                if fields:
                    found, wrong = request_params_to_args(fields, received)  # type: ignore[arg-type]
                    values.update(found)
                    errors += wrong
            if errors:
                raise RequestValidationError(errors)
            if request_name is not None:
                values[request_name] = request
            return await call(**values)

        return direct_handler


class StaticPaths(BaseRoute):
    """The routes of parameterless paths by (path, method): the app's first route.

    A (path, method) is in the table only when the first route of the list that fully matches
    it is that path's route, so the table answers what the walk would have; it is rebuilt
    when routes are added. Anything else (another path or method, a websocket, an app served
    under a root path) matches nothing here, and FastAPI walks the routes as before. Not used
    with FastAPI's native telemetry on: it labels a request with the route the walk selected.
    """

    def __init__(self, routes: list[BaseRoute]) -> None:
        self._routes = routes
        self._built_for: tuple[int, int] = (-1, 0)
        self._table: dict[tuple[str, str], APIRoute] = {}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get("root_path"):
            return Match.NONE, {}
        routes = self._routes
        if (len(routes), id(routes[-1])) != self._built_for:
            self._rebuild()
        route = self._table.get((scope["path"], scope["method"]))
        if route is None:
            return Match.NONE, {}
        return route.matches(scope)  # FULL: its endpoint, path parameters and itself as "route"

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["route"].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # the routes themselves answer, later in the list

    def _rebuild(self) -> None:
        table: dict[tuple[str, str], APIRoute] = {}
        earlier: list[BaseRoute] = []
        for route in self._routes:
            if route is self:
                continue
            if isinstance(route, APIRoute) and not route.param_convertors:
                for method in route.methods or ():
                    probe = {"type": "http", "path": route.path, "root_path": "", "method": method, "path_params": {}, "headers": []}
                    if all(other.matches(probe)[0] is not Match.FULL for other in earlier):
                        table.setdefault((route.path, method), route)
            earlier.append(route)
        self._table = table
        self._built_for = (len(self._routes), id(self._routes[-1]))
