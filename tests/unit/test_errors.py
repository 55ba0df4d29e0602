"""Every error is {"error": "..."}: the handlers, the PostgREST error mapping, the middleware."""

from __future__ import annotations

import logging

import httpx
import pytest
from postgrest import APIError

from database import translate_api_error
from tests.helpers import bearer


def api_error(code: str, message: str = "msg", details=None, hint=None) -> APIError:
    return APIError({"code": code, "message": message, "details": details, "hint": hint})


# --------------------------------------------------------------------------------------
# translate_api_error
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "code, status, message",
    [
        ("PT400", 400, "Username already exists"),
        ("PT401", 401, "Invalid or expired token"),
        ("PT404", 404, "User not found"),
        ("PT409", 409, "Conflict here"),
    ],
)
def test_sql_raised_pt_codes_keep_their_status_and_message(code, status, message):
    error = translate_api_error(api_error(code, message))
    assert (error.status, error.message) == (status, message)


@pytest.mark.parametrize(
    "code", ["PGRST000", "PGRST001", "PGRST002", "PGRST003", "502", "503", "504"]
)
def test_unreachable_database_codes_become_503(code):
    error = translate_api_error(api_error(code, "could not connect: host=10.0.0.5"))
    assert (error.status, error.message) == (503, "Database unavailable")


@pytest.mark.parametrize(
    "code",
    [
        "PGRST301",
        "PGRST116",
        "PGRST202",
        "42501",
        "23505",
        "22P02",
        "XX000",
        "PT500",
        "PT418",
        "500",
        "",
    ],
)
def test_every_other_postgrest_error_is_a_generic_500_logged_with_details(code, caplog):
    with caplog.at_level(logging.ERROR, logger="ffb.database"):
        error = translate_api_error(api_error(code, "internal message", "SECRET-DETAIL", "HINT"))
    assert (error.status, error.message) == (500, "Internal server error")
    assert "SECRET-DETAIL" in caplog.text and "internal message" in caplog.text
    assert "HINT" in caplog.text


def test_pt_code_without_message_still_has_one():
    error = translate_api_error(APIError({"code": "PT400", "message": None}))
    assert error.status == 400 and error.message


# --------------------------------------------------------------------------------------
# Through the app
# --------------------------------------------------------------------------------------
async def test_unknown_route_is_404_error_body(client):
    response = await client.get("/api/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


async def test_wrong_method_is_405_error_body(client):
    response = await client.delete("/api/categories")
    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}


async def test_body_over_the_limit_is_413(client, rest):
    route = rest.post("/rpc/find_login_user")
    response = await client.post(
        "/api/auth/login",
        content=b'{"email":"' + b"a" * 20_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large"}
    assert not route.called


async def test_chunked_body_over_the_limit_is_413(client, rest):
    async def chunks():
        for _ in range(20):
            yield b"x" * 1024

    response = await client.post(
        "/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large"}


async def test_unexpected_exception_is_a_generic_500_with_request_id(client, rest, caplog):
    rest.post("/rpc/list_expenses").mock(side_effect=RuntimeError("SECRET-internal-state"))
    with caplog.at_level(logging.ERROR):
        response = await client.get("/api/expenses", headers=bearer())
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert "SECRET" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"]
    assert "SECRET-internal-state" in caplog.text


async def test_postgrest_answering_non_json_200_is_a_generic_500(client, rest):
    rest.post("/rpc/list_expenses").respond(200, text="<html>proxy says hi</html>")
    response = await client.get("/api/expenses", headers=bearer())
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}


async def test_postgrest_non_json_error_body_is_not_leaked(client, rest, caplog):
    rest.post("/rpc/list_expenses").respond(500, text="SECRET stack trace at line 42")
    with caplog.at_level(logging.ERROR, logger="ffb.database"):
        response = await client.get("/api/expenses", headers=bearer())
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert "SECRET stack trace" in caplog.text


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("post", "/api/auth/login", {"json": {}}),
        (
            "post",
            "/api/auth/login",
            {"content": b"not json", "headers": {"Content-Type": "application/json"}},
        ),
        ("post", "/api/auth/register", {"json": {"username": 5, "password": 5}}),
        ("get", "/api/expenses?user_id=x", {"auth": True}),
        ("post", "/api/expenses", {"json": {"amount": "x"}, "auth": True}),
        ("get", "/api/dashboard/x/monthly", {"auth": True}),
        ("get", "/api/dashboard/1/yearly?year=x", {"auth": True}),
    ],
)
async def test_validation_errors_are_400_error_never_422_detail(client, rest, method, path, kwargs):
    if kwargs.pop("auth", False):
        kwargs.setdefault("headers", {}).update(bearer())
    response = await getattr(client, method)(path, **kwargs)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "detail" not in response.text


async def test_error_responses_carry_security_headers_and_json_type(client):
    response = await client.get("/api/expenses")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]


async def test_a_sane_incoming_request_id_is_echoed_on_errors(client):
    response = await client.get("/api/nope", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_postgrest_connect_error_is_503_not_500(client, rest):
    rest.post("/rpc/get_yearly_dashboard").mock(side_effect=httpx.ConnectError("refused"))
    response = await client.get("/api/dashboard/1/yearly", headers=bearer())
    assert response.status_code == 503
    assert response.json() == {"error": "Database unavailable"}
