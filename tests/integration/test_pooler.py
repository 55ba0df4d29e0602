"""The API and the bootstrap through a connection pooler, as on hosted Supabase.

Hosted projects are reached through Supavisor: the session pooler (port 5432, one database
session per client connection) or the transaction pooler (port 6543, each transaction on
whichever backend is free: no LISTEN, no session lock across commits). The stack runs
pgbouncer in both modes as its stand-in (scripts/devstack/pooler.py); the app gets the
pooler's address as DATABASE_URL, exactly as an admin would paste it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import secrets
import subprocess
import sys
import time

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

import deps
import migrate
from tests.helpers import (
    DEMO_PASSWORD,
    ROOT,
    Dsn,
    app_client,
    bearer,
    insert_expenses,
    sql,
    stack_settings,
)

pytestmark = pytest.mark.slow

MODES = ("session", "transaction")


def pooler_url(mode: str) -> Dsn:
    return Dsn(os.environ[f"DEV_POOLER_{mode.upper()}_URL"])


async def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def autocommit(dsn: str, statement: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture
def empty_database(dsn):
    """A new, empty database (as `postgres`), and its name; dropped afterwards."""
    name = f"ffb_pooler_{secrets.token_hex(4)}"
    autocommit(dsn, f"create database {name}")
    yield name
    for attempt in range(20):
        try:
            autocommit(dsn, f"drop database if exists {name} with (force)")
            break
        except psycopg2.errors.InsufficientPrivilege:  # an autovacuum worker on it
            if attempt == 19:
                raise
            time.sleep(0.5)


def on_database(url: str, name: str) -> Dsn:
    return Dsn(psycopg2.extensions.make_dsn(url, dbname=name))


def bootstrap(url: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "scripts/bootstrap_schema.py", "--database-url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return result, time.monotonic() - started


def ledger_exists(url: str) -> bool:
    with sql(url) as cur:
        cur.execute("select to_regclass('public.schema_migrations') is not null")
        return cur.fetchone()[0]


# --------------------------------------------------------------------------------------
# Telling the modes apart
# --------------------------------------------------------------------------------------
def test_a_direct_or_session_connection_keeps_its_session_a_transaction_pooled_one_does_not(
    dsn,
):
    assert migrate.keeps_its_session(dsn)
    assert migrate.keeps_its_session(pooler_url("session"))
    assert not migrate.keeps_its_session(pooler_url("transaction"))


def test_both_poolers_reach_the_stacks_postgres_as_postgres(dsn):
    with sql(dsn) as cur:
        cur.execute("select current_setting('server_version_num')")
        direct = cur.fetchone()[0]
    for mode in MODES:
        with sql(pooler_url(mode)) as cur:
            cur.execute("select current_user, current_setting('server_version_num')")
            assert cur.fetchone() == ("postgres", direct)


# --------------------------------------------------------------------------------------
# The bootstrap
# --------------------------------------------------------------------------------------
def test_the_bootstrap_through_the_transaction_pooler_refuses_at_once_naming_the_session_pooler(
    dsn, empty_database
):
    result, seconds = bootstrap(on_database(pooler_url("transaction"), empty_database))
    assert result.returncode == 4, result.stdout + result.stderr
    assert seconds < 20  # never waits on a lock some pooled backend holds
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "transaction pooler" in lines[0] and "session pooler" in lines[0]
    assert "5432" in lines[0]
    assert not ledger_exists(on_database(dsn, empty_database))  # nothing changed


def test_the_bootstrap_through_the_session_pooler_applies_and_checks(dsn, empty_database):
    result, _ = bootstrap(on_database(pooler_url("session"), empty_database))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "==> schema matches sql/" in result.stdout
    assert ledger_exists(on_database(dsn, empty_database))
    # and, once applied, the app's start-up check needs no session: nothing to do
    assert migrate.ensure_schema(on_database(pooler_url("transaction"), empty_database)) == []


def test_the_apps_start_up_bootstrap_through_the_transaction_pooler_refuses_without_locking(
    dsn, empty_database
):
    url = on_database(pooler_url("transaction"), empty_database)
    started = time.monotonic()
    with pytest.raises(migrate.SchemaRefused, match="session pooler"):
        migrate.ensure_schema(url)
    assert time.monotonic() - started < 10
    assert not ledger_exists(on_database(dsn, empty_database))
    with sql(on_database(dsn, empty_database)) as cur:  # no lock left on any backend
        cur.execute("select count(*) from pg_locks where locktype = 'advisory'")
        assert cur.fetchone()[0] == 0


# --------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------
async def dashboard_total(api, headers) -> float:
    response = await api.get("/api/dashboard/1/monthly?year=2025&month=1", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["total_spent"]


@pytest.mark.parametrize("mode", MODES)
async def test_every_endpoint_behaves_through_the_pooler(mode, fresh_db):
    url = pooler_url(mode)
    insert_expenses(fresh_db, [(1, 1, 1, "40.00", "old", "2025-01-05")])
    settings = stack_settings(database_url=url, dashboard_cache=True)
    async with app_client(settings) as api:
        cache = deps.app_state(api.app).dashboard_cache
        await wait_for(lambda: api_ready(cache, mode))
        assert (await api.get("/health/ready")).status_code == 200

        login = await api.post(
            "/api/auth/login", json={"email": "alok@example.com", "password": DEMO_PASSWORD}
        )
        assert login.status_code == 200, login.text
        api.cookies.clear()
        alok = bearer(login.json()["token"])
        assert (await api.get("/api/auth/me", headers=alok)).json()["id"] == 1

        assert (await api.get("/api/categories")).status_code == 200
        assert (await api.get("/api/payment-methods")).status_code == 200
        created = await api.post(
            "/api/expenses",
            json={"amount": 100, "category_id": 1, "date": "2025-01-15", "description": "pool"},
            headers=alok,
        )
        assert created.status_code == 201, created.text
        expense = created.json()["expense"]["id"]
        listed = await api.get("/api/expenses", headers=alok)
        assert listed.status_code == 200
        assert expense in [e["id"] for e in listed.json()]
        got = await api.get(f"/api/expenses/{expense}", headers=alok)
        edited = await api.put(
            f"/api/expenses/{expense}",
            json={"amount": 120},
            headers={**alok, "If-Match": got.headers["etag"]},
        )
        assert edited.status_code == 200, edited.text

        assert await dashboard_total(api, alok) == 160
        assert await dashboard_total(api, alok) == 160  # served twice (cache or not)
        yearly = await api.get("/api/dashboard/1/yearly?year=2025", headers=alok)
        assert yearly.status_code == 200
        assert (await api.get("/api/dashboard/users", headers=alok)).status_code == 200
        export = await api.get("/api/expenses/export.csv", headers=alok)
        assert export.status_code == 200
        rows = list(csv.reader(io.StringIO(export.text)))
        assert len(rows) == 3  # header + two expenses
        if mode == "session":
            assert cache.hits >= 1  # the second dashboard read came from the cache

        # a write straight in SQL is seen at once by the next dashboard read
        generation = cache.generation
        insert_expenses(fresh_db, [(1, 1, 1, "5.00", "sql", "2025-01-06")])
        if mode == "session":  # the NOTIFY empties the cache (milliseconds)
            await wait_for(lambda: cache.generation > generation)
        assert await dashboard_total(api, alok) == 165

        deleted = await api.delete(f"/api/expenses/{expense}", headers=alok)
        assert deleted.status_code == 200, deleted.text
        assert await dashboard_total(api, alok) == 45

        assert (await api.post("/api/auth/logout", headers=alok)).status_code == 200
        api.cookies.clear()
        assert (await api.get("/api/auth/me", headers=alok)).status_code == 401
        assert (await api.get("/api/expenses", headers=alok)).status_code == 401

        if mode == "transaction":
            # LISTEN cannot work through a transaction pooler: the cache stays off
            assert cache.listening is False
            assert cache.hits == 0
            assert "transaction pooler" in cache.problem and "5432" in cache.problem


def api_ready(cache, mode: str) -> bool:
    """Session mode: the cache's listener proved itself. Transaction mode: its probe has
    failed at least once (it never gets to `listening`)."""
    return cache.listening if mode == "session" else bool(cache.problem)
