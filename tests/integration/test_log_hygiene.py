"""No password, password hash, key, secret or issued token in any response or log line.

A real gunicorn server (its stdout and stderr to a file, LOG_LEVEL=DEBUG so every logger
speaks) goes through a full auth flow including the failure paths (duplicate and weak
registrations, wrong password, unknown user, malformed JSON, revoked token). Then its log
and what the stack's Postgres, PostgREST and nginx logged meanwhile are scanned for every
secret in play.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import ROOT, sql

PASSWORD = "Hyg1ene!Secret#Pw"
WRONG_PASSWORD = "Wr0ng!Secret#Pw"
WEAK_PASSWORD = "weakpassword"
STACK_LOGS = ("postgres.log", "postgrest.log", "nginx-error.log")


def stack_log_dir() -> Path:
    return ROOT / ".stack" / os.environ.get("DEV_PROFILE", "test") / "logs"


def log_offsets() -> dict[str, int]:
    return {
        name: (stack_log_dir() / name).stat().st_size
        for name in STACK_LOGS
        if (stack_log_dir() / name).exists()
    }


def read_since(offsets: dict[str, int]) -> dict[str, str]:
    texts = {}
    for name, offset in offsets.items():
        with open(stack_log_dir() / name, "rb") as handle:
            handle.seek(offset)
            texts[name] = handle.read().decode(errors="replace")
    return texts


def run_auth_flow(base: str) -> tuple[list[httpx.Response], str]:
    """Every auth path once; returns the responses and the issued token."""
    seen: list[httpx.Response] = []
    with httpx.Client(base_url=base, timeout=30) as client:

        def call(method: str, path: str, expect: int, **kwargs) -> httpx.Response:
            response = client.request(method, path, **kwargs)
            assert response.status_code == expect, (path, response.status_code, response.text)
            seen.append(response)
            return response

        new_user = {
            "username": "hygiene_user",
            "password": PASSWORD,
            "email": "hygiene@example.com",
        }
        call("POST", "/api/auth/register", 200, json=new_user)
        call("POST", "/api/auth/register", 400, json=new_user)  # taken
        call(
            "POST",
            "/api/auth/register",
            400,
            json={"username": "weak_user", "password": WEAK_PASSWORD},
        )  # too weak
        call(
            "POST",
            "/api/auth/register",
            400,  # malformed JSON
            content=f'{{"username": "x", "password": "{PASSWORD}"'.encode(),
            headers={"Content-Type": "application/json"},
        )
        call(
            "POST",
            "/api/auth/login",
            401,
            json={"email": "hygiene@example.com", "password": WRONG_PASSWORD},
        )
        call(
            "POST",
            "/api/auth/login",
            401,
            json={"email": "nobody@example.com", "password": PASSWORD},
        )
        call("POST", "/api/auth/login", 400, json={"password": PASSWORD})  # no email
        login = call(
            "POST", "/api/auth/login", 200, json={"email": "hygiene_user", "password": PASSWORD}
        )
        token = login.json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        call("GET", "/api/auth/me", 200, headers=bearer)
        client.cookies.set("jwt", token)
        call("GET", "/api/auth/me", 200)  # cookie only
        client.cookies.clear()
        call(
            "POST",
            "/api/expenses",
            201,
            headers=bearer,
            json={"amount": 12.5, "category_id": 1, "description": "lunch"},
        )
        call(
            "POST", "/api/expenses", 400, headers=bearer, json={"amount": 12.5, "category_id": 99}
        )  # unknown category
        call("GET", "/api/expenses", 200, headers=bearer)
        call("GET", "/api/dashboard/users", 200, headers=bearer)
        user_id = login.json()["user"]["id"]
        call("GET", f"/api/dashboard/{user_id}/monthly", 200, headers=bearer)
        call("GET", f"/api/dashboard/{user_id}/yearly", 200, headers=bearer)
        call("POST", "/api/auth/logout", 200, headers=bearer)
        call("GET", "/api/auth/me", 401, headers=bearer)  # revoked
        call("GET", "/api/auth/me", 401, headers={"Authorization": f"Bearer {token}x"})
    return seen, token


def secrets_in_play(dsn: str, token: str) -> dict[str, str]:
    with sql(dsn) as cur:
        cur.execute("select password_hash from public.users where name = 'hygiene_user'")
        stored_hash = cur.fetchone()[0]
    found = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "weak password": WEAK_PASSWORD,
        "stored bcrypt hash": stored_hash,
        "bcrypt prefix": "$2b$",
        "JWT_SECRET": os.environ["JWT_SECRET"],
        "service role key": os.environ["SUPABASE_SERVICE_ROLE_KEY"],
        "anon key": os.environ["SUPABASE_ANON_KEY"],
        "stack JWT secret": os.environ["SUPABASE_JWT_SECRET"],
        "issued token": token,
        # the signature alone is enough to replay a token
        "issued token signature": token.rsplit(".", 1)[1],
        "database password": urlsplit(os.environ["DATABASE_URL"]).password or "",
    }
    assert all(found.values())
    return found


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


@pytest.fixture
def logged_server(start_server, fresh_db, tmp_path) -> tuple[str, Path]:
    log = tmp_path / "server.log"
    return start_server(env={"LOG_LEVEL": "DEBUG"}, log_path=log), log


def test_full_auth_flow_leaks_no_secret_into_logs_or_responses(logged_server, fresh_db):
    base, log = logged_server
    offsets = log_offsets()
    responses, token = run_auth_flow(base)
    time.sleep(0.5)  # let the workers' last lines reach the file
    secrets = secrets_in_play(fresh_db, token)

    text = log.read_text(errors="replace")
    # The capture works: one access line per request of the flow, failures included.
    access = [json.loads(line) for line in text.splitlines() if '"ffb.access"' in line]
    assert len(access) >= len(responses)
    assert {400, 401} <= {entry["status"] for entry in access}
    for number, line in enumerate(text.splitlines(), 1):
        assert not leaks(line, secrets), f"server log line {number} leaks {leaks(line, secrets)}"

    appended_logs = read_since(offsets)
    print(
        f"\n[log hygiene] scanned {len(text.splitlines())} server log lines and "
        + ", ".join(f"{len(t.splitlines())} new {n} lines" for n, t in appended_logs.items())
        + f" for {len(secrets)} secrets"
    )
    for name, appended in appended_logs.items():
        assert not leaks(appended, secrets), f"stack {name} leaks {leaks(appended, secrets)}"

    response_secrets = {
        k: v for k, v in secrets.items() if k not in ("issued token", "issued token signature")
    }
    for response in responses:
        where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
        assert "password_hash" not in response.text, where
        assert not leaks(response.text, response_secrets), where
        assert not leaks(str(response.headers), response_secrets), where


def test_the_token_appears_only_in_the_login_response_and_its_cookie(logged_server, fresh_db):
    base, _ = logged_server
    responses, token = run_auth_flow(base)
    carrying = [
        f"{r.request.method} {r.request.url.path}"
        for r in responses
        if token in r.text or token in str(r.headers)
    ]
    assert carrying == ["POST /api/auth/login"]
