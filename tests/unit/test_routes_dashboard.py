"""GET /api/dashboard/users, /{user_id}/monthly and /{user_id}/yearly against a faked PostgREST."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.helpers import bearer

ALOK = {"id": 1, "name": "Alok", "email": "alok@example.com"}
MONTHLY = {
    "user": {"id": 2, "name": "Amol"},
    "period": {"type": "monthly", "year": 2025, "month": 1},
    "total_spent": 23333,
    "top_categories": [{"category": "Utilities", "amount": 14326, "percentage": 61.4}],
    "category_breakdown": [{"category": "Utilities", "amount": 14326, "percentage": 61.4}],
}
YEARLY = {
    "user": {"id": 2, "name": "Amol"},
    "period": {"type": "yearly", "year": 2024},
    "total_spent": 0,
    "top_categories": [],
    "category_breakdown": [],
    "monthly_trends": [
        {"month": m, "month_name": dt.date(2024, m, 1).strftime("%B"), "amount": 0}
        for m in range(1, 13)
    ],
}


def rpc_sent(route) -> dict:
    return json.loads(route.calls.last.request.content)


# --------------------------------------------------------------------------------------
# users
# --------------------------------------------------------------------------------------
async def test_users_lists_id_name_email_by_id(client, rest):
    users = [ALOK, {"id": 2, "name": "Amol", "email": None}]
    route = rest.post("/rpc/dashboard_users").respond(200, json=users)
    response = await client.get("/api/dashboard/users", headers=bearer())
    assert response.status_code == 200
    assert response.json() == users
    assert route.calls.last.request.headers["x-gateway-session"].startswith("1:")


# --------------------------------------------------------------------------------------
# monthly
# --------------------------------------------------------------------------------------
async def test_monthly_returns_the_rpc_json_unchanged(client, rest):
    route = rest.post("/rpc/get_monthly_dashboard").respond(200, json=MONTHLY)
    response = await client.get("/api/dashboard/2/monthly?year=2025&month=1", headers=bearer())
    assert response.status_code == 200
    assert response.json() == MONTHLY
    assert list(response.json()) == list(MONTHLY)  # documented key order survives
    assert rpc_sent(route) == {"p_user_id": 2, "p_year": 2025, "p_month": 1}
    assert route.calls.last.request.headers["apikey"] == "service-key"
    assert route.calls.last.request.headers["x-gateway-session"].startswith("1:")


async def test_monthly_defaults_to_the_current_year_and_month(client, rest):
    route = rest.post("/rpc/get_monthly_dashboard").respond(200, json=MONTHLY)
    today = dt.date.today()
    await client.get("/api/dashboard/2/monthly", headers=bearer())
    assert rpc_sent(route) == {"p_user_id": 2, "p_year": today.year, "p_month": today.month}


async def test_monthly_with_only_year_defaults_the_month(client, rest):
    route = rest.post("/rpc/get_monthly_dashboard").respond(200, json=MONTHLY)
    await client.get("/api/dashboard/2/monthly?year=2020", headers=bearer())
    assert rpc_sent(route) == {"p_user_id": 2, "p_year": 2020, "p_month": dt.date.today().month}


async def test_monthly_unknown_user_is_404(client, rest):
    rest.post("/rpc/get_monthly_dashboard").respond(
        200, content=b"null", headers={"Content-Type": "application/json"}
    )
    response = await client.get("/api/dashboard/99/monthly?year=2025&month=1", headers=bearer())
    assert response.status_code == 404
    assert response.json() == {"error": "User not found"}


@pytest.mark.parametrize(
    "query",
    [
        "month=13",
        "month=0",
        "month=-1",
        "month=abc",
        "month=1.5",
        "year=99999",
        "year=0",
        "year=-2025",
        "year=1899",
        "year=2201",
        "year=twenty",
    ],
)
async def test_monthly_rejects_bad_period_with_400(client, rest, query):
    route = rest.post("/rpc/get_monthly_dashboard")
    response = await client.get(f"/api/dashboard/1/monthly?{query}", headers=bearer())
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert not route.called


async def test_monthly_rejects_month_13_naming_the_field(client, rest):
    response = await client.get("/api/dashboard/1/monthly?month=13", headers=bearer())
    assert response.json()["error"].startswith("month")


@pytest.mark.parametrize("user_id", ["0", "-1", "abc", "1.5", str(2**53)])
async def test_monthly_rejects_invalid_user_id_with_400(client, rest, user_id):
    route = rest.post("/rpc/get_monthly_dashboard")
    response = await client.get(f"/api/dashboard/{user_id}/monthly", headers=bearer())
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert not route.called


@pytest.mark.parametrize("year", [1900, 2200])
async def test_monthly_accepts_the_edge_years(client, rest, year):
    route = rest.post("/rpc/get_monthly_dashboard").respond(200, json=MONTHLY)
    response = await client.get(f"/api/dashboard/1/monthly?year={year}&month=12", headers=bearer())
    assert response.status_code == 200
    assert rpc_sent(route)["p_year"] == year


# --------------------------------------------------------------------------------------
# yearly
# --------------------------------------------------------------------------------------
async def test_yearly_returns_the_rpc_json_unchanged(client, rest):
    route = rest.post("/rpc/get_yearly_dashboard").respond(200, json=YEARLY)
    response = await client.get("/api/dashboard/2/yearly?year=2024", headers=bearer())
    assert response.status_code == 200
    assert response.json() == YEARLY
    assert rpc_sent(route) == {"p_user_id": 2, "p_year": 2024}


async def test_yearly_defaults_to_the_current_year(client, rest):
    route = rest.post("/rpc/get_yearly_dashboard").respond(200, json=YEARLY)
    await client.get("/api/dashboard/2/yearly", headers=bearer())
    assert rpc_sent(route) == {"p_user_id": 2, "p_year": dt.date.today().year}


async def test_yearly_ignores_a_month_parameter(client, rest):
    route = rest.post("/rpc/get_yearly_dashboard").respond(200, json=YEARLY)
    response = await client.get("/api/dashboard/2/yearly?year=2024&month=13", headers=bearer())
    assert response.status_code == 200
    assert rpc_sent(route) == {"p_user_id": 2, "p_year": 2024}


async def test_yearly_unknown_user_is_404(client, rest):
    rest.post("/rpc/get_yearly_dashboard").respond(
        200, content=b"null", headers={"Content-Type": "application/json"}
    )
    response = await client.get("/api/dashboard/99/yearly?year=2024", headers=bearer())
    assert response.status_code == 404
    assert response.json() == {"error": "User not found"}


@pytest.mark.parametrize("query", ["year=99999", "year=0", "year=abc", "year=1e3"])
async def test_yearly_rejects_absurd_year_with_400(client, rest, query):
    route = rest.post("/rpc/get_yearly_dashboard")
    response = await client.get(f"/api/dashboard/1/yearly?{query}", headers=bearer())
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert not route.called


# --------------------------------------------------------------------------------------
# A cache hit still asks Postgres about the session (issue 24, item 3)
# --------------------------------------------------------------------------------------
PT401 = {"code": "PT401", "message": "Invalid or expired token", "details": None, "hint": None}


@pytest.mark.parametrize("session_holds", [True, False])
async def test_a_cache_hit_is_answered_only_when_postgres_accepts_the_session(
    client, rest, session_holds
):
    """The body is in this worker's cache for this very session; the logout happened
    elsewhere and its NOTIFY has not arrived. Only Postgres' answer decides."""
    import httpx

    from auth import decode_token
    from deps import app_state
    from tests.helpers import token_for

    token = token_for()
    state = app_state(client.app)
    user = decode_token(state.settings, token)
    cache = state.dashboard_cache
    cache.enabled = cache.listening = True
    key, session = ("get_monthly_dashboard", 2, 2025, 1), (user.id, user.jti)
    cache.put(key, session, json.dumps(MONTHLY).encode(), cache.generation)

    def check(request: httpx.Request) -> httpx.Response:
        probe = request.headers["x-gateway-session"].startswith("0:")  # readiness' probe
        return (
            httpx.Response(204) if session_holds and not probe else httpx.Response(401, json=PT401)
        )

    checked = rest.post("/rpc/gateway_session_check").mock(side_effect=check)
    dashboard = rest.post("/rpc/get_monthly_dashboard").respond(500)
    response = await client.get("/api/dashboard/2/monthly?year=2025&month=1", headers=bearer(token))
    assert not dashboard.called  # answered from the cache, or refused
    sent = checked.calls.last.request.headers["x-gateway-session"]
    assert sent == f"{user.id}:{user.jti}:{user.issued_at}"
    if session_holds:
        assert response.status_code == 200 and response.json() == MONTHLY
    else:
        assert response.status_code == 401
        assert response.json() == {"error": "Invalid or expired token"}
