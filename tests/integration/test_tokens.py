"""Tokens on the real stack: only our HS256 tokens with our claims open the API.

Every forged, foreign, expired, logged-out or orphaned token is answered 401 {"error"} on
an endpoint that reads the database (`/api/auth/me`) and on one that writes it
(`POST /api/expenses`, which must store nothing).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
import uuid

import pytest
from jose import jwt

from tests.helpers import ROOT, count_rows, free_port, sql

EXPENSE = {"amount": 12.5, "category_id": 1, "description": "token test"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, claims: dict, key: bytes | None, digest=hashlib.sha256) -> str:
    """A JWT assembled by hand, so the header can claim anything (alg none, RS256...)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def our_claims(user_id: int = 1, name: str = "Alok", **changes) -> dict:
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    claims = {
        "userId": user_id,
        "name": name,
        "email": f"{name.lower()}@example.com",
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return claims


def our_secret() -> bytes:
    return os.environ["JWT_SECRET"].encode()


async def assert_refused(api, dsn, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    me = await api.get("/api/auth/me", headers=headers)
    assert me.status_code == 401, me.text
    assert set(me.json()) == {"error"}
    before = count_rows(dsn, "expenses")
    created = await api.post("/api/expenses", json=EXPENSE, headers=headers)
    assert created.status_code == 401, created.text
    assert set(created.json()) == {"error"}
    assert count_rows(dsn, "expenses") == before
    # The legacy cookie is no back door.
    api.cookies.clear()
    by_cookie = await api.get("/api/auth/me", headers={"Cookie": f"jwt={token}"})
    api.cookies.clear()
    assert by_cookie.status_code == 401


async def test_our_hs256_token_is_accepted(api, fresh_db):
    token = jwt.encode(our_claims(), our_secret(), algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/auth/me", headers=headers)).json()["id"] == 1
    assert (await api.post("/api/expenses", json=EXPENSE, headers=headers)).status_code == 201


async def test_alg_none_token_is_401(api, fresh_db):
    await assert_refused(
        api, fresh_db, hand_made({"alg": "none", "typ": "JWT"}, our_claims(), None)
    )


async def test_alg_none_with_our_signature_attached_is_401(api, fresh_db):
    await assert_refused(
        api, fresh_db, hand_made({"alg": "none", "typ": "JWT"}, our_claims(), our_secret())
    )


async def test_hs512_token_signed_with_our_secret_is_401(api, fresh_db):
    await assert_refused(api, fresh_db, jwt.encode(our_claims(), our_secret(), algorithm="HS512"))


async def test_rs256_header_hmac_signed_with_our_secret_is_401(api, fresh_db):
    # Key confusion: an RS256 header over an HMAC made with our (symmetric) secret.
    await assert_refused(
        api, fresh_db, hand_made({"alg": "RS256", "typ": "JWT"}, our_claims(), our_secret())
    )


async def test_supabase_service_role_key_is_not_a_user_token(api, fresh_db):
    await assert_refused(api, fresh_db, os.environ["SUPABASE_SERVICE_ROLE_KEY"])


async def test_token_signed_with_the_supabase_jwt_secret_is_401(api, fresh_db):
    supabase_secret = os.environ["SUPABASE_JWT_SECRET"]
    assert supabase_secret != os.environ["JWT_SECRET"]
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    claims = {"role": "authenticated", "sub": "1", "iat": now, "exp": now + 3600}
    await assert_refused(api, fresh_db, jwt.encode(claims, supabase_secret, algorithm="HS256"))


async def test_our_claims_signed_with_the_supabase_jwt_secret_are_401(api, fresh_db):
    await assert_refused(
        api,
        fresh_db,
        jwt.encode(our_claims(), os.environ["SUPABASE_JWT_SECRET"], algorithm="HS256"),
    )


async def test_expired_token_is_401(api, fresh_db):
    past = int(dt.datetime.now(dt.timezone.utc).timestamp()) - 3600
    await assert_refused(
        api,
        fresh_db,
        jwt.encode(our_claims(iat=past - 86400, exp=past), our_secret(), algorithm="HS256"),
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"userId": "1"},
        {"userId": 0},
        {"userId": -1},
        {"userId": True},
        {"userId": None},
        {"name": None},
        {"jti": ""},
        {"exp": None},
        {"iat": None},
    ],
    ids=lambda c: ",".join(f"{k}={v!r}" for k, v in c.items()),
)
async def test_token_with_bad_or_missing_claims_is_401(api, fresh_db, claims):
    full = our_claims()
    for key, value in claims.items():
        if value is None:
            full.pop(key)
        else:
            full[key] = value
    await assert_refused(api, fresh_db, jwt.encode(full, our_secret(), algorithm="HS256"))


async def test_logged_out_token_is_401(api, fresh_db):
    login = await api.post(
        "/api/auth/login", json={"email": "alok@example.com", "password": "password123"}
    )
    token = login.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/auth/me", headers=headers)).status_code == 200
    assert (await api.post("/api/auth/logout", headers=headers)).status_code == 200
    api.cookies.clear()
    assert count_rows(fresh_db, "revoked_tokens") == 1
    await assert_refused(api, fresh_db, token)
    # Logging out again with the revoked token is refused too (nothing new stored).
    assert (await api.post("/api/auth/logout", headers=headers)).status_code == 401
    assert count_rows(fresh_db, "revoked_tokens") == 1


async def test_deleted_users_token_is_401(api, fresh_db):
    token = jwt.encode(our_claims(user_id=4, name="Rashmi"), our_secret(), algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/auth/me", headers=headers)).status_code == 200
    with sql(fresh_db) as cur:
        cur.execute("delete from public.users where id = 4")
    await assert_refused(api, fresh_db, token)
    listed = await api.get("/api/expenses", headers=headers)
    assert listed.status_code == 401
    dashboard = await api.get("/api/dashboard/1/monthly", headers=headers)
    assert dashboard.status_code == 401


async def test_token_for_a_user_that_never_existed_is_401(api, fresh_db):
    await assert_refused(
        api,
        fresh_db,
        jwt.encode(our_claims(user_id=999, name="Ghost"), our_secret(), algorithm="HS256"),
    )


# --------------------------------------------------------------------------------------
# ENVIRONMENT=prod refuses weak settings: the real server process exits, naming the problem
# --------------------------------------------------------------------------------------
def run_prod_server(**env_overrides: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ENV_FILE": "",
        "ENVIRONMENT": "prod",
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "WEB_CONCURRENCY": "1",
        "JWT_SECRET": "k" * 48,
        "CORS_ORIGINS": "https://family.example.com",
        "METRICS_TOKEN": "m" * 40,
        **env_overrides,
    }
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "main:create_app()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JWT_SECRET": "short-secret"}, "JWT_SECRET must be at least 32 bytes in prod"),
        (
            {"JWT_SECRET": "super-secret-jwt-token-with-at-least-32-characters-long"},
            "JWT_SECRET is a well-known default",
        ),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS=* is not allowed in prod"),
        ({}, "REGISTRATION_MODE must be set explicitly in prod"),
        # issue 24 finding 7: /metrics is not left open (or guarded by `a`) by accident
        (
            {"REGISTRATION_MODE": "invite", "METRICS_TOKEN": "a"},
            "METRICS_TOKEN must be a random string of at least 32 bytes in prod",
        ),
        ({"REGISTRATION_MODE": "invite", "METRICS_TOKEN": ""}, "METRICS_TOKEN must be set in prod"),
    ],
    ids=[
        "short-secret",
        "default-secret",
        "wildcard-cors",
        "implicit-open-registration",
        "short-metrics-token",
        "no-metrics-token",
    ],
)
def test_prod_server_refuses_to_start_with_unsafe_settings(env, message):
    result = run_prod_server(**env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output[-2000:]
    assert env.get("JWT_SECRET", "\0") not in output  # the secret itself is never printed
