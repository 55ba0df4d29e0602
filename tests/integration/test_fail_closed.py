"""Issue 21, item 3: session revocation fails closed.

1. Without PostgREST's pre-request hook (reset on `authenticator`, PostgREST's config
   reloaded: what PostgreSQL 16+ or an admin who skipped the step leaves) logout, revoked
   sessions and deleted users are still refused, by every route: each function the gateway
   calls checks the session itself (require_gateway_session, sql/R31_auth_sessions.sql).
2. With that check defeated too (the function replaced by a no-op), the gateway's probe
   sees a session that must be refused answered 200: `/health/ready` is 503 naming the
   reason and every authenticated route is 503 - a logged-out token never gets a 200. At
   start-up as well. Everything is restored afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg2
import pytest

import readiness
from tests.helpers import app_client, bearer, count_rows, insert_expenses, sql, stack_settings

HOOK = "public.check_gateway_session"
REST = os.environ.get("SUPABASE_URL", "") + "/rest/v1"
SERVICE_KEY = os.environ.get("SUPABASE_SERVICE_ROLE_KEY", "")
NOT_ENFORCED_ERROR = {"error": f"Unavailable: {readiness.NOT_ENFORCED}"}


@contextmanager
def superuser() -> Iterator:
    conn = psycopg2.connect(os.environ["DEV_ADMIN_DSN"])
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def postgrest_runs_the_hook() -> bool:
    """A service-role table read naming a session that must be refused: 401 while PostgREST
    runs the hook, 200 without it (a table read has no in-function check)."""
    answer = httpx.get(
        f"{REST}/categories?select=id&limit=1",
        headers={
            "apikey": SERVICE_KEY,
            "Authorization": f"Bearer {SERVICE_KEY}",
            "X-Gateway-Session": f"0:{secrets.token_hex(16)}:0",
        },
        timeout=5,
    )
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 401


def set_hook(on: bool) -> None:
    with superuser() as admin:
        if on:
            admin.execute(f"alter role authenticator set pgrst.db_pre_request to '{HOOK}'")
        else:
            admin.execute("alter role authenticator reset pgrst.db_pre_request")
        admin.execute("notify pgrst, 'reload config'")
    deadline = time.monotonic() + 20
    while postgrest_runs_the_hook() != on:
        assert time.monotonic() < deadline, "PostgREST did not reload its config"
        time.sleep(0.2)


@contextmanager
def without_the_hook() -> Iterator[None]:
    set_hook(False)
    try:
        yield
    finally:
        set_hook(True)


@contextmanager
def in_sql_check_replaced(dsn: str) -> Iterator[None]:
    """require_gateway_session() replaced by one that accepts everything (as the schema
    owner could by hand); the original definition is put back afterwards."""
    with sql(dsn) as cur:
        cur.execute("select pg_get_functiondef('public.require_gateway_session()'::regprocedure)")
        original = cur.fetchone()[0]
        cur.execute(
            "create or replace function public.require_gateway_session() returns bigint "
            "language sql stable as 'select null::bigint'"
        )
    try:
        yield
    finally:
        with sql(dsn) as cur:
            cur.execute(original)


async def wait_ready(api: httpx.AsyncClient, status: int) -> httpx.Response:
    deadline = time.monotonic() + 15
    while True:
        response = await api.get("/health/ready")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.3)


PASSWORD_CHANGE = {"current_password": "password123", "new_password": "N3w!passw0rd"}


def session_routes(expense_id: int) -> list[tuple[str, str, dict]]:
    return [
        ("GET", "/api/auth/me", {}),
        ("GET", "/api/dashboard/users", {}),
        ("GET", "/api/dashboard/1/monthly?year=2025&month=1", {}),
        ("GET", "/api/dashboard/1/yearly?year=2025", {}),
        ("GET", "/api/expenses", {}),
        ("GET", "/api/expenses/export.csv", {}),
        ("GET", "/api/expenses/export.xlsx", {}),
        ("GET", "/api/budgets?year=2025&month=1", {}),
        ("GET", "/api/recurring", {}),
        ("GET", f"/api/expenses/{expense_id}", {}),
        ("PUT", f"/api/expenses/{expense_id}", {"json": {"amount": 1}}),
        ("DELETE", f"/api/expenses/{expense_id}", {}),
        ("POST", "/api/expenses", {"json": {"amount": 5, "category_id": 1}}),
        # issue 22's session routes check the session in SQL too
        ("GET", "/api/auth/session", {}),
        ("GET", "/api/auth/sessions", {}),
        ("DELETE", "/api/auth/sessions", {}),
        ("DELETE", f"/api/auth/sessions/{'0' * 32}", {}),
        ("PUT", "/api/auth/password", {"json": PASSWORD_CHANGE}),
        ("POST", "/api/auth/totp/setup", {}),
        ("GET", "/api/admin/users", {}),
        ("POST", "/api/auth/logout", {}),
    ]


async def login(api: httpx.AsyncClient, name: str = "alok") -> str:
    response = await api.post(
        "/api/auth/login", json={"email": f"{name}@example.com", "password": "password123"}
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def test_logout_revoke_and_deletion_hold_without_the_pre_request_hook(api, fresh_db):
    insert_expenses(fresh_db, [(1, 1, None, "10.00", "x", "2025-01-05")])
    with sql(fresh_db) as cur:
        cur.execute("select max(id) from public.expenses")
        expense_id = cur.fetchone()[0]
    with without_the_hook():
        logged_out, revoked, deleted = await login(api), await login(api, "amol"), None
        assert (await api.get("/api/expenses", headers=bearer(logged_out))).status_code == 200
        assert (await api.post("/api/auth/logout", headers=bearer(logged_out))).status_code == 200
        # scripts/users.py revoke-sessions and users.py delete do exactly this in SQL (since
        # issue 22 a login's session row decides: revoke_user_sessions ends the rows too)
        with sql(fresh_db) as cur:
            cur.execute("select public.revoke_user_sessions(2, null, 'admin')")
            cur.execute(
                "insert into public.users (name, email, password_hash) "
                "values ('Gone', 'gone@example.com', 'x') returning id"
            )
            gone_id = cur.fetchone()[0]
        from tests.helpers import token_for

        deleted = token_for(gone_id, "Gone")
        with sql(fresh_db) as cur:
            cur.execute("delete from public.users where id = %s", (gone_id,))
        expenses_before = count_rows(fresh_db, "expenses")
        for token in (logged_out, revoked, deleted):
            for method, path, kwargs in session_routes(expense_id):
                response = await api.request(method, path, headers=bearer(token), **kwargs)
                assert (response.status_code, response.json()) == (
                    401,
                    {"error": "Invalid or expired token"},
                ), (method, path)
        assert count_rows(fresh_db, "expenses") == expenses_before  # refused changed nothing
        # a live session still works, and readiness holds: revocation is proven by the
        # functions themselves
        assert (await api.get("/api/auth/me", headers=bearer(await login(api)))).status_code == 200
        ready = await wait_ready(api, 200)
        assert ready.json()["checks"]["revocation"] == "ok"


async def test_a_service_role_call_without_a_session_is_refused_by_each_function(fresh_db):
    """Strict: the gateway's functions refuse a PostgREST call that names no session (the
    hook lets such calls pass; without the hook nothing else would stop them)."""
    with without_the_hook():
        for function, params in [
            ("list_expenses", {}),
            ("get_monthly_dashboard", {"p_user_id": 1, "p_year": 2025, "p_month": 1}),
            ("get_yearly_dashboard", {"p_user_id": 1, "p_year": 2025}),
            ("dashboard_users", {}),
            ("auth_me", {}),
            ("get_expense", {"p_id": 1}),
            ("export_expenses_csv", {}),
            ("gateway_session_check", {}),
            ("server_versions", {}),
            ("export_expenses_rows", {}),
            ("import_expenses", {"p_actor_id": 1, "p_rows": []}),
            ("budget_status", {"p_year": 2025, "p_month": 1}),
            (
                "set_budget",
                {"p_actor_id": 1, "p_category_id": 1, "p_month": "2025-01-01", "p_amount": 1},
            ),
            ("create_recurring", {"p_actor_id": 1, "p_rule": {}}),
            ("list_recurring", {}),
            ("update_recurring", {"p_id": 1, "p_actor_id": 1, "p_changes": {}}),
            ("delete_recurring", {"p_id": 1, "p_actor_id": 1}),
            # issue 22 (sql/R32_accounts.sql)
            ("current_session", {"p_session_id": "x", "p_expires_at": "2030-01-01T00:00:00Z"}),
            ("list_sessions", {"p_current": "x"}),
            ("revoke_session", {"p_id": "x"}),
            ("caller_password_hash", {}),
            ("totp_state", {}),
            ("totp_begin", {"p_secret": "x"}),
            ("totp_disable", {"p_step": 1}),
            ("admin_list_users", {}),
            ("admin_delete_user", {"p_id": 1}),
        ]:
            answer = httpx.post(
                f"{REST}/rpc/{function}",
                json=params,
                headers={"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"},
                timeout=5,
            )
            assert answer.status_code == 401, (function, answer.text)
            assert answer.json()["code"] == "PT401"


async def test_with_the_in_sql_check_defeated_too_it_fails_closed(api, fresh_db):
    token = await login(api)
    other = await login(api, "amol")
    assert (await api.get("/api/dashboard/1/yearly", headers=bearer(token))).status_code == 200
    try:
        with without_the_hook(), in_sql_check_replaced(fresh_db):
            ready = await wait_ready(api, 503)
            assert ready.status_code == 503
            assert ready.json() == {
                "error": "Session revocation is not enforced",
                "status": "unavailable",
                "checks": {
                    "postgres": "ok",
                    "postgrest": "ok",
                    "revocation": readiness.NOT_ENFORCED,
                    "admin": readiness.NO_ADMIN,  # issue 22 (no admin in this database)
                },
            }
            # logout itself is refused (503), and a token logged out in SQL gets no 200
            assert (await api.post("/api/auth/logout", headers=bearer(token))).status_code == 503
            with sql(fresh_db) as cur:
                cur.execute(
                    "insert into public.revoked_tokens (jti, expires_at) "
                    "select %s, now() + interval '1 day'",
                    (token_jti(token),),
                )
                # what revoke_token does too since issue 22: a login's session row decides
                cur.execute(
                    "update public.sessions set revoked_at = now(), revoked_reason = 'logout' "
                    "where id = %s",
                    (token_jti(token),),
                )
            for t in (token, other):
                for method, path, kwargs in session_routes(1):
                    response = await api.request(method, path, headers=bearer(t), **kwargs)
                    assert (response.status_code, response.json()) == (503, NOT_ENFORCED_ERROR)
            # public routes still answer
            assert (await api.get("/api/categories")).status_code == 200
            # a worker that starts in this state refuses from its first request (without its
            # bootstrap, which would notice the replaced function and restore it)
            async with app_client(stack_settings(bootstrap_on_startup=False)) as fresh:
                response = await fresh.get("/api/auth/me", headers=bearer(other))
                assert (response.status_code, response.json()) == (503, NOT_ENFORCED_ERROR)
                assert (await fresh.get("/health/ready")).status_code == 503
    finally:
        assert (await wait_ready(api, 200)).status_code == 200
    assert (await api.get("/api/auth/me", headers=bearer(other))).status_code == 200
    assert (await api.get("/api/auth/me", headers=bearer(token))).status_code == 401


def token_jti(token: str) -> str:
    from jose import jwt

    return jwt.get_unverified_claims(token)["jti"]


@pytest.mark.parametrize("hook", [True, False])
async def test_ready_reports_revocation_ok_with_or_without_the_hook(api, fresh_db, hook):
    if hook:
        ready = await wait_ready(api, 200)
    else:
        with without_the_hook():
            await asyncio.sleep(readiness.READY_TTL_SECONDS)
            ready = await wait_ready(api, 200)
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    checks.pop("admin")  # issue 22: details, not a condition of readiness
    assert checks == {"postgres": "ok", "postgrest": "ok", "revocation": "ok"}
