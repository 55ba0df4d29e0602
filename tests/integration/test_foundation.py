"""The foundation on the real stack: reference data, readiness, RLS, bootstrap."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest

import readiness
from tests.helpers import ROOT, count_rows, dev_script, forget_reference_data, sql


async def test_categories_come_from_postgres_by_id(api, fresh_db):
    forget_reference_data(api)  # no cached copy from an earlier test
    response = await api.get("/api/categories")
    assert response.status_code == 200
    assert response.json() == [
        {"id": 1, "name": "Food", "description": "Groceries, restaurants and snacks"},
        {"id": 2, "name": "Transportation", "description": "Fuel, public transport and taxis"},
        {
            "id": 3,
            "name": "Utilities",
            "description": "Electricity, water, internet and phone bills",
        },
        {
            "id": 4,
            "name": "Entertainment",
            "description": "Movies, events, subscriptions and hobbies",
        },
    ]


async def test_payment_methods_come_from_postgres_by_id(api, fresh_db):
    forget_reference_data(api)
    response = await api.get("/api/payment-methods")
    assert response.status_code == 200
    assert [m["name"] for m in response.json()] == [
        "Cash",
        "Credit Card",
        "Debit Card",
        "UPI",
        "Other",
    ]
    assert all(set(m) == {"id", "name"} for m in response.json())


async def test_ready_is_200_with_every_check_ok(api):
    response = await api.get("/health/ready")
    assert response.status_code == 200
    # admin: details, not a condition of readiness (issue 22)
    assert response.json()["checks"] == {
        "postgres": "ok",
        "postgrest": "ok",
        "revocation": "ok",
        "admin": response.json()["checks"]["admin"],
    }


async def test_ready_turns_503_when_postgrest_is_stopped(api):
    dev_script("stop-service", "postgrest")
    try:
        await asyncio.sleep(readiness.READY_TTL_SECONDS)  # the answer is cached that long
        response = await api.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["checks"]["postgrest"] == "unreachable"
        assert response.json()["error"] == "Database unavailable"
        assert (await api.get("/health")).status_code == 200
    finally:
        dev_script("start-service", "postgrest")
    await asyncio.sleep(readiness.READY_TTL_SECONDS)
    assert (await api.get("/health/ready")).status_code == 200


@pytest.mark.parametrize(
    "table",
    [
        "users",
        "expenses",
        "expense_monthly_totals",
        "revoked_tokens",
        "idempotency_keys",
        "rate_limits",
    ],
)
def test_anon_key_cannot_read_private_tables(fresh_db, table):
    key = os.environ["SUPABASE_ANON_KEY"]
    response = httpx.get(
        f"{os.environ['SUPABASE_URL']}/rest/v1/{table}?select=*",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    )
    assert response.status_code in (401, 403), response.text
    assert "password_hash" not in response.text


def test_service_key_can_read_users_the_anon_key_cannot(fresh_db):
    key = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
    response = httpx.get(
        f"{os.environ['SUPABASE_URL']}/rest/v1/users?select=id",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200 and len(response.json()) == 4


def test_anon_key_reads_reference_data_straight_from_postgrest(fresh_db):
    key = os.environ["SUPABASE_ANON_KEY"]
    response = httpx.get(
        f"{os.environ['SUPABASE_URL']}/rest/v1/categories?select=name&order=id",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200
    assert [c["name"] for c in response.json()][:1] == ["Food"]


def bootstrap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/bootstrap_schema.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bootstrap_applied_twice_is_clean_and_keeps_data(fresh_db):
    before = count_rows(fresh_db, "users")
    first, second = bootstrap(), bootstrap()
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "schema matches sql/" in second.stdout
    assert count_rows(fresh_db, "users") == before
    check = bootstrap("--check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_check_names_a_dropped_index_with_its_definition_and_exits_1(fresh_db):
    with sql(fresh_db) as cur:
        cur.execute("drop index public.expenses_user_date_idx")
    try:
        check = bootstrap("--check")
        assert check.returncode == 1
        assert (
            "missing index expenses_user_date_idx: CREATE INDEX expenses_user_date_idx ON "
            "public.expenses USING btree (user_id, date) INCLUDE (category_id, amount)"
            in check.stderr
        )
        with sql(fresh_db) as cur:  # --check changed nothing
            cur.execute(
                "select count(*) from pg_indexes where indexname = 'expenses_user_date_idx'"
            )
            assert cur.fetchone()[0] == 0
        # migrations are applied once: the apply does not re-create it, and says so
        apply = bootstrap()
        assert apply.returncode == 1 and "missing index expenses_user_date_idx" in apply.stderr
    finally:
        with sql(fresh_db) as cur:  # the repair an admin makes by hand
            cur.execute(
                "create index if not exists expenses_user_date_idx "
                "on public.expenses (user_id, date) include (category_id, amount)"
            )
    assert bootstrap("--check").returncode == 0


def test_check_names_disabled_rls(fresh_db):
    with sql(fresh_db) as cur:
        cur.execute("alter table public.expenses disable row level security")
    try:
        check = bootstrap("--check")
        assert check.returncode == 1
        assert "RLS disabled on public.expenses" in check.stderr
    finally:
        assert bootstrap().returncode == 0


def test_check_reports_totals_drift_and_bootstrap_repairs_it(fresh_db):
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.expenses (user_id, category_id, amount, date) "
            "values (1, 1, 10, '2025-01-05')"
        )
        cur.execute("update public.expense_monthly_totals set amount = amount + 1")
    check = bootstrap("--check")
    assert check.returncode == 1 and "expense_monthly_totals differs" in check.stderr
    assert bootstrap().returncode == 0
    assert bootstrap("--check").returncode == 0
