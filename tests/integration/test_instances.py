"""Two gateway instances on one stack (issue 21, item 5; issue 24, item 3): two gunicorn
servers as a host runs two Procfile processes, 2 workers each, the dashboard cache on.

Pinned: logout and `scripts/users.py revoke-sessions` on one are refused on the other at
once, by every worker, also for a dashboard every worker has cached (a cache hit still asks
Postgres about the session); login limits count across both; one Idempotency-Key makes one
row across both; a dashboard read on one reflects a write on the other (through the API and
straight in SQL) within FRESH_WITHIN_S, measured here under load. The measured numbers are
printed (`-s`) and written down in docs/architecture.md ("Several instances").
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.helpers import ROOT, count_rows, sql

pytestmark = pytest.mark.slow

MONTHLY = "/api/dashboard/1/monthly?year=2025&month=1"
FRESH_WITHIN_S = 1.0  # the bound asserted; the measured one is far below (docs)
ROUNDS = 15


@pytest.fixture
def instances(start_server, fresh_db) -> tuple[str, str]:
    env = {"DASHBOARD_CACHE": "true"}
    a, b = start_server(env=env), start_server(env=env)
    for base in (a, b):
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/health/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, f"{base} never ready"
            time.sleep(0.2)
    return a, b


async def login(client: httpx.AsyncClient, base: str, name: str = "alok") -> dict[str, str]:
    response = await client.post(
        f"{base}/api/auth/login", json={"email": f"{name}@example.com", "password": "password123"}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def warm(client: httpx.AsyncClient, bases: tuple[str, ...], headers: dict) -> None:
    """Enough reads that every worker of every instance holds the dashboard for this
    session in its cache."""
    for _ in range(3):
        responses = await asyncio.gather(
            *(client.get(base + MONTHLY, headers=headers) for base in bases for _ in range(8))
        )
        assert all(r.status_code == 200 for r in responses)


async def burst(client: httpx.AsyncClient, bases: tuple[str, ...], headers: dict) -> list[int]:
    paths = (MONTHLY, "/api/dashboard/1/yearly?year=2025", "/api/auth/me", "/api/expenses")
    responses = await asyncio.gather(
        *(client.get(base + path, headers=headers) for base in bases for path in paths * 4)
    )
    return [r.status_code for r in responses]


async def test_logout_on_one_is_refused_on_the_other_at_once_never_from_a_cache(instances):
    a, b = instances
    async with httpx.AsyncClient(timeout=30) as client:
        answered = 0
        for round_ in range(ROUNDS):
            headers = await login(client, (a, b)[round_ % 2])
            await warm(client, (a, b), headers)
            out = (b, a)[round_ % 2]
            response = await client.post(f"{out}/api/auth/logout", headers=headers)
            assert response.status_code == 200
            statuses = await burst(client, (a, b), headers)  # at once, on every worker
            answered += sum(1 for s in statuses if s != 401)
            assert set(statuses) == {401}, statuses
        print(f"\nlogged-out token: {answered} of {ROUNDS * 32} reads answered (must be 0)")


async def test_revoke_sessions_is_refused_on_both_at_once(instances):
    a, b = instances
    async with httpx.AsyncClient(timeout=30) as client:
        on_a, on_b = await login(client, a, "amol"), await login(client, b, "amol")
        await warm(client, (a, b), on_a)
        await warm(client, (a, b), on_b)
        subprocess.run(
            [sys.executable, "scripts/users.py", "revoke-sessions", "Amol"],
            cwd=ROOT,
            env=os.environ,
            check=True,
            capture_output=True,
            timeout=60,
        )
        for headers in (on_a, on_b):
            assert set(await burst(client, (a, b), headers)) == {401}


async def test_login_limits_count_across_both(start_server, fresh_db):
    env = {"RATE_LIMIT_ENABLED": "true", "LOGIN_RATE_LIMIT": "4/15minutes"}
    a, b = start_server(env=env), start_server(env=env)
    async with httpx.AsyncClient(timeout=30) as client:
        statuses = []
        for i in range(6):
            response = await client.post(
                f"{(a, b)[i % 2]}/api/auth/login",
                json={"email": "atul@example.com", "password": "wrong-password"},
            )
            statuses.append(response.status_code)
        assert statuses == [401, 401, 401, 401, 429, 429]


async def test_one_idempotency_key_makes_one_row_across_both(instances, fresh_db):
    a, b = instances
    async with httpx.AsyncClient(timeout=30) as client:
        headers = {**await login(client, a), "Idempotency-Key": "two-instances-1"}
        body = {"amount": 12.5, "category_id": 1, "date": "2025-01-11"}
        responses = await asyncio.gather(
            *(
                client.post(f"{base}/api/expenses", json=body, headers=headers)
                for base in (a, b) * 5
            )
        )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert count_rows(fresh_db, "expenses") == 1


async def measure(
    write: Callable[[int], Awaitable[None]],
    read: Callable[[], Awaitable[float]],
    rounds: int = ROUNDS,
) -> list[float]:
    """Per round: write, then read on the other instance until the write shows; seconds."""
    delays = []
    for i in range(rounds):
        before = await read()
        await write(i)
        started = time.perf_counter()
        while await read() == before:
            assert time.perf_counter() - started < FRESH_WITHIN_S, "stale beyond the bound"
        delays.append(time.perf_counter() - started)
    return delays


def summary(label: str, delays: list[float]) -> str:
    ms = sorted(d * 1000 for d in delays)
    return (
        f"{label}: n={len(ms)} median {statistics.median(ms):.1f} ms, "
        f"max {ms[-1]:.1f} ms (bound asserted: {FRESH_WITHIN_S * 1000:.0f} ms)"
    )


async def test_a_write_on_one_is_read_on_the_other_within_the_bound_under_load(instances, fresh_db):
    a, b = instances
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=30) as client:
        headers = await login(client, a)
        loaded = 0

        async def load() -> None:  # other readers, on both instances, all the time
            nonlocal loaded
            while not stop.is_set():
                for base in (a, b):
                    await client.get(base + MONTHLY, headers=headers)
                    loaded += 1

        async def read_b() -> float:
            response = await client.get(b + MONTHLY, headers=headers)
            assert response.status_code == 200
            return response.json()["total_spent"]

        async def write_api(i: int) -> None:
            response = await client.post(
                f"{a}/api/expenses",
                json={"amount": 1 + i, "category_id": 1, "date": "2025-01-12"},
                headers=headers,
            )
            assert response.status_code == 201

        async def write_sql(i: int) -> None:
            with sql(fresh_db) as cur:
                cur.execute(
                    "insert into public.expenses (user_id, category_id, amount, date) "
                    "values (1, 2, %s, '2025-01-13')",
                    (100 + i,),
                )

        loaders = [asyncio.create_task(load()) for _ in range(6)]
        try:
            await asyncio.sleep(0.5)
            through_api = await measure(write_api, read_b)
            in_sql = await measure(write_sql, read_b)
        finally:
            stop.set()
            await asyncio.gather(*loaders)
    print("\n" + summary("write on A through the API, read on B", through_api))
    print(summary("write straight in SQL, read on B", in_sql))
    print(f"background reads during the measurement: {loaded}")
