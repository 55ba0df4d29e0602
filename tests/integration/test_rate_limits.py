"""Login and register rate limits on a real gunicorn server with 3 workers.

The counters live in Postgres (ratelimit.PostgrestStorage), so the limit holds for the
whole server: every attempt below goes over its own TCP connection, and concurrent bursts
land on different workers. A per-worker counter would let up to 3 x 5 failures through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import count_rows, gunicorn_server

LOGIN_WINDOW = 15 * 60
REGISTER_WINDOW = 60 * 60
WORKERS = 3


@pytest.fixture(scope="module")
def limited_server_url() -> Iterator[str]:
    """One server for the module (a 3-worker start costs seconds on 2 cores); every
    counter lives in Postgres, and `fresh_db` empties them before each test."""
    with gunicorn_server(
        {
            "RATE_LIMIT_ENABLED": "true",
            "LOGIN_RATE_LIMIT": "5/15minutes",
            "REGISTER_RATE_LIMIT": "3/hour",
            "TRUSTED_PROXY_HOPS": "1",
        },
        workers=WORKERS,
    ) as base:
        yield base


@pytest.fixture
def limited_server(limited_server_url, fresh_db) -> str:
    return limited_server_url


def post(base: str, path: str, body: dict, client_ip: str | None = None) -> httpx.Response:
    """One request on a fresh connection (no keep-alive), so any worker may accept it."""
    headers = {"Connection": "close"}
    if client_ip:
        headers["X-Forwarded-For"] = client_ip  # as one trusted proxy hop would append it
    return httpx.post(f"{base}{path}", json=body, headers=headers, timeout=30)


async def burst(base: str, path: str, bodies: list[dict]) -> list[httpx.Response]:
    """All at once, one client (= one connection) each."""

    async def one(body: dict) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(f"{base}{path}", json=body)

    return list(await asyncio.gather(*(one(b) for b in bodies)))


def wrong(account: str = "alok@example.com") -> dict:
    return {"email": account, "password": "wrong-password"}


def assert_limited(response: httpx.Response, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {"error": "Too many attempts, please try again later"}
    assert 0 < int(response.headers["Retry-After"]) <= window


def test_login_lets_exactly_five_failures_through_across_workers(limited_server):
    statuses = [post(limited_server, "/api/auth/login", wrong()).status_code for _ in range(5)]
    assert statuses == [401] * 5
    assert_limited(post(limited_server, "/api/auth/login", wrong()), LOGIN_WINDOW)
    # Blocked means blocked: the right password does not get in either until the window ends.
    right = post(
        limited_server, "/api/auth/login", {"email": "alok@example.com", "password": "password123"}
    )
    assert_limited(right, LOGIN_WINDOW)


async def test_login_burst_of_12_failures_lets_exactly_five_through(limited_server):
    responses = await burst(limited_server, "/api/auth/login", [wrong()] * 12)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * 5 + [429] * 7
    for response in responses:
        if response.status_code == 429:
            assert_limited(response, LOGIN_WINDOW)


def test_login_limit_counts_the_account_case_insensitively(limited_server):
    for account in (
        "alok@example.com",
        "ALOK@example.com",
        "Alok@Example.com",
        "alok@EXAMPLE.com",
        "aLoK@example.com",
    ):
        assert post(limited_server, "/api/auth/login", wrong(account)).status_code == 401
    assert_limited(post(limited_server, "/api/auth/login", wrong("ALOK@EXAMPLE.COM")), LOGIN_WINDOW)


def test_blocked_account_does_not_block_another_account_from_the_same_client(limited_server):
    for _ in range(6):
        post(limited_server, "/api/auth/login", wrong())
    assert_limited(post(limited_server, "/api/auth/login", wrong()), LOGIN_WINDOW)
    assert post(limited_server, "/api/auth/login", wrong("amol@example.com")).status_code == 401
    ok = post(
        limited_server, "/api/auth/login", {"email": "amol@example.com", "password": "password123"}
    )
    assert ok.status_code == 200 and ok.json()["user"]["name"] == "Amol"


def test_blocked_account_is_not_blocked_for_another_client(limited_server):
    for _ in range(6):
        post(limited_server, "/api/auth/login", wrong(), client_ip="203.0.113.7")
    assert_limited(
        post(limited_server, "/api/auth/login", wrong(), client_ip="203.0.113.7"), LOGIN_WINDOW
    )
    ok = post(
        limited_server,
        "/api/auth/login",
        {"email": "alok@example.com", "password": "password123"},
        client_ip="198.51.100.9",
    )
    assert ok.status_code == 200


def test_successful_logins_do_not_use_up_the_failure_budget(limited_server):
    good = {"email": "atul@example.com", "password": "password123"}
    for _ in range(4):
        assert post(limited_server, "/api/auth/login", wrong("atul@example.com")).status_code == 401
    for _ in range(3):
        assert post(limited_server, "/api/auth/login", good).status_code == 200
    assert post(limited_server, "/api/auth/login", wrong("atul@example.com")).status_code == 401
    assert_limited(post(limited_server, "/api/auth/login", wrong("atul@example.com")), LOGIN_WINDOW)


def registration(i: int) -> dict:
    return {
        "username": f"limit_user_{i}",
        "password": "Str0ng!pass",
        "email": f"limit{i}@example.com",
    }


def test_register_allows_three_per_hour_per_client_across_workers(limited_server, fresh_db):
    before = count_rows(fresh_db, "users")
    statuses = [
        post(limited_server, "/api/auth/register", registration(i)).status_code for i in range(3)
    ]
    assert statuses == [200] * 3
    assert_limited(post(limited_server, "/api/auth/register", registration(3)), REGISTER_WINDOW)
    assert count_rows(fresh_db, "users") == before + 3
    # Another client is counted on its own.
    other = post(limited_server, "/api/auth/register", registration(4), client_ip="192.0.2.44")
    assert other.status_code == 200
    assert count_rows(fresh_db, "users") == before + 4


async def test_register_burst_of_8_stores_exactly_three_users(limited_server, fresh_db):
    before = count_rows(fresh_db, "users")
    responses = await burst(
        limited_server, "/api/auth/register", [registration(10 + i) for i in range(8)]
    )
    assert sorted(r.status_code for r in responses) == [200] * 3 + [429] * 5
    for response in responses:
        if response.status_code == 429:
            assert_limited(response, REGISTER_WINDOW)
    assert count_rows(fresh_db, "users") == before + 3


def test_rate_limits_can_be_switched_off(start_server, fresh_db):
    base = start_server(env={"RATE_LIMIT_ENABLED": "false"}, workers=2)
    statuses = {post(base, "/api/auth/login", wrong()).status_code for _ in range(8)}
    assert statuses == {401}


def test_login_limit_is_configurable(start_server, fresh_db):
    base = start_server(
        env={"RATE_LIMIT_ENABLED": "true", "LOGIN_RATE_LIMIT": "2/minute"}, workers=2
    )
    assert [post(base, "/api/auth/login", wrong()).status_code for _ in range(2)] == [401, 401]
    assert_limited(post(base, "/api/auth/login", wrong()), 60)
