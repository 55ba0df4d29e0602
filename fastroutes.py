"""GET routes served without FastAPI's per-request machinery, with the same result.

FastAPI (0.165, pinned) re-derives on every request what a route's signature already
says: for each query parameter whether its annotation is a sequence, whether it is a
parameter model, which aliases it has; it then matches the path against every route
through the included routers, and wraps the endpoint in two exit stacks and two
exception-handling layers. Measured with py-spy (docs/performance.md) that was about a
fifth of a proxied request's CPU, more than the PostgREST call itself.

`CompiledRoutes` (pure ASGI, innermost of our middleware: inside CORS, shadow and
GatewayMiddleware) answers GET requests itself when FastAPI would pick a route whose
dependencies it understands, doing what FastAPI does in the same order:

1. which route: FastAPI's own matching decides, once per distinct path (cached; paths
   FastAPI would send elsewhere, redirect or refuse go to FastAPI every time);
2. the dependencies, depth first, each once per request (`use_cache`), then the route's
   path and query parameters validated by the same pydantic fields with the same
   locations, every error collected and raised as one `RequestValidationError`;
3. the endpoint, whose Response is sent as it is;
4. an exception raised by 2 or 3 goes to the app's exception handlers (edge.py), as
   FastAPI's ExceptionMiddleware would send it; anything without a handler propagates
   to GatewayMiddleware (the last-resort 500).

What the plan is worked out from is FastAPI's `Dependant` of the route as included
(with the include's dependencies). A route is compiled only when every part of it is
understood: async dependencies and endpoint, path and scalar query parameters,
`Request`, and an endpoint annotated to return a Response. Anything else (a body,
headers, cookies, generators, sequences, parameter models, `dependency_overrides`, every
other method) is served by FastAPI as before; the OpenAPI schema is FastAPI's either way.
tests/unit/test_fastroutes.py checks that both paths answer the same.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi._compat import Undefined, field_annotation_is_sequence
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import (
    _get_param_aliases,
    _get_param_model,
    _is_json_field,
    _validate_value_with_model_field,
)
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, _IncludedRouter
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

PATH_CACHE_SIZE = 4096  # distinct paths remembered; beyond it each is matched again
_MISSING = object()


@dataclass(frozen=True)
class Param:
    field: Any  # fastapi's ModelField
    aliases: tuple[tuple[str, str], ...]
    location: str  # "path" or "query"


@dataclass
class Node:
    """One dependant: its sub-dependencies, then its own parameters."""

    call: Callable[..., Awaitable[Any]]
    name: str | None
    use_cache: bool
    subs: list[Node] = field(default_factory=list)
    path: list[Param] = field(default_factory=list)
    query: list[Param] = field(default_factory=list)
    request_name: str | None = None


class NotCompilable(Exception):
    pass


def _params(fields: list[Any], location: str) -> list[Param]:
    out = []
    for f in fields:
        if (
            _is_json_field(f)
            or _get_param_model(f) is not None
            or field_annotation_is_sequence(f.field_info.annotation)
        ):
            raise NotCompilable(f"parameter {f.name}")
        out.append(Param(f, tuple(_get_param_aliases(f)), location))
    return out


def compile_dependant(dependant: Dependant, *, endpoint: bool = False) -> Node:
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call):
        raise NotCompilable("not an async function")
    if (
        dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.own_oauth_scopes
        or dependant.concurrency is not None
    ):
        raise NotCompilable("unsupported parameter kind")
    if endpoint:
        returns = typing.get_type_hints(call).get("return")
        if not (inspect.isclass(returns) and issubclass(returns, Response)):
            raise NotCompilable("the endpoint does not return a Response")
    return Node(
        call=call,
        name=dependant.name,
        use_cache=dependant.use_cache,
        subs=[compile_dependant(sub) for sub in dependant.dependencies],
        path=_params(dependant.path_params, "path"),
        query=_params(dependant.query_params, "query"),
        request_name=dependant.request_param_name,
    )


def _validate(params: list[Param], received: Any, values: dict[str, Any]) -> list[Any]:
    """fastapi.dependencies.utils.request_params_to_args for scalar parameters."""
    errors: list[Any] = []
    for p in params:
        alias = next((a for _, a in p.aliases if a in received), p.aliases[0][1])
        value = received.get(alias)
        if value is None:
            value = Undefined
        v, errs = _validate_value_with_model_field(
            field=p.field, value=value, values=values, loc=(p.location, alias)
        )
        if errs:
            errors.extend(errs)
        else:
            values[p.field.name] = v
    return errors


async def solve(node: Node, request: Request, cache: dict[Any, Any]) -> tuple[dict, list]:
    """fastapi.dependencies.utils.solve_dependencies for a compiled dependant."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for sub in node.subs:
        sub_values, sub_errors = await solve(sub, request, cache)
        if sub_errors:
            errors.extend(sub_errors)
            continue
        if sub.use_cache and sub.call in cache:
            solved = cache[sub.call]
        else:
            solved = await sub.call(**sub_values)
        if sub.name is not None:
            values[sub.name] = solved
        cache.setdefault(sub.call, solved)
    path_values: dict[str, Any] = {}
    query_values: dict[str, Any] = {}
    path_errors = _validate(node.path, request.path_params, path_values) if node.path else []
    query_errors = _validate(node.query, request.query_params, query_values) if node.query else []
    values.update(path_values)
    values.update(query_values)
    errors += path_errors + query_errors
    if node.request_name:
        values[node.request_name] = request
    return values, errors


@dataclass(frozen=True)
class Target:
    route: APIRoute
    plan: Node
    path_params: dict[str, Any]


class CompiledRoutes:
    def __init__(self, app: ASGIApp, fastapi_app: FastAPI):
        self.app = app
        self.fastapi = fastapi_app
        self.paths: dict[tuple[str, str], Target | None] = {}
        self.plans: dict[int, tuple[Any, Node | None]] = {}  # id(context) -> (context, plan)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or self.fastapi.dependency_overrides:
            await self.app(scope, receive, send)
            return
        key = (scope.get("root_path", ""), scope["path"])
        target = self.paths.get(key, _MISSING)
        if target is _MISSING:
            target = self.resolve(scope)
            if len(self.paths) < PATH_CACHE_SIZE:
                self.paths[key] = target
        if target is None:
            await self.app(scope, receive, send)
            return
        assert isinstance(target, Target)
        scope["path_params"] = dict(target.path_params)
        scope["route"] = target.route  # metrics: the route's template
        scope["endpoint"] = target.route.endpoint
        request = Request(scope, receive, send)
        try:
            values, errors = await solve(target.plan, request, {})
            if errors:
                raise RequestValidationError(errors)
            response = await target.plan.call(**values)
            if not isinstance(response, Response):
                raise TypeError(f"{target.route.name} returned {type(response).__name__}")
        except Exception as exc:
            handler = self.handler_for(exc)
            if handler is None:
                raise
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

    def handler_for(self, exc: Exception) -> Callable[..., Any] | None:
        """The handler FastAPI's ExceptionMiddleware would call (status code first, then
        the exception's classes in MRO order); 500/Exception belong to the outer layers."""
        handlers = self.fastapi.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in handlers and cls is not Exception:
                return handlers[cls]
        return None

    def resolve(self, scope: Scope) -> Target | None:
        """The route FastAPI's router would pick for this GET path, when it is compiled."""
        probe: Scope = {
            "type": "http",
            "method": "GET",
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "headers": [],
            "query_string": b"",
        }
        for route in self.fastapi.router.routes:
            match, child = route.matches(probe)
            if match == Match.FULL:
                if not isinstance(route, _IncludedRouter):
                    return None
                match, child, chosen, context = route._match(probe)
                if match != Match.FULL or not isinstance(chosen, APIRoute) or context is None:
                    return None
                plan = self.plan_for(context)
                if plan is None or "GET" not in (context.methods or ()):
                    return None
                return Target(chosen, plan, dict(child.get("path_params", {})))
        return None  # no route, only a route for other methods, or a redirect: FastAPI's

    def plan_for(self, context: Any) -> Node | None:
        known = self.plans.get(id(context))
        if known is None or known[0] is not context:
            try:
                plan: Node | None = compile_dependant(context.dependant, endpoint=True)
            except NotCompilable:
                plan = None
            known = self.plans[id(context)] = (context, plan)
        return known[1]
