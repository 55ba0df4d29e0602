"""DASHBOARD_CACHE: dashboards served from the worker's memory stay fresh because Postgres
itself invalidates them (NOTIFY from statement triggers, LISTEN in each worker), whatever
path wrote - here plain SQL, as the SQL editor or a COPY would."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

import deps
from tests.helpers import app_client, sql, stack_settings, token_for

pytestmark = pytest.mark.slow

MONTHLY = "/api/dashboard/1/monthly?year=2025&month=1"
FRESH_WITHIN_S = 1.0


async def wait_for(condition, timeout: float = 10.0) -> float:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


@pytest.fixture
async def cached_api(fresh_db):
    async with app_client(stack_settings(dashboard_cache=True)) as client:
        cache = deps.app_state(client.app).dashboard_cache
        await wait_for(lambda: cache.listening)
        client.cache = cache
        yield client


def add_expense(dsn: str, amount: str, category_id: int = 1) -> int:
    with sql(dsn) as cur:
        cur.execute(
            "insert into public.expenses (user_id, category_id, amount, date) "
            "values (1, %s, %s, '2025-01-10') returning id",
            (category_id, amount),
        )
        return cur.fetchone()[0]


async def total(api, headers) -> float:
    response = await api.get(MONTHLY, headers=headers)
    assert response.status_code == 200
    return response.json()["total_spent"]


async def settled(cache, write) -> None:
    """Make a write in SQL and wait until its notification emptied the cache (so what the
    test caches next is not emptied under it)."""
    generation = cache.generation
    write()
    await wait_for(lambda: cache.generation > generation)


async def test_a_repeated_dashboard_is_served_from_the_cache(cached_api, fresh_db, auth_headers):
    await settled(cached_api.cache, lambda: add_expense(fresh_db, "100.00"))
    first = await cached_api.get(MONTHLY, headers=auth_headers)
    hits = cached_api.cache.hits
    again = await cached_api.get(MONTHLY, headers=auth_headers)
    assert again.content == first.content and again.json()["total_spent"] == 100
    assert cached_api.cache.hits == hits + 1
    assert again.headers["content-type"] == "application/json"
    assert again.headers["x-request-id"] and again.headers["x-content-type-options"] == "nosniff"


async def test_writes_made_straight_in_sql_are_seen_within_a_second(
    cached_api, fresh_db, auth_headers
):
    expense = 0

    def first() -> None:
        nonlocal expense
        expense = add_expense(fresh_db, "100.00")

    await settled(cached_api.cache, first)
    assert await total(cached_api, auth_headers) == 100
    assert await total(cached_api, auth_headers) == 100  # now cached
    steps = [
        (
            "insert",
            lambda cur: cur.execute(
                "insert into public.expenses (user_id, category_id, amount, date) "
                "values (1, 2, 50, '2025-01-11')"
            ),
            150,
        ),
        (
            "update",
            lambda cur: cur.execute(
                "update public.expenses set amount = 120 where id = %s", (expense,)
            ),
            170,
        ),
        (
            "delete",
            lambda cur: cur.execute("delete from public.expenses where id = %s", (expense,)),
            50,
        ),
    ]
    for what, write, expected in steps:
        with sql(fresh_db) as cur:
            write(cur)

        async def fresh(expected: float) -> None:
            while await total(cached_api, auth_headers) != expected:
                await asyncio.sleep(0.005)

        started = time.perf_counter()
        await asyncio.wait_for(fresh(expected), FRESH_WITHIN_S)
        print(f"\n[cache] {what} in SQL seen after {(time.perf_counter() - started) * 1000:.1f} ms")
    with sql(fresh_db) as cur:  # a name in the body
        cur.execute("update public.categories set name = 'Transport' where id = 2")

    async def renamed() -> bool:
        body = (await cached_api.get(MONTHLY, headers=auth_headers)).json()
        return body["category_breakdown"][0]["category"] == "Transport"

    deadline = time.perf_counter() + FRESH_WITHIN_S
    while not await renamed():
        assert time.perf_counter() < deadline, "category rename not seen"
        await asyncio.sleep(0.005)


async def test_a_logged_out_token_is_never_answered_from_the_cache(cached_api, fresh_db):
    await settled(cached_api.cache, lambda: add_expense(fresh_db, "100.00"))
    for revoke in ("api", "sql"):
        token = token_for()
        headers = {"Authorization": f"Bearer {token}"}
        hits = cached_api.cache.hits
        started = time.perf_counter()
        while cached_api.cache.hits == hits:  # cached for this session (once the previous
            await total(cached_api, headers)  # round's notification has come and gone)
            assert time.perf_counter() - started < FRESH_WITHIN_S
        if revoke == "api":
            response = await cached_api.post("/api/auth/logout", headers=headers)
            assert response.status_code == 200
            assert (await cached_api.get(MONTHLY, headers=headers)).status_code == 401
        else:  # another path: SQL
            from auth import decode_token

            user = decode_token(stack_settings(), token)
            with sql(fresh_db) as cur:
                cur.execute(
                    "insert into public.revoked_tokens (jti, expires_at) "
                    "values (%s, now() + interval '1 day')",
                    (user.jti,),
                )
            started = time.perf_counter()
            while (await cached_api.get(MONTHLY, headers=headers)).status_code != 401:
                assert time.perf_counter() - started < FRESH_WITHIN_S
                await asyncio.sleep(0.005)


async def test_nothing_is_served_from_the_cache_while_the_listener_is_down(fresh_db, auth_headers):
    """The listener cannot connect (DATABASE_URL names a closed port): the cache stays off,
    every request reaches PostgREST, and an SQL write is seen by the very next request."""
    settings = stack_settings(
        dashboard_cache=True,
        bootstrap_on_startup=False,
        database_url="postgresql://postgres:x@127.0.0.1:9/postgres",
    )
    async with app_client(settings) as api:
        cache = deps.app_state(api.app).dashboard_cache
        add_expense(fresh_db, "100.00")
        assert await total(api, auth_headers) == 100
        assert await total(api, auth_headers) == 100
        add_expense(fresh_db, "1.00")
        assert await total(api, auth_headers) == 101
        assert not cache.listening and cache.hits == 0


async def test_a_lost_listener_connection_empties_the_cache_and_comes_back(
    cached_api, fresh_db, auth_headers
):
    await settled(cached_api.cache, lambda: add_expense(fresh_db, "100.00"))
    await total(cached_api, auth_headers)
    generation = cached_api.cache.generation
    with sql(fresh_db) as cur:
        cur.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where application_name = 'ffb-cache-listener'"
        )
        assert cur.rowcount >= 1
    await wait_for(lambda: cached_api.cache.generation > generation)  # emptied at once
    await wait_for(lambda: cached_api.cache.listening, timeout=15)  # and back
    add_expense(fresh_db, "1.00")
    started = time.perf_counter()
    while await total(cached_api, auth_headers) != 101:
        assert time.perf_counter() - started < FRESH_WITHIN_S
        await asyncio.sleep(0.005)


async def test_a_listener_whose_probe_never_comes_back_caches_nothing(
    fresh_db, auth_headers, monkeypatch
):
    """What a transaction-mode pooler does to LISTEN, reproduced: notifications are not
    delivered to this connection. The listener's own probe goes unanswered, so it never
    counts as up and every dashboard reaches PostgREST."""
    import dashboard_cache

    monkeypatch.setattr(dashboard_cache, "PROBE_TIMEOUT_SECONDS", 0.2)
    real = dashboard_cache.connect

    @contextlib.contextmanager
    def deaf_connect(*args, **kwargs):  # LISTEN is accepted, nothing is ever delivered
        with real(*args, **kwargs) as conn:
            yield _Deaf(conn)

    monkeypatch.setattr(dashboard_cache, "connect", deaf_connect)  # this module's use only
    async with app_client(stack_settings(dashboard_cache=True)) as api:
        cache = deps.app_state(api.app).dashboard_cache
        await asyncio.sleep(1.0)  # several connect-probe-fail rounds
        add_expense(fresh_db, "100.00")
        assert await total(api, auth_headers) == 100
        assert await total(api, auth_headers) == 100
        add_expense(fresh_db, "1.00")
        assert await total(api, auth_headers) == 101  # the very next request
        assert not cache.listening and cache.hits == 0
        assert "probe notification did not come back" in cache.problem


class _Deaf:
    """A psycopg2 connection whose received notifications vanish."""

    def __init__(self, conn):
        self._conn = conn

    @property
    def notifies(self) -> list:
        self._conn.notifies.clear()
        return []

    def __getattr__(self, name):
        return getattr(self._conn, name)


async def test_every_write_through_the_api_is_seen_by_the_very_next_read(
    cached_api, fresh_db, auth_headers, monkeypatch
):
    """Read-your-writes on the worker that took the write: create, update and delete each
    empty its cache before their response leaves. The NOTIFY path is cut for this test
    (under load it can arrive after the next read), so only that can make it pass."""
    await settled(cached_api.cache, lambda: add_expense(fresh_db, "100.00"))

    def probes_only(conn, probe: str) -> bool:
        channels = {notify.channel for notify in conn.notifies}
        conn.notifies.clear()
        return probe in channels

    monkeypatch.setattr(cached_api.cache, "_drain", probes_only)

    async def cached_total() -> float:
        hits = cached_api.cache.hits
        while cached_api.cache.hits == hits:  # until the next read comes from the cache
            value = await total(cached_api, auth_headers)
        return value

    assert await cached_total() == 100
    created = await cached_api.post(
        "/api/expenses",
        json={"amount": 50, "category_id": 2, "date": "2025-01-12"},
        headers=auth_headers,
    )
    assert created.status_code == 201
    assert await total(cached_api, auth_headers) == 150
    expense = created.json()["id"]
    assert await cached_total() == 150
    updated = await cached_api.put(
        f"/api/expenses/{expense}", json={"amount": 20}, headers=auth_headers
    )
    assert updated.status_code == 200
    assert await total(cached_api, auth_headers) == 120
    assert await cached_total() == 120
    deleted = await cached_api.delete(f"/api/expenses/{expense}", headers=auth_headers)
    assert deleted.status_code == 200
    assert await total(cached_api, auth_headers) == 100


async def test_budgets_are_cached_and_follow_budget_and_expense_writes_in_sql(
    cached_api, fresh_db, auth_headers
):
    """GET /api/budgets is kept like a dashboard (budget_status reads budgets, the totals
    and categories, which all notify): a hit answers the same bytes; a budget or an expense
    written straight in SQL is seen within the bound."""
    url = "/api/budgets?year=2025&month=1"

    def set_budget(amount: str) -> None:
        with sql(fresh_db) as cur:
            cur.execute(
                "insert into public.budgets (category_id, month, amount) "
                "values (1, '2025-01-01', %s) on conflict (category_id, month) "
                "do update set amount = excluded.amount",
                (amount,),
            )

    await settled(cached_api.cache, lambda: set_budget("500"))
    first = await cached_api.get(url, headers=auth_headers)
    hits = cached_api.cache.hits
    again = await cached_api.get(url, headers=auth_headers)
    assert again.status_code == 200 and again.content == first.content
    assert cached_api.cache.hits == hits + 1
    assert [(b["budget"], b["spent"]) for b in again.json()] == [(500, 0)]

    async def row() -> tuple[float, float]:
        body = (await cached_api.get(url, headers=auth_headers)).json()
        return body[0]["budget"], body[0]["spent"]

    set_budget("600")
    started = time.perf_counter()
    while await row() != (600, 0):
        assert time.perf_counter() - started < FRESH_WITHIN_S, "a budget write was not seen"
        await asyncio.sleep(0.005)
    add_expense(fresh_db, "42.00")
    started = time.perf_counter()
    while await row() != (600, 42):
        assert time.perf_counter() - started < FRESH_WITHIN_S, "an expense was not seen"
        await asyncio.sleep(0.005)
