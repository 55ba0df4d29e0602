"""The hot reads, served without FastAPI's per-request machinery.

FastAPI serves and documents every route. For the GETs that carry most of a family's
traffic - the expense list, the dashboards, the categories and `/api/auth/me` - FastAPI's
route matching, its exception and exit-stack layers and its generic dependency solver cost
the worker more CPU than the request's own work (docs/performance.md, "The framework's
cost").
`HotRoutes` is the innermost middleware: the request id, body limit, security headers,
CORS, access log and metrics apply exactly as before. A GET to one of these paths is
answered by calling the same endpoint function FastAPI would call, with the same
arguments: the caller from `deps.current_user` (401/503 first, as FastAPI solves it
first), then the path and the query validated by the same pydantic types, then the
route's own work; errors are rendered by the same handlers. Anything else - another
method, another path, an app mounted under a root path - goes on to FastAPI.
HOT_ROUTES=false serves these through FastAPI too; tests/integration/test_hotpath.py
sends the same requests both ways and compares the answers.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from deps import app_state, current_user
from edge import api_error_handler, validation_message
from errors import ApiError
from models import Id
from routers import auth, categories, dashboard, expenses

Query = TypeVar("Query", bound=BaseModel)
USER_ID = TypeAdapter(Id)


def query(model: type[Query], request: Request) -> Query:
    """The query string as FastAPI reads it for a query model (the last value of a
    repeated name; names the model does not know ignored), validated by the model."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise ApiError(400, validation_message(exc.errors())) from None


def path_user_id(value: str) -> int:
    try:
        return USER_ID.validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": ("user_id", *e["loc"])} for e in exc.errors()]
        raise ApiError(400, validation_message(errors)) from None


async def expense_list(request: Request) -> Response:
    user = await current_user(request)
    return await expenses.list_expenses(
        user, app_state(request.app).db, query(expenses.ListQuery, request)
    )


async def category_list(request: Request) -> Response:
    state = app_state(request.app)
    return await categories.list_categories(request, state.db, state.reference_cache)


async def me(request: Request) -> Response:
    user = await current_user(request)
    return await auth.me(user, app_state(request.app).db)


def dashboard_route(
    endpoint: Callable[..., Awaitable[Response]], model: type[BaseModel]
) -> Callable[[Request, str], Awaitable[Response]]:
    """GET /api/dashboard/{user_id}/monthly or /yearly: `endpoint` with `model` as its query."""

    async def serve(request: Request, user_id: str) -> Response:
        user = await current_user(request)
        state = app_state(request.app)
        return await endpoint(
            path_user_id(user_id), user, state.db, state.dashboard_cache, query(model, request)
        )

    return serve


class HotRoute(NamedTuple):
    """`path` is the route's template, what FastAPI's matched route gives the metrics."""

    path: str
    serve: Callable[..., Awaitable[Response]]


EXACT = {
    route.path: route
    for route in (
        HotRoute("/api/expenses", expense_list),
        HotRoute("/api/categories", category_list),
        HotRoute("/api/auth/me", me),
    )
}
# the dashboards: `{user_id}` matches what Starlette's path parameter matches
DASHBOARD = re.compile(r"/api/dashboard/([^/]+)/(monthly|yearly)")
DASHBOARDS = {
    "monthly": HotRoute(
        "/api/dashboard/{user_id}/monthly", dashboard_route(dashboard.monthly, dashboard.MonthQuery)
    ),
    "yearly": HotRoute(
        "/api/dashboard/{user_id}/yearly", dashboard_route(dashboard.yearly, dashboard.YearQuery)
    ),
}


def match(path: str) -> tuple[HotRoute, tuple[Any, ...]] | None:
    route = EXACT.get(path)
    if route is not None:
        return route, ()
    found = DASHBOARD.fullmatch(path) if path.startswith("/api/dashboard/") else None
    if found is not None:
        return DASHBOARDS[found[2]], (found[1],)
    return None


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = (
            match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path")
            else None
        )
        if matched is None:
            await self.app(scope, receive, send)
            return
        route, args = matched
        scope["route"] = route
        request = Request(scope, receive)
        try:
            response = await route.serve(request, *args)
        except ApiError as exc:
            response = await api_error_handler(request, exc)
        await response(scope, receive, send)
