"""POST /api/auth/login, /register, /logout and GET /api/auth/me against a faked PostgREST."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging

import httpx
import pytest
from jose import jwt

from passwords import hash_password, verify_password
from tests.helpers import bearer, cookie, token_for
from tests.unit.helpers import UNIT_ENV

SECRET = UNIT_ENV["JWT_SECRET"]
PASSWORD = "Correct-Horse-9"
ALOK = {"id": 1, "name": "Alok", "email": "alok@example.com"}
HASH = hash_password(PASSWORD, rounds=4)
LOGIN_ROW = {**ALOK, "password_hash": HASH}
PGRST_BOOM = {
    "code": "XX000",
    "message": "boom: relation users_secret_internal",
    "details": "SECRET-DETAIL-xyz",
    "hint": "HINT-abc",
}


def sent_json(route) -> dict:
    return json.loads(route.calls.last.request.content)


# --------------------------------------------------------------------------------------
# login
# --------------------------------------------------------------------------------------
async def test_login_returns_token_user_and_message(client, rest):
    route = rest.post("/rpc/find_login_user").respond(200, json=[LOGIN_ROW])
    response = await client.post(
        "/api/auth/login", json={"email": "alok@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"message", "token", "user"}
    assert body["message"] == "Login successful"
    assert body["user"] == ALOK
    assert sent_json(route) == {"p_login": "alok@example.com"}
    assert "password_hash" not in response.text


async def test_login_token_carries_legacy_claims_for_24_hours(client, rest):
    rest.post("/rpc/find_login_user").respond(200, json=[LOGIN_ROW])
    response = await client.post("/api/auth/login", json={"email": "Alok", "password": PASSWORD})
    claims = jwt.decode(response.json()["token"], SECRET, algorithms=["HS256"])
    assert claims["userId"] == 1 and claims["name"] == "Alok"
    assert claims["email"] == "alok@example.com"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert claims["jti"]


async def test_login_sets_httponly_samesite_strict_jwt_cookie(client, rest):
    rest.post("/rpc/find_login_user").respond(200, json=[LOGIN_ROW])
    response = await client.post(
        "/api/auth/login", json={"email": "alok@example.com", "password": PASSWORD}
    )
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"jwt={response.json()['token']};")
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
    assert "max-age=86400" in lowered


async def test_login_with_username_passes_it_to_find_login_user(client, rest):
    route = rest.post("/rpc/find_login_user").respond(200, json=[LOGIN_ROW])
    response = await client.post("/api/auth/login", json={"email": "alok", "password": PASSWORD})
    assert response.status_code == 200
    assert sent_json(route) == {"p_login": "alok"}


async def test_login_wrong_password_and_unknown_user_give_the_same_401(client, rest):
    route = rest.post("/rpc/find_login_user")
    route.side_effect = [httpx.Response(200, json=[LOGIN_ROW]), httpx.Response(200, json=[])]
    wrong = await client.post(
        "/api/auth/login", json={"email": "alok@example.com", "password": "Wrong-pass-1"}
    )
    unknown = await client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": "Invalid email or password"}
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers


async def test_login_with_malformed_stored_hash_is_401_not_500(client, rest):
    rest.post("/rpc/find_login_user").respond(200, json=[{**ALOK, "password_hash": "not-bcrypt"}])
    response = await client.post(
        "/api/auth/login", json={"email": "alok@example.com", "password": PASSWORD}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid email or password"}


@pytest.mark.parametrize(
    "body, message",
    [
        ({"password": PASSWORD}, "email is required"),
        ({"email": "alok@example.com"}, "password is required"),
        ({"email": "", "password": PASSWORD}, None),
        ({"email": "alok@example.com", "password": ""}, None),
        ({"email": "alok@example.com", "password": "x" * 129}, None),
        ({"email": ["alok"], "password": PASSWORD}, None),
        ({"email": "alok\u0000", "password": PASSWORD}, "email: must not contain NUL characters"),
        (
            {"email": "alok", "password": "pass\u0000word"},
            "password: must not contain NUL characters",
        ),
    ],
)
async def test_login_rejects_invalid_body_with_400_before_the_database(client, rest, body, message):
    route = rest.post("/rpc/find_login_user").respond(200, json=[LOGIN_ROW])
    response = await client.post("/api/auth/login", json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    if message:
        assert response.json()["error"] == message
    assert not route.called


async def test_login_rejects_malformed_json_with_400(client, rest):
    response = await client.post(
        "/api/auth/login", content=b'{"email": "a', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Malformed JSON body"}


async def test_login_postgrest_error_is_generic_500_with_details_only_in_log(client, rest, caplog):
    rest.post("/rpc/find_login_user").respond(500, json=PGRST_BOOM)
    with caplog.at_level(logging.ERROR, logger="ffb.database"):
        response = await client.post(
            "/api/auth/login", json={"email": "alok@example.com", "password": PASSWORD}
        )
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert "SECRET-DETAIL-xyz" not in response.text and "boom" not in response.text
    assert "SECRET-DETAIL-xyz" in caplog.text and "XX000" in caplog.text


async def test_login_never_logs_the_password(client, rest, caplog):
    rest.post("/rpc/find_login_user").respond(500, json=PGRST_BOOM)
    with caplog.at_level(logging.DEBUG):
        await client.post("/api/auth/login", json={"email": "alok", "password": PASSWORD})
    assert PASSWORD not in caplog.text


async def test_login_when_postgrest_is_unreachable_is_503(client, rest):
    rest.post("/rpc/find_login_user").mock(side_effect=httpx.ConnectError("refused"))
    response = await client.post(
        "/api/auth/login", json={"email": "alok@example.com", "password": PASSWORD}
    )
    assert response.status_code == 503
    assert response.json() == {"error": "Database unavailable"}


# --------------------------------------------------------------------------------------
# register
# --------------------------------------------------------------------------------------
async def test_register_stores_a_bcrypt_hash_and_returns_the_user(client, rest):
    new_user = {"id": 5, "name": "new_user", "email": "new@example.com"}
    route = rest.post("/rpc/register_user").respond(200, json=new_user)
    response = await client.post(
        "/api/auth/register",
        json={"username": "new_user", "password": PASSWORD, "email": "new@example.com"},
    )
    assert response.status_code == 200
    assert response.json() == {"message": "Registration successful", "user": new_user}
    sent = sent_json(route)
    assert sent["p_name"] == "new_user" and sent["p_email"] == "new@example.com"
    assert sent["p_password_hash"] != PASSWORD and verify_password(
        PASSWORD, sent["p_password_hash"]
    )
    assert "password" not in response.text


@pytest.mark.parametrize("email", [None, ""])
async def test_register_without_email_sends_null(client, rest, email):
    route = rest.post("/rpc/register_user").respond(
        200, json={"id": 5, "name": "new_user", "email": None}
    )
    body = {"username": "new_user", "password": PASSWORD}
    if email is not None:
        body["email"] = email
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 200
    assert sent_json(route)["p_email"] is None
    assert response.json()["user"]["email"] is None


async def test_register_duplicate_username_is_400_from_the_database(client, rest):
    rest.post("/rpc/register_user").respond(
        400,
        json={"code": "PT400", "message": "Username already exists", "details": None, "hint": None},
    )
    response = await client.post(
        "/api/auth/register", json={"username": "ALOK", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Username already exists"}


@pytest.mark.parametrize(
    "username",
    [
        "ab",
        "a" * 31,
        "has space",
        "dash-name",
        "émile",
        "x;drop",
        "",
        "new_user\n",
        "\nnew_user",
        "new_user\r\n",
        "١٢٣",
    ],
)
async def test_register_rejects_bad_usernames(client, rest, username):
    route = rest.post("/rpc/register_user")
    response = await client.post(
        "/api/auth/register", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "Username must be 3-30 characters" in response.json()["error"]
    assert not route.called


@pytest.mark.parametrize("username", ["abc", "a" * 30, "Under_score_9"])
async def test_register_accepts_usernames_at_the_limits(client, rest, username):
    rest.post("/rpc/register_user").respond(200, json={"id": 9, "name": username, "email": None})
    response = await client.post(
        "/api/auth/register", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "password, reason",
    [
        ("Sh0rt!a", "8-128"),
        ("Aa1!" + "a" * 125, "8-128"),
        ("alllower1!", "uppercase"),
        ("ALLUPPER1!", "uppercase"),
        ("NoDigits!!", "uppercase"),
        ("NoSpecial12", "uppercase"),
    ],
)
async def test_register_rejects_weak_passwords(client, rest, password, reason):
    route = rest.post("/rpc/register_user")
    response = await client.post(
        "/api/auth/register", json={"username": "new_user", "password": password}
    )
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert password not in response.text
    assert not route.called


@pytest.mark.parametrize("password", ["Aa1!aaaa", "Aa1!" + "a" * 124])
async def test_register_accepts_passwords_of_8_and_128_characters(client, rest, password):
    rest.post("/rpc/register_user").respond(200, json={"id": 9, "name": "new_user", "email": None})
    response = await client.post(
        "/api/auth/register", json={"username": "new_user", "password": password}
    )
    assert response.status_code == 200


async def test_register_rejects_invalid_email(client, rest):
    route = rest.post("/rpc/register_user")
    response = await client.post(
        "/api/auth/register",
        json={"username": "new_user", "password": PASSWORD, "email": "not-an-email"},
    )
    assert response.status_code == 400
    assert "Invalid email address" in response.json()["error"]
    assert not route.called


@pytest.mark.parametrize(
    "field, body",
    [
        ("password", {"username": "new_user", "password": "Str0ng!pa\u0000ss"}),
        ("email", {"username": "new_user", "password": PASSWORD, "email": "a\u0000@example.com"}),
    ],
)
async def test_register_rejects_nul_characters_before_hashing(client, rest, field, body):
    route = rest.post("/rpc/register_user")
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": f"{field}: must not contain NUL characters"}
    assert not route.called


async def test_register_missing_username_is_400(client, rest):
    response = await client.post("/api/auth/register", json={"password": PASSWORD})
    assert response.status_code == 400
    assert response.json() == {"error": "username is required"}


async def test_register_postgrest_error_is_generic_500_with_details_only_in_log(
    client, rest, caplog
):
    rest.post("/rpc/register_user").respond(500, json=PGRST_BOOM)
    with caplog.at_level(logging.ERROR, logger="ffb.database"):
        response = await client.post(
            "/api/auth/register", json={"username": "new_user", "password": PASSWORD}
        )
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert "SECRET-DETAIL-xyz" not in response.text
    assert "SECRET-DETAIL-xyz" in caplog.text and "HINT-abc" in caplog.text


# --------------------------------------------------------------------------------------
# me
# --------------------------------------------------------------------------------------
async def test_me_reads_the_user_fresh_and_names_the_session(client, rest):
    route = rest.post("/rpc/auth_me").respond(200, json=ALOK)
    token = token_for()
    response = await client.get("/api/auth/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == ALOK
    request = route.calls.last.request
    assert request.content == b"{}"  # auth_me reads the user of the session it checks
    assert request.headers["apikey"] == "service-key"
    claims = jwt.get_unverified_claims(token)
    assert request.headers["x-gateway-session"] == f"1:{claims['jti']}:{claims['iat']}"


async def test_me_accepts_the_jwt_cookie_instead_of_bearer(client, rest):
    rest.post("/rpc/auth_me").respond(200, json=ALOK)
    response = await client.get("/api/auth/me", headers=cookie(token_for()))
    assert response.status_code == 200
    assert response.json() == ALOK


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer    ", "Token abc"])
async def test_me_with_a_non_bearer_authorization_is_401(client, rest, header):
    response = await client.get("/api/auth/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert set(response.json()) == {"error"}


async def test_me_with_expired_token_is_401(client, rest):
    past = int((dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).timestamp())
    response = await client.get("/api/auth/me", headers=bearer(token_for(exp=past)))
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}


async def test_me_with_wrong_signature_is_401(client, rest):
    route = rest.post("/rpc/auth_me")
    claims = jwt.get_unverified_claims(token_for())
    forged = jwt.encode(claims, "another-secret-that-is-long-enough-123456", algorithm="HS256")
    response = await client.get("/api/auth/me", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}
    assert not route.called


async def test_me_with_unsigned_alg_none_token_is_401(client, rest):
    _, payload, _ = token_for().split(".")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    response = await client.get("/api/auth/me", headers=bearer(f"{none_header}.{payload}."))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "claims", [{"userId": "1"}, {"userId": 0}, {"userId": True}, {"jti": ""}, {"name": None}]
)
async def test_me_with_token_missing_valid_claims_is_401(client, rest, claims):
    response = await client.get("/api/auth/me", headers=bearer(token_for(**claims)))
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}


async def test_me_when_the_user_row_is_gone_is_401(client, rest):
    rest.post("/rpc/auth_me").respond(200, json=None)
    response = await client.get("/api/auth/me", headers=bearer())
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}


# --------------------------------------------------------------------------------------
# logout
# --------------------------------------------------------------------------------------
async def test_logout_revokes_the_token_until_it_expires_and_clears_the_cookie(client, rest):
    route = rest.post("/rpc/revoke_token").respond(204)
    token = token_for()
    claims = jwt.get_unverified_claims(token)
    response = await client.post("/api/auth/logout", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"message": "Logout successful"}
    sent = sent_json(route)
    assert sent["p_jti"] == claims["jti"]
    assert dt.datetime.fromisoformat(sent["p_expires_at"]).timestamp() == claims["exp"]
    assert (
        route.calls.last.request.headers["x-gateway-session"]
        == f"1:{claims['jti']}:{claims['iat']}"
    )
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith('jwt="";') or cookie.startswith("jwt=;")
    assert "max-age=0" in cookie and "path=/" in cookie


async def test_logout_with_the_cookie_alone_works(client, rest):
    rest.post("/rpc/revoke_token").respond(204)
    response = await client.post("/api/auth/logout", headers=cookie(token_for()))
    assert response.status_code == 200
