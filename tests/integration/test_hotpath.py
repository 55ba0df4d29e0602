"""Issue 25: the hot reads (hotpath.py) answer exactly what FastAPI answers.

The same requests go to an app with HOT_ROUTES on (the default: the expense list and the
dashboards served by hotpath.HotRoutes) and to one with it off (FastAPI serves them, the
same endpoint functions), and every answer must be the same: status, body and headers
(the request id aside), valid input and invalid, with and without a session. That the
hot app really took its own path is checked too, so the comparison cannot pass by
comparing FastAPI with itself."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

import hotpath
from tests.helpers import app_client, bearer, insert_expenses, stack_settings, token_for

ROWS = [
    (1, 1, 1, "400.00", "Pharmacy bill", "2025-01-15"),
    (1, 2, 4, "120.50", "taxi to the pharmacy", "2025-01-20"),
    (2, 1, None, "99.99", None, "2025-01-15"),
    (2, 3, 2, "1500.00", "Café Noir", "2025-02-01"),
    (3, 4, 3, "250.00", "crème brûlée", "2024-12-31"),
]

LIST_QUERIES = [
    "",
    "user_id=1",
    "user_id=1&date_from=2025-01-01&date_to=2025-01-31",
    "user_id=2&user_id=1",  # the last value of a repeated name
    "limit=2&offset=1",
    "limit=0",
    "limit=100001",
    "offset=-1",
    "limit=",
    "user_id=",
    "user_id=abc",
    "user_id=01",  # not the canonical spelling
    "user_id=1.0",
    "user_id=9007199254740992",
    "category_id=0",
    "date_from=2025-1-1",
    "date_from=2025-02-30",
    "date_from=2025-02-01&date_to=2025-01-01",
    "min_amount=100&max_amount=50",
    "min_amount=1e3",
    "min_amount=100.001",
    "max_amount=abc",
    "q=",
    "q=" + "x" * 201,
    "q=pharmacy&min_amount=100",
    "q=caf%C3%A9",
    "q=%00",
    "payment_method_id=2",
    "payment_method_id=x&user_id=y",  # two errors: the first field's is the answer
    "user_id=x&date_from=2025-02-01&date_to=2025-01-01",
    "min_amount=9&max_amount=1&date_from=2025-02-01&date_to=2025-01-01",
    "unknown=1&user_id=1",
]
DASHBOARD_PATHS = [
    "/api/dashboard/1/monthly?year=2025&month=1",
    "/api/dashboard/2/monthly?year=2025&month=2",
    "/api/dashboard/1/monthly",
    "/api/dashboard/1/monthly?year=2025&month=13",
    "/api/dashboard/1/monthly?month=0",
    "/api/dashboard/1/monthly?year=1899",
    "/api/dashboard/1/monthly?year=abc&month=abc",
    "/api/dashboard/1/monthly?month=",
    "/api/dashboard/999/monthly?year=2025&month=1",  # no such user: 404
    "/api/dashboard/abc/monthly?year=abc",  # the path's error before the query's
    "/api/dashboard/0/monthly",
    "/api/dashboard/01/monthly",
    "/api/dashboard/users/monthly",
    "/api/dashboard/1/yearly?year=2025",
    "/api/dashboard/1/yearly",
    "/api/dashboard/1/yearly?year=10000",
    "/api/dashboard/1/yearly?year=2025&month=99",  # month is not a yearly parameter
    "/api/dashboard/-1/yearly",
]
VOLATILE = {"x-request-id"}


@pytest.fixture
async def both(fresh_db):
    insert_expenses(fresh_db, ROWS)
    async with (
        app_client(stack_settings()) as hot,
        app_client(stack_settings(hot_routes=False)) as plain,
    ):
        yield hot, plain


def answer(response) -> tuple:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in VOLATILE)
    return response.status_code, response.content, headers


async def same_answer(both, path: str, headers: dict[str, str]) -> int:
    hot, plain = both
    hot_answer = answer(await hot.get(path, headers=headers))
    assert hot_answer == answer(await plain.get(path, headers=headers)), path
    return hot_answer[0]


async def test_the_hot_list_answers_what_fastapi_answers(both):
    headers = bearer()
    statuses = {
        query: await same_answer(both, "/api/expenses?" + query, headers) for query in LIST_QUERIES
    }
    # the corpus covers both outcomes (a comparison of two 400s everywhere proves little)
    assert statuses["user_id=1"] == 200 and statuses["limit=0"] == 400
    assert sorted(set(statuses.values())) == [200, 400]


async def test_the_hot_dashboards_answer_what_fastapi_answers(both):
    headers = bearer()
    statuses = {path: await same_answer(both, path, headers) for path in DASHBOARD_PATHS}
    assert sorted(set(statuses.values())) == [200, 400, 404]


async def test_the_hot_categories_and_me_answer_what_fastapi_answers(both):
    hot, plain = both
    etag = (await plain.get("/api/categories")).headers["etag"]
    for headers in ({}, {"If-None-Match": etag}, {"If-None-Match": '"other"'}, bearer()):
        await same_answer(both, "/api/categories?x=1", headers)
        await same_answer(both, "/api/categories", headers)
    assert await same_answer(both, "/api/categories", {"If-None-Match": etag}) == 304
    assert await same_answer(both, "/api/auth/me", bearer()) == 200
    assert await same_answer(both, "/api/auth/me", bearer(token_for(999, "Ghost"))) == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic abc"},
        bearer(token_for(exp=0)),
        {"Cookie": "jwt=" + token_for()},
    ],
    ids=["none", "garbage", "basic", "expired", "cookie"],
)
async def test_sessions_are_decided_first_and_the_same_way(both, headers):
    # an invalid query does not come before the session: 401 is the answer either way
    for path in (
        "/api/expenses?user_id=abc",
        "/api/dashboard/abc/monthly?month=99",
        "/api/auth/me",
    ):
        await same_answer(both, path, headers)


async def test_the_hot_app_takes_its_own_path_and_fastapi_the_rest(both, monkeypatch):
    """Served by HotRoutes when on (its endpoint call is seen), by FastAPI when off; other
    methods and paths never touch it."""
    hot, plain = both
    served: list[str] = []

    def spied(route: hotpath.HotRoute) -> hotpath.HotRoute:
        async def serve(*args):
            served.append(route.path)
            return await route.serve(*args)

        return route._replace(serve=serve)

    monkeypatch.setattr(hotpath, "EXACT", {k: spied(r) for k, r in hotpath.EXACT.items()})
    monkeypatch.setattr(hotpath, "DASHBOARDS", {k: spied(r) for k, r in hotpath.DASHBOARDS.items()})
    headers = bearer()
    for client in (hot, plain):
        assert (await client.get("/api/expenses", headers=headers)).status_code == 200
        assert (await client.get("/api/dashboard/1/yearly", headers=headers)).status_code == 200
        assert (await client.get("/api/dashboard/1/monthly", headers=headers)).status_code == 200
        assert (await client.get("/api/categories")).status_code == 200
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
        assert (await client.get("/api/payment-methods")).status_code == 200
        assert (await client.get("/api/expenses/1", headers=headers)).status_code in (200, 404)
        assert (await client.head("/api/expenses", headers=headers)).status_code == 405
    assert served == [
        "/api/expenses",
        "/api/dashboard/{user_id}/yearly",
        "/api/dashboard/{user_id}/monthly",
        "/api/categories",
        "/api/auth/me",
    ]


def answered(route: str, status: str) -> float:
    labels = {"route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("ffb_http_requests_total", labels) or 0.0


async def test_metrics_name_the_route_template_for_hot_reads(both):
    """As FastAPI's matched route does: the template, never the path (one series per URL
    would grow without bound)."""
    hot, _ = both
    monthly = "/api/dashboard/{user_id}/monthly"
    before = answered(monthly, "200"), answered("/api/expenses", "400")
    await hot.get("/api/dashboard/2/monthly", headers=bearer())
    await hot.get("/api/expenses?user_id=x", headers=bearer())
    assert (answered(monthly, "200"), answered("/api/expenses", "400")) == (
        before[0] + 1,
        before[1] + 1,
    )
