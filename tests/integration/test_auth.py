"""Login, register, me and logout on the real stack (Postgres + PostgREST + nginx)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid

import pytest
from jose import jwt

from tests.helpers import DEMO_PASSWORD, bearer, cookie, count_rows, sql, token_for

STRONG = "Str0ng!pass"
ALOK = {"id": 1, "name": "Alok", "email": "alok@example.com"}


async def login(api, who: str, password: str = DEMO_PASSWORD):
    response = await api.post("/api/auth/login", json={"email": who, "password": password})
    api.cookies.clear()
    return response


# --------------------------------------------------------------------------------------
# login
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["alok@example.com", "ALOK@Example.com", "Alok", "alok"])
async def test_login_by_email_or_username_case_insensitively(api, fresh_db, who):
    response = await login(api, who)
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Login successful"
    assert body["user"] == ALOK
    claims = jwt.decode(body["token"], os.environ["JWT_SECRET"], algorithms=["HS256"])
    assert (claims["userId"], claims["name"], claims["email"]) == (1, "Alok", "alok@example.com")
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert "password_hash" not in response.text


async def test_login_sets_the_httponly_samesite_strict_jwt_cookie(api, fresh_db):
    response = await login(api, "amol@example.com")
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"jwt={response.json()['token']};")
    lowered = set_cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered
    assert "max-age=86400" in lowered and "path=/" in lowered


async def test_unknown_email_and_wrong_password_give_the_same_401(api, fresh_db):
    unknown = await login(api, "nobody@example.com")
    wrong = await login(api, "alok@example.com", "wrong-password")
    wrong_by_name = await login(api, "Alok", "Password123")
    for response in (unknown, wrong, wrong_by_name):
        assert response.status_code == 401
        assert response.json() == {"error": "Invalid email or password"}
        assert "set-cookie" not in response.headers


async def test_login_token_works_on_the_protected_endpoints(api, fresh_db):
    token = (await login(api, "rashmi@example.com")).json()["token"]
    me = await api.get("/api/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json() == {"id": 4, "name": "Rashmi", "email": "rashmi@example.com"}
    assert (await api.get("/api/expenses", headers=bearer(token))).status_code == 200
    assert (await api.get("/api/dashboard/users", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"email": "alok\u0000", "password": DEMO_PASSWORD},
        {"email": "alok", "password": "password123\u0000"},
    ],
)
async def test_login_with_a_nul_character_is_400_not_500(api, fresh_db, body):
    response = await api.post("/api/auth/login", json=body)
    assert response.status_code == 400
    assert "must not contain NUL characters" in response.json()["error"]


async def test_login_with_missing_fields_is_400(api, fresh_db):
    response = await api.post("/api/auth/login", json={"email": "alok@example.com"})
    assert response.status_code == 400
    assert response.json() == {"error": "password is required"}


# --------------------------------------------------------------------------------------
# register -> login -> me -> logout -> me
# --------------------------------------------------------------------------------------
async def test_register_login_me_logout_then_me_is_401(api, fresh_db):
    registered = await api.post(
        "/api/auth/register",
        json={"username": "new_user", "password": STRONG, "email": "new@example.com"},
    )
    assert registered.status_code == 200
    user = registered.json()["user"]
    assert registered.json() == {
        "message": "Registration successful",
        "user": {"id": user["id"], "name": "new_user", "email": "new@example.com"},
    }
    assert user["id"] == 5

    token = (await login(api, "new_user", STRONG)).json()["token"]
    me = await api.get("/api/auth/me", headers=bearer(token))
    assert me.status_code == 200 and me.json() == user

    logout = await api.post("/api/auth/logout", headers=bearer(token))
    assert logout.status_code == 200
    assert logout.json() == {"message": "Logout successful"}

    after = await api.get("/api/auth/me", headers=bearer(token))
    assert after.status_code == 401
    assert after.json() == {"error": "Invalid or expired token"}
    # Refused everywhere, not only on /me.
    assert (await api.get("/api/expenses", headers=bearer(token))).status_code == 401
    assert (await api.post("/api/auth/logout", headers=bearer(token))).status_code == 401


async def test_register_stores_a_bcrypt_hash_never_the_password(api, fresh_db):
    await api.post("/api/auth/register", json={"username": "hash_check", "password": STRONG})
    with sql(fresh_db) as cur:
        cur.execute("select password_hash, email from public.users where name = 'hash_check'")
        stored, email = cur.fetchone()
    assert stored.startswith("$2") and STRONG not in stored
    assert email is None


async def test_logout_only_revokes_that_token(api, fresh_db):
    first = (await login(api, "alok")).json()["token"]
    second = (await login(api, "alok")).json()["token"]
    assert (await api.post("/api/auth/logout", headers=bearer(first))).status_code == 200
    assert (await api.get("/api/auth/me", headers=bearer(first))).status_code == 401
    assert (await api.get("/api/auth/me", headers=bearer(second))).status_code == 200


async def test_me_reads_the_user_fresh_from_the_database(api, fresh_db):
    token = (await login(api, "atul")).json()["token"]
    with sql(fresh_db) as cur:
        cur.execute("update public.users set email = 'atul.new@example.com' where id = 3")
    me = await api.get("/api/auth/me", headers=bearer(token))
    assert me.json() == {"id": 3, "name": "Atul", "email": "atul.new@example.com"}


# --------------------------------------------------------------------------------------
# the jwt cookie
# --------------------------------------------------------------------------------------
async def test_cookie_is_accepted_instead_of_the_bearer_header(api, fresh_db):
    token = (await login(api, "amol")).json()["token"]
    me = await api.get("/api/auth/me", headers=cookie(token))
    assert me.status_code == 200 and me.json()["name"] == "Amol"
    expenses = await api.get("/api/expenses", headers=cookie(token))
    assert expenses.status_code == 200


async def test_the_cookie_from_login_authenticates_the_next_request(api, fresh_db):
    response = await api.post(
        "/api/auth/login", json={"email": "amol@example.com", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200
    token = response.cookies.get("jwt")
    assert token == response.json()["token"]
    me = await api.get("/api/auth/me", headers=cookie(token))
    assert me.json()["id"] == 2


async def test_logout_with_the_cookie_clears_it_and_revokes_the_token(api, fresh_db):
    token = (await login(api, "amol")).json()["token"]
    response = await api.post("/api/auth/logout", headers=cookie(token))
    assert response.status_code == 200
    set_cookie = response.headers["set-cookie"].lower()
    assert set_cookie.startswith("jwt=") and "max-age=0" in set_cookie
    assert "path=/" in set_cookie
    assert (await api.get("/api/auth/me", headers=cookie(token))).status_code == 401


# --------------------------------------------------------------------------------------
# bad tokens
# --------------------------------------------------------------------------------------
async def test_me_without_a_token_is_401(api, fresh_db):
    response = await api.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication required"}


async def test_expired_token_is_401(api, fresh_db):
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    token = token_for(iat=now - 90_000, exp=now - 3_600)
    response = await api.get("/api/auth/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}


async def test_token_with_a_wrong_signature_is_401(api, fresh_db):
    token = token_for(secret="not-the-secret-of-this-app-0123456789abcdef")
    response = await api.get("/api/auth/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}


async def test_a_validly_signed_token_for_our_secret_works(api, fresh_db):
    # Control for the two tests above: only the expiry/signature made them fail.
    response = await api.get("/api/auth/me", headers=bearer(token_for()))
    assert response.status_code == 200


async def test_token_of_a_deleted_user_is_401(api, fresh_db):
    await api.post("/api/auth/register", json={"username": "short_lived", "password": STRONG})
    token = (await login(api, "short_lived", STRONG)).json()["token"]
    assert (await api.get("/api/auth/me", headers=bearer(token))).status_code == 200
    with sql(fresh_db) as cur:
        cur.execute("delete from public.users where name = 'short_lived'")
    response = await api.get("/api/auth/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}
    assert (await api.get("/api/dashboard/users", headers=bearer(token))).status_code == 401


async def test_token_naming_a_user_id_that_never_existed_is_401(api, fresh_db):
    response = await api.get("/api/auth/me", headers=bearer(token_for(userId=999)))
    assert response.status_code == 401


# --------------------------------------------------------------------------------------
# register validation and duplicates
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"username": "ab", "password": STRONG}, "Username must be 3-30"),
        ({"username": "a" * 31, "password": STRONG}, "Username must be 3-30"),
        ({"username": "bad-name", "password": STRONG}, "Username must be 3-30"),
        ({"username": "trailing_newline\n", "password": STRONG}, "Username must be 3-30"),
        ({"username": "good_name", "password": "Sh0rt!"}, "8-128"),
        ({"username": "good_name", "password": "Aa1!" + "a" * 125}, "8-128"),
        ({"username": "good_name", "password": "nouppercase1!"}, "uppercase"),
        ({"username": "good_name", "password": "NOLOWERCASE1!"}, "uppercase"),
        ({"username": "good_name", "password": "NoDigitsHere!"}, "uppercase"),
        ({"username": "good_name", "password": "NoSpecial123"}, "uppercase"),
        ({"password": STRONG}, "username is required"),
        ({"username": "good_name", "password": "Str0ng!\u0000pass"}, "NUL"),
        ({"username": "good_name", "password": STRONG, "email": "a\u0000@example.com"}, "NUL"),
    ],
)
async def test_register_validation_is_400_and_stores_nothing(api, fresh_db, body, fragment):
    response = await api.post("/api/auth/register", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert count_rows(fresh_db, "users") == 4


@pytest.mark.parametrize("username", ["abc", "A" * 30, "with_under_9"])
async def test_register_accepts_valid_usernames(api, fresh_db, username):
    response = await api.post("/api/auth/register", json={"username": username, "password": STRONG})
    assert response.status_code == 200
    assert response.json()["user"]["name"] == username


@pytest.mark.parametrize("username", ["Alok", "alok", "ALOK", "aLoK"])
async def test_register_taken_username_is_400_case_insensitively(api, fresh_db, username):
    response = await api.post("/api/auth/register", json={"username": username, "password": STRONG})
    assert response.status_code == 400
    assert response.json() == {"error": "Username already exists"}
    assert count_rows(fresh_db, "users") == 4


async def test_register_taken_email_is_400(api, fresh_db):
    response = await api.post(
        "/api/auth/register",
        json={"username": "someone_new", "password": STRONG, "email": "AMOL@example.com"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Email already exists"}


async def test_concurrent_duplicate_registrations_give_one_200_and_the_rest_400(api, fresh_db):
    name = "racer_" + uuid.uuid4().hex[:8]
    variants = [name, name.upper(), name.capitalize()] * 4  # 12, differing only in case
    responses = await asyncio.gather(
        *[
            api.post("/api/auth/register", json={"username": v, "password": STRONG})
            for v in variants[:10]
        ]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 9, [r.text for r in responses]
    assert all(
        r.json() == {"error": "Username already exists"} for r in responses if r.status_code == 400
    )
    with sql(fresh_db) as cur:
        cur.execute("select count(*) from public.users where lower(name) = lower(%s)", (name,))
        assert cur.fetchone()[0] == 1


async def test_no_auth_response_ever_contains_a_password_hash(api, fresh_db):
    texts = []
    r = await api.post("/api/auth/register", json={"username": "leak_check", "password": STRONG})
    texts.append(r.text)
    r = await login(api, "leak_check", STRONG)
    texts.append(r.text)
    token = r.json()["token"]
    texts.append((await api.get("/api/auth/me", headers=bearer(token))).text)
    texts.append((await api.get("/api/dashboard/users", headers=bearer(token))).text)
    texts.append((await login(api, "leak_check", "wrong")).text)
    texts.append((await api.post("/api/auth/logout", headers=bearer(token))).text)
    for text in texts:
        assert "password_hash" not in text and "$2b$" not in text and STRONG not in text
        assert '"detail"' not in text
