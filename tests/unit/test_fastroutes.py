"""fastroutes.CompiledRoutes answers exactly what FastAPI answers.

Every request below goes once through the app as shipped (GET routes served by
CompiledRoutes) and once through the same app without that middleware (FastAPI's own
routing and dependency resolution); status, body and headers must be the same."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from fastroutes import CompiledRoutes
from main import create_app
from tests.helpers import bearer
from tests.unit.helpers import unit_settings

LIST_BODY = b'[{"id":7,"user_id":1,"amount":12.5}]'
MONTHLY_BODY = b'{"user":{"id":2,"name":"Amol"},"total_spent":1}'

REQUESTS = [
    ("/api/expenses", False),  # no token: 401 from the dependency
    ("/api/expenses?user_id=1&date_from=2026-01-01&date_to=2026-01-31", True),
    ("/api/expenses?user_id=abc", True),
    ("/api/expenses?user_id=0", True),
    ("/api/expenses?user_id=", True),
    ("/api/expenses?user_id=1&user_id=x", True),  # repeated: the last one counts
    ("/api/expenses?user_id=x&user_id=1", True),
    ("/api/expenses?limit=0&offset=-1", True),  # two errors: the first is reported
    ("/api/expenses?date_from=2026-13-01", True),
    ("/api/expenses?date_from=2026-02-01&date_to=2026-01-01", True),  # the endpoint refuses
    ("/api/expenses?offset=01", True),
    ("/api/expenses/", True),  # FastAPI's redirect
    ("/api/expenses/export.csv?user_id=x", True),
    ("/api/dashboard/2/monthly?year=2025&month=1", True),
    ("/api/dashboard/abc/monthly?month=13", True),  # path error before query error
    ("/api/dashboard/2/monthly?month=13", True),
    ("/api/dashboard/2/monthly?year=1800", True),
    ("/api/dashboard/2/weekly", True),  # no such route
    ("/api/dashboard/2/monthly", False),
    ("/api/auth/me", False),
    ("/api/nope", True),
    ("/health", False),
    ("/health/shadow", False),  # operator endpoint: refused without METRICS_TOKEN
]


@pytest.fixture
async def both(rest) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    rest.post("/rpc/list_expenses").respond(
        200, content=LIST_BODY, headers={"content-type": "application/json"}
    )
    rest.post("/rpc/get_monthly_dashboard").respond(
        200, content=MONTHLY_BODY, headers={"content-type": "application/json"}
    )
    compiled = create_app(unit_settings())
    plain = create_app(unit_settings())
    plain.user_middleware = [
        m
        for m in plain.user_middleware
        if m.cls is not CompiledRoutes  # type: ignore[comparison-overlap]
    ]
    assert len(plain.user_middleware) == len(compiled.user_middleware) - 1
    async with LifespanManager(compiled) as one, LifespanManager(plain) as two:
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=m.app, client=("127.0.0.1", 50000)),
                base_url="http://testserver",
            )
            for m in (one, two)
        ]
        async with clients[0] as a, clients[1] as b:
            yield a, b


@pytest.mark.parametrize(("url", "with_token"), REQUESTS)
async def test_compiled_routes_answer_what_fastapi_answers(both, url, with_token):
    compiled, plain = both
    headers = {**(bearer() if with_token else {}), "Origin": "http://localhost:3000"}
    ours = await compiled.get(url, headers=headers)
    theirs = await plain.get(url, headers=headers)
    assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content)

    def same(response: httpx.Response) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in response.headers.items() if k != "x-request-id")

    assert same(ours) == same(theirs)


async def test_the_hot_get_routes_are_compiled(client):
    app = client.app
    middleware = app.middleware_stack
    while not isinstance(middleware, CompiledRoutes):
        middleware = middleware.app
    for path in (
        "/api/expenses",
        "/api/dashboard/2/monthly",
        "/api/dashboard/2/yearly",
        "/api/dashboard/users",
        "/api/categories",
        "/api/payment-methods",
        "/api/auth/me",
        "/health/ready",
    ):
        target = middleware.resolve({"type": "http", "path": path, "root_path": ""})
        assert target is not None, path
    target = middleware.resolve({"type": "http", "path": "/api/dashboard/2/monthly"})
    assert target is not None and target.route.path == "/api/dashboard/{user_id}/monthly"
    assert target.path_params == {"user_id": "2"}
    # routes FastAPI must keep: a redirect, an unknown path, a route for other methods
    for path in ("/api/expenses/", "/api/nope", "/api/auth/login"):
        assert middleware.resolve({"type": "http", "path": path, "root_path": ""}) is None


async def test_a_compiled_route_is_metered_by_its_template(client, rest):
    rest.post("/rpc/get_monthly_dashboard").respond(
        200, content=MONTHLY_BODY, headers={"content-type": "application/json"}
    )
    assert (await client.get("/api/dashboard/2/monthly", headers=bearer())).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'route="/api/dashboard/{user_id}/monthly"' in text
