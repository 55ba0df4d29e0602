"""What every authenticated route does when it cannot answer, in one table: without a
token it is 401 and PostgREST is never called; a session PostgREST's pre-request check
refuses (PT401: logged out, user deleted, sessions revoked) is 401; any other PostgREST
error is a generic 500 whose details reach the log and never the client."""

from __future__ import annotations

import logging

import pytest

from tests.helpers import bearer

# (client method, path, JSON body, PostgREST method, PostgREST path)
ROUTES = [
    ("get", "/api/auth/me", None, "post", "/rpc/auth_me"),
    ("post", "/api/auth/logout", None, "post", "/rpc/revoke_token"),
    ("get", "/api/dashboard/users", None, "post", "/rpc/dashboard_users"),
    ("get", "/api/dashboard/1/monthly", None, "post", "/rpc/get_monthly_dashboard"),
    ("get", "/api/dashboard/1/yearly", None, "post", "/rpc/get_yearly_dashboard"),
    ("get", "/api/expenses", None, "post", "/rpc/list_expenses"),
    (
        "post",
        "/api/expenses",
        {"amount": 10, "category_id": 1},
        "post",
        "/rpc/create_expense_response",
    ),
]
IDS = [f"{method.upper()} {path}" for method, path, *_ in ROUTES]
PT401 = {"code": "PT401", "message": "Invalid or expired token", "details": None, "hint": None}
BOOM = {
    "code": "XX000",
    "message": "boom: relation users_secret_internal",
    "details": "SECRET-DETAIL-xyz",
    "hint": "HINT-abc",
}


async def call(client, method, path, body, headers=None):
    kwargs = {"headers": headers or {}}
    if body is not None:
        kwargs["json"] = body
    return await client.request(method.upper(), path, **kwargs)


@pytest.mark.parametrize(("method", "path", "body", "rest_method", "rest_path"), ROUTES, ids=IDS)
async def test_without_a_token_it_is_401_and_postgrest_is_never_called(
    client, rest, method, path, body, rest_method, rest_path
):
    route = getattr(rest, rest_method)(rest_path)
    response = await call(client, method, path, body)
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication required"}
    assert not route.called


@pytest.mark.parametrize(("method", "path", "body", "rest_method", "rest_path"), ROUTES, ids=IDS)
async def test_a_session_postgrest_refuses_is_401(
    client, rest, method, path, body, rest_method, rest_path
):
    route = getattr(rest, rest_method)(rest_path)
    route.respond(401, json=PT401)
    response = await call(client, method, path, body, bearer())
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}
    assert route.called


@pytest.mark.parametrize(("method", "path", "body", "rest_method", "rest_path"), ROUTES, ids=IDS)
@pytest.mark.parametrize("status", [400, 500])
async def test_a_postgrest_error_is_a_generic_500_with_details_only_in_the_log(
    client, rest, caplog, method, path, body, rest_method, rest_path, status
):
    route = getattr(rest, rest_method)(rest_path)
    route.respond(status, json=BOOM)
    with caplog.at_level(logging.ERROR, logger="ffb.database"):
        response = await call(client, method, path, body, bearer())
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    for secret in ("SECRET-DETAIL-xyz", "users_secret_internal", "HINT-abc"):
        assert secret not in response.text
    assert "SECRET-DETAIL-xyz" in caplog.text and BOOM["code"] in caplog.text
