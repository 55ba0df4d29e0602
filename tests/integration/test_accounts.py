"""Accounts on the real stack (issue 22): roles, the admin API, tokens with refresh,
sessions, password change and reset, TOTP.

Every refusal is checked to change nothing (tests.helpers.data_state: expenses, totals,
the audit log, the user count); every rule is Postgres' (sql/R21_access_roles.sql,
sql/R32_accounts.sql), so some tests also go around the gateway (PostgREST with an
`authenticated` JWT, scripts/users.py as the owner) to show the rule holds there too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import subprocess
import sys
import time

import httpx
import pyotp
import pytest
from jose import jwt

import readiness
from tests.helpers import (
    DEMO_PASSWORD,
    ROOT,
    app_client,
    data_state,
    insert_expenses,
    sql,
    stack_settings,
)

STRONG = "N3w!passw0rd"
EXPENSE = {"amount": 12.5, "category_id": 1, "description": "accounts test"}
VIEWER_REFUSED = {"error": "Viewers can read but not change anything"}
ADMINS_ONLY = {"error": "Admins only"}
LAST_ADMIN = {"error": "The last admin cannot be demoted or deleted"}


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def set_role(dsn: str, user_id: int, role: str) -> None:
    with sql(dsn) as cur:
        cur.execute("update public.users set role = %s where id = %s", (role, user_id))


def role_of(dsn: str, user_id: int) -> str | None:
    with sql(dsn) as cur:
        cur.execute("select role from public.users where id = %s", (user_id,))
        row = cur.fetchone()
        return row[0] if row else None


def audit_actions(dsn: str, prefix: str = "") -> list[str]:
    with sql(dsn) as cur:
        cur.execute(
            "select action from public.audit_log where action like %s order by id", (prefix + "%",)
        )
        return [r[0] for r in cur.fetchall()]


async def login(api, who: str, password: str = DEMO_PASSWORD, **extra) -> str:
    response = await api.post("/api/auth/login", json={"email": who, "password": password, **extra})
    api.cookies.clear()
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def token_pair(api, who: str, password: str = DEMO_PASSWORD, **extra) -> dict:
    response = await api.post("/api/auth/token", json={"email": who, "password": password, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me_status(api, token: str) -> int:
    return (await api.get("/api/auth/me", headers=h(token))).status_code


def users_script(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "users.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BCRYPT_ROUNDS": "4"},
    )


@pytest.fixture
def family(fresh_db):
    """The demo family with expenses; Alok (1) is the admin, Amol (2) a viewer, Atul (3)
    and Rashmi (4) members."""
    insert_expenses(
        fresh_db,
        [(1, 1, 1, 10, "alok's", "2025-01-05"), (2, 1, 1, 20, "amol's", "2025-01-06")],
    )
    set_role(fresh_db, 1, "admin")
    set_role(fresh_db, 2, "viewer")
    return fresh_db


# --------------------------------------------------------------------------------------
# (a) roles
# --------------------------------------------------------------------------------------
def test_users_without_a_role_are_members(fresh_db):
    """What migration 0008 does to every existing user (the column's default)."""
    with sql(fresh_db) as cur:
        cur.execute("select distinct role from public.users")
        assert cur.fetchall() == [("member",)]
        with pytest.raises(Exception, match="users_role_valid"):
            cur.execute("update public.users set role = 'owner' where id = 1")


async def test_a_viewer_reads_what_a_member_reads(api, family):
    viewer, member = await login(api, "amol"), await login(api, "atul")
    for path in ("/api/expenses", "/api/dashboard/users", "/api/dashboard/1/yearly?year=2025"):
        as_viewer = await api.get(path, headers=h(viewer))
        as_member = await api.get(path, headers=h(member))
        assert as_viewer.status_code == as_member.status_code == 200
        assert as_viewer.json() == as_member.json()


async def test_every_write_of_a_viewer_is_403_and_changes_nothing(api, family):
    viewer = await login(api, "amol")
    before = data_state(family)
    with sql(family) as cur:
        cur.execute("select id from public.expenses order by id")
        alok_expense, amol_expense = (r[0] for r in cur.fetchall())
    attempts = [
        ("POST", "/api/expenses", {"json": EXPENSE}),
        ("POST", "/api/expenses", {"json": {**EXPENSE, "user_id": 2}}),
        ("POST", "/api/expenses", {"json": EXPENSE, "headers": {"Idempotency-Key": "k-1"}}),
        ("PUT", f"/api/expenses/{amol_expense}", {"json": {"amount": 1}}),
        ("PUT", f"/api/expenses/{alok_expense}", {"json": {"amount": 1}}),
        ("DELETE", f"/api/expenses/{amol_expense}", {}),
        ("DELETE", f"/api/expenses/{alok_expense}", {}),
    ]
    for method, path, kwargs in attempts:
        headers = {**h(viewer), **kwargs.pop("headers", {})}
        response = await api.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json() == VIEWER_REFUSED
    assert data_state(family) == before
    with sql(family) as cur:
        cur.execute("select count(*) from public.idempotency_keys")
        assert cur.fetchone()[0] == 0
    # the same member as `member` writes (the refusal is the role, nothing else)
    set_role(family, 2, "member")
    created = await api.post("/api/expenses", json=EXPENSE, headers=h(viewer))
    assert created.status_code == 201, created.text


def planning_state(dsn: str) -> tuple:
    """Budgets, recurring rules and their occurrences (issue 23's tables), besides
    data_state's expenses, totals and audit."""
    with sql(dsn) as cur:
        got = []
        for table in ("budgets", "recurring_expenses", "recurring_occurrences"):
            cur.execute(
                f"select coalesce(json_agg(t order by t), '[]')::text from public.{table} t"
            )
            got.append(cur.fetchone()[0])
    return (*data_state(dsn), *got)


async def test_a_viewer_can_neither_plan_nor_import(api, family):
    """Issue 23's writes (budgets, recurring rules, import) refuse a viewer the same way,
    in Postgres, before anything is written; reads answer as for a member."""
    admin, viewer = await login(api, "alok"), await login(api, "amol")
    rule = {"amount": 10, "category_id": 1, "frequency": "monthly", "start_date": "2025-01-01"}
    made = await api.post("/api/recurring", json=rule, headers=h(admin))
    assert made.status_code == 201, made.text
    rule_id = made.json()["id"]
    before = planning_state(family)
    csv_body = "date,user,category,amount\n2025-02-01,Amol,Food,5\n"
    attempts = [
        ("PUT", "/api/budgets", {"json": {"category_id": 1, "amount": 100, "month": "2025-01"}}),
        ("POST", "/api/recurring", {"json": rule}),
        ("PUT", f"/api/recurring/{rule_id}", {"json": {"amount": 11}}),
        ("DELETE", f"/api/recurring/{rule_id}", {}),
        ("POST", "/api/expenses/import", {"content": csv_body, "ctype": "text/csv"}),
        ("POST", "/api/expenses/import?dry_run=true", {"content": csv_body, "ctype": "text/csv"}),
    ]
    for method, path, kwargs in attempts:
        headers = h(viewer)
        if "ctype" in kwargs:
            headers = {**headers, "Content-Type": kwargs.pop("ctype")}
        response = await api.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json() == VIEWER_REFUSED
    assert planning_state(family) == before
    for path in ("/api/budgets?year=2025&month=1", "/api/recurring"):
        as_viewer = await api.get(path, headers=h(viewer))
        assert as_viewer.status_code == 200, as_viewer.text
        assert as_viewer.json() == (await api.get(path, headers=h(admin))).json()


def test_a_viewer_is_refused_by_postgres_itself_through_postgrest(family):
    """The rule is Postgres': a viewer writing with an `authenticated` JWT straight to
    PostgREST (no gateway) is refused by the expenses_writers_only trigger."""
    token = jwt.encode(
        {"role": "authenticated", "userId": 2, "exp": int(time.time()) + 600},
        os.environ["SUPABASE_JWT_SECRET"],
        algorithm="HS256",
    )
    key = os.environ["SUPABASE_ANON_KEY"]
    before = data_state(family)
    response = httpx.post(
        os.environ["SUPABASE_URL"] + "/rest/v1/expenses",
        headers={"apikey": key, "Authorization": f"Bearer {token}"},
        json={"user_id": 2, "created_by": 2, "category_id": 1, "amount": 5},
    )
    assert response.status_code == 403, response.text
    assert response.json()["message"] == VIEWER_REFUSED["error"]
    assert data_state(family) == before


async def test_users_script_sets_roles_and_keeps_the_last_admin(api, family):
    result = users_script("set-role", "Atul", "viewer")
    assert result.returncode == 0, result.stderr
    assert "viewer" in result.stdout and role_of(family, 3) == "viewer"
    refused = users_script("set-role", "alok", "member")
    assert refused.returncode == 1
    assert "last admin" in refused.stderr and role_of(family, 1) == "admin"
    refused = users_script("delete", "alok", "--yes")
    assert refused.returncode == 1 and role_of(family, 1) == "admin"
    assert users_script("set-role", "Rashmi", "admin").returncode == 0
    assert users_script("set-role", "alok", "member").returncode == 0
    assert audit_actions(family, "user.role") == ["user.role"] * 3
    # issue 24's rules hold for set-role too: --id / --name say which user, ROLE follows
    assert users_script("set-role", "--id", "3", "member").returncode == 0
    assert role_of(family, 3) == "member"
    assert users_script("set-role", "--name", "Atul", "viewer").returncode == 0
    assert role_of(family, 3) == "viewer"
    wrong = users_script("set-role", "--id", "3", "owner")
    assert wrong.returncode == 2 and "ROLE" in wrong.stderr and role_of(family, 3) == "viewer"
    assert audit_actions(family, "user.role") == ["user.role"] * 5


async def test_ready_says_when_no_user_is_an_admin(api, fresh_db):
    ready = await api.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["admin"].startswith("none: run scripts/users.py set-role")
    set_role(fresh_db, 4, "admin")
    await asyncio.sleep(readiness.READY_TTL_SECONDS)  # issue 21: readiness is cached 1 s
    assert (await api.get("/health/ready")).json()["checks"]["admin"] == "ok"


# --------------------------------------------------------------------------------------
# (b) the admin API
# --------------------------------------------------------------------------------------
ADMIN_CALLS = [
    ("GET", "/api/admin/users", None),
    ("POST", "/api/admin/users", {"username": "kabir", "role": "member"}),
    ("PATCH", "/api/admin/users/3", {"role": "viewer"}),
    ("POST", "/api/admin/users/3/reset", None),
    ("DELETE", "/api/admin/users/3", None),
    ("POST", "/api/admin/invites", {"note": "x"}),
]


@pytest.mark.parametrize("who", ["amol", "atul"])
async def test_the_admin_api_is_403_for_members_and_viewers(api, family, who):
    token = await login(api, who)
    before = data_state(family)
    for method, path, body in ADMIN_CALLS:
        response = await api.request(method, path, json=body, headers=h(token))
        assert response.status_code == 403, (method, path, response.text)
        assert response.json() == ADMINS_ONLY
    assert data_state(family) == before
    assert await me_status(api, token) == 200


async def test_admin_lists_users_with_role_and_expense_count_and_no_hash(api, family):
    admin = await login(api, "alok")
    response = await api.get("/api/admin/users", headers=h(admin))
    assert response.status_code == 200
    rows = response.json()
    assert [list(r) for r in rows] == [
        ["id", "name", "email", "role", "created_at", "expense_count"]
    ] * 4
    assert [(r["name"], r["role"], r["expense_count"]) for r in rows] == [
        ("Alok", "admin", 1),
        ("Amol", "viewer", 1),
        ("Atul", "member", 0),
        ("Rashmi", "member", 0),
    ]
    assert "$2" not in response.text and "password" not in response.text


async def test_admin_creates_a_member_who_sets_a_password_with_the_reset_code(api, family):
    admin = await login(api, "alok")
    created = await api.post(
        "/api/admin/users",
        json={"username": "kabir", "email": "kabir@example.com", "role": "viewer"},
        headers=h(admin),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "kabir" and body["role"] == "viewer" and body["reset_code"]
    # no usable password until the code is used
    refused = await api.post("/api/auth/login", json={"email": "kabir", "password": "!"})
    assert refused.status_code == 401
    code = body["reset_code"]
    with sql(family) as cur:
        cur.execute("select code_sha256 from public.password_reset_codes")
        assert cur.fetchall() == [(hashlib.sha256(code.encode()).hexdigest(),)]
    reset = await api.post("/api/auth/reset-password", json={"code": code, "new_password": STRONG})
    assert reset.status_code == 200, reset.text
    assert await login(api, "kabir", STRONG)
    again = await api.post("/api/auth/reset-password", json={"code": code, "new_password": STRONG})
    assert again.status_code == 400
    assert again.json() == {"error": "Invalid or expired reset code"}
    assert audit_actions(family, "admin.") == ["admin.user_create"]


async def test_admin_creates_a_member_with_a_password(api, family):
    admin = await login(api, "alok")
    created = await api.post(
        "/api/admin/users", json={"username": "kabir", "password": STRONG}, headers=h(admin)
    )
    assert created.status_code == 201
    assert "reset_code" not in created.json() and created.json()["role"] == "member"
    assert await login(api, "kabir", STRONG)
    taken = await api.post("/api/admin/users", json={"username": "ALOK"}, headers=h(admin))
    assert taken.status_code == 400 and taken.json() == {"error": "Username already exists"}


async def test_admin_patches_role_email_and_name(api, family):
    admin = await login(api, "alok")
    response = await api.patch(
        "/api/admin/users/3",
        json={"role": "viewer", "email": "atul@family.example", "name": "Atul_K"},
        headers=h(admin),
    )
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in ("name", "email", "role")} == {
        "name": "Atul_K",
        "email": "atul@family.example",
        "role": "viewer",
    }
    assert audit_actions(family, "admin.") == ["admin.user_update"]
    bad = await api.patch("/api/admin/users/3", json={"role": "owner"}, headers=h(admin))
    assert bad.status_code == 400
    unknown = await api.patch("/api/admin/users/999", json={"role": "member"}, headers=h(admin))
    assert unknown.status_code == 404


async def test_the_last_admin_can_be_neither_demoted_nor_deleted(api, family):
    admin = await login(api, "alok")
    before = data_state(family)
    demote = await api.patch("/api/admin/users/1", json={"role": "member"}, headers=h(admin))
    assert demote.status_code == 409 and demote.json() == LAST_ADMIN
    delete = await api.delete("/api/admin/users/1", headers=h(admin))
    assert delete.status_code == 409 and delete.json() == LAST_ADMIN
    assert data_state(family) == before and role_of(family, 1) == "admin"
    # with a second admin, either may go
    promote = await api.patch("/api/admin/users/4", json={"role": "admin"}, headers=h(admin))
    assert promote.status_code == 200
    assert (
        await api.patch("/api/admin/users/1", json={"role": "member"}, headers=h(admin))
    ).status_code == 200
    assert role_of(family, 1) == "member"


async def test_two_admins_demoting_each_other_at_once_leave_one(family):
    set_role(family, 4, "admin")
    async with app_client(stack_settings()) as a, app_client(stack_settings()) as b:
        alok, rashmi = await login(a, "alok"), await login(b, "rashmi")
        results = await asyncio.gather(
            a.patch("/api/admin/users/4", json={"role": "member"}, headers=h(alok)),
            b.patch("/api/admin/users/1", json={"role": "member"}, headers=h(rashmi)),
        )
    statuses = sorted(r.status_code for r in results)
    # one wins; the other is the last admin's 409 (or 403: no longer an admin)
    assert statuses[0] == 200 and statuses[1] in (403, 409), [r.text for r in results]
    with sql(family) as cur:
        cur.execute("select count(*) from public.users where role = 'admin'")
        assert cur.fetchone()[0] == 1


async def test_admin_reset_ends_sessions_clears_totp_and_gives_a_code(api, family):
    admin = await login(api, "alok")
    target = await login(api, "atul")
    pair = await token_pair(api, "atul")
    with sql(family) as cur:
        cur.execute(
            "update public.users set totp_secret = %s, totp_enabled_at = now() where id = 3",
            (pyotp.random_base32(),),
        )
    response = await api.post("/api/admin/users/3/reset", headers=h(admin))
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["reset_code", "expires_at"]
    assert await me_status(api, target) == 401
    assert await me_status(api, pair["access_token"]) == 401
    refreshed = await api.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401
    with sql(family) as cur:
        cur.execute("select totp_secret, totp_enabled_at from public.users where id = 3")
        assert cur.fetchone() == (None, None)
    code = response.json()["reset_code"]
    reset = await api.post("/api/auth/reset-password", json={"code": code, "new_password": STRONG})
    assert reset.status_code == 200
    assert await login(api, "atul", STRONG)  # no TOTP asked any more
    assert audit_actions(family, "admin.") == ["admin.user_reset"]


async def test_admin_deletes_a_member_and_answers_what_was_removed(api, family):
    admin = await login(api, "alok")
    amol = await login(api, "amol")
    response = await api.delete("/api/admin/users/2", headers=h(admin))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["name"] == "Amol" and body["expenses_deleted"] == 1
    assert role_of(family, 2) is None
    assert await me_status(api, amol) == 401
    assert audit_actions(family, "admin.") == ["admin.user_delete"]
    assert (await api.delete("/api/admin/users/2", headers=h(admin))).status_code == 404


async def test_admin_invite_registers_once(family):
    async with app_client(stack_settings(registration_mode="invite")) as client:
        admin = await login(client, "alok")
        invite = await client.post(
            "/api/admin/invites", json={"hours": 2, "note": "for Kabir"}, headers=h(admin)
        )
        assert invite.status_code == 201, invite.text
        assert list(invite.json()) == ["id", "code", "expires_at", "note"]
        body = {"username": "kabir", "password": STRONG, "invite_code": invite.json()["code"]}
        assert (await client.post("/api/auth/register", json=body)).status_code == 200
        again = await client.post("/api/auth/register", json={**body, "username": "kabir2"})
        assert again.status_code == 400
    assert audit_actions(family, "admin.") == ["admin.invite_create"]


async def test_no_answer_or_audit_row_holds_a_password_hash_or_code(api, family):
    admin = await login(api, "alok")
    answers = [
        await api.post("/api/admin/users", json={"username": "kabir"}, headers=h(admin)),
        await api.post("/api/admin/users/3/reset", headers=h(admin)),
        await api.get("/api/admin/users", headers=h(admin)),
    ]
    codes = [answers[0].json()["reset_code"], answers[1].json()["reset_code"]]
    with sql(family) as cur:
        cur.execute("select coalesce(json_agg(a), '[]')::text from public.audit_log a")
        audit = cur.fetchone()[0]
        cur.execute("select password_hash from public.users where id = 1")
        alok_hash = cur.fetchone()[0]
    for text in [a.text for a in answers] + [audit]:
        assert alok_hash not in text and "$2b$" not in text and "password_hash" not in text
    for code in codes:
        assert code not in audit


# --------------------------------------------------------------------------------------
# (c) tokens with refresh
# --------------------------------------------------------------------------------------
async def test_token_answers_a_short_access_token_and_a_refresh_token(api, family):
    pair = await token_pair(api, "alok@example.com")
    assert list(pair) == ["access_token", "token_type", "expires_in", "refresh_token", "user"]
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 15 * 60
    assert pair["user"] == {"id": 1, "name": "Alok", "email": "alok@example.com"}
    claims = jwt.get_unverified_claims(pair["access_token"])
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert await me_status(api, pair["access_token"]) == 200
    with sql(family) as cur:  # stored only as its hash
        cur.execute("select token_sha256 from public.refresh_tokens")
        stored = cur.fetchall()
        cur.execute(
            "select count(*) from public.refresh_tokens r where r::text like %s",
            ("%" + pair["refresh_token"] + "%",),
        )
        assert cur.fetchone()[0] == 0
    assert stored == [(hashlib.sha256(pair["refresh_token"].encode()).hexdigest(),)]


async def test_token_takes_the_oauth2_password_form_of_docs_authorize(api, family):
    response = await api.post(
        "/api/auth/token",
        data={"username": "amol", "password": DEMO_PASSWORD, "grant_type": "password"},
    )
    assert response.status_code == 200, response.text
    assert await me_status(api, response.json()["access_token"]) == 200
    wrong = await api.post("/api/auth/token", data={"username": "amol", "password": "nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "Invalid email or password"}
    missing = await api.post("/api/auth/token", data={"username": "amol"})
    assert missing.status_code == 400 and missing.json() == {"error": "password is required"}


async def test_token_lifetimes_follow_the_settings(family):
    settings = stack_settings(access_token_minutes=2, refresh_token_days=3)
    async with app_client(settings) as client:
        pair = await token_pair(client, "alok")
        assert pair["expires_in"] == 120
        with sql(family) as cur:
            cur.execute("select expires_at - created_at from public.refresh_tokens")
            lifetime = cur.fetchone()[0]
        assert dt.timedelta(days=3) - dt.timedelta(seconds=5) < lifetime <= dt.timedelta(days=3)


async def test_refresh_rotates_and_a_spent_token_kills_the_whole_chain(api, family):
    first = await token_pair(api, "alok")
    second = await api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    second = second.json()
    assert list(second) == list(first) and second["refresh_token"] != first["refresh_token"]
    third = await api.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200
    third = third.json()
    assert await me_status(api, third["access_token"]) == 200
    # the spent first token again: theft. 401, and the newest pair is refused too.
    reuse = await api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.json() == {"error": "Invalid or expired refresh token"}
    assert await me_status(api, third["access_token"]) == 401
    latest = await api.post("/api/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert latest.status_code == 401
    assert "auth.refresh_reuse" in audit_actions(family, "auth.refresh")
    # other sessions of the user are untouched
    assert await me_status(api, await login(api, "alok")) == 200


async def test_two_refreshes_racing_on_one_token_give_one_pair(api, family):
    pair = await token_pair(api, "alok")
    results = await asyncio.gather(
        *(
            api.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in results).count(200) <= 1


async def test_unknown_or_expired_refresh_tokens_are_401(api, family):
    unknown = await api.post("/api/auth/refresh", json={"refresh_token": "x" * 43})
    assert unknown.status_code == 401
    pair = await token_pair(api, "alok")
    with sql(family) as cur:
        cur.execute("update public.refresh_tokens set expires_at = now() - interval '1 second'")
    expired = await api.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert expired.status_code == 401


async def test_logout_of_a_token_session_ends_its_refresh_token(api, family):
    pair = await token_pair(api, "alok")
    out = await api.post("/api/auth/logout", headers=h(pair["access_token"]))
    assert out.status_code == 200
    refreshed = await api.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401


# --------------------------------------------------------------------------------------
# (d) sessions
# --------------------------------------------------------------------------------------
async def test_sessions_list_logins_and_token_sessions_and_mark_the_current(api, family):
    legacy = await login(api, "alok")
    pair = await token_pair(api, "alok")
    await login(api, "amol")  # someone else's
    response = await api.get("/api/auth/sessions", headers=h(legacy))
    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 2
    assert [list(r) for r in rows] == [
        ["id", "created_at", "last_used_at", "user_agent", "ip", "current"]
    ] * 2
    current = [r for r in rows if r["current"]]
    assert [r["id"] for r in current] == [jwt.get_unverified_claims(legacy)["jti"]]
    assert jwt.get_unverified_claims(pair["access_token"])["jti"] in {r["id"] for r in rows}
    assert {r["ip"] for r in rows} == {"127.0.0.1"}


async def test_get_session_names_the_role_and_the_session(api, family):
    token = await login(api, "amol")
    response = await api.get("/api/auth/session", headers=h(token))
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["user", "role", "session"]
    assert body["user"] == {"id": 2, "name": "Amol", "email": "amol@example.com"}
    assert body["role"] == "viewer"
    assert body["session"]["id"] == jwt.get_unverified_claims(token)["jti"]
    # /me stays the legacy body
    assert (await api.get("/api/auth/me", headers=h(token))).json() == body["user"]


async def test_deleting_a_session_refuses_its_tokens_at_once(api, family):
    mine = await login(api, "alok")
    other = await token_pair(api, "alok")
    other_id = jwt.get_unverified_claims(other["access_token"])["jti"]
    # not somebody else's
    amol = await login(api, "atul")
    assert (await api.delete(f"/api/auth/sessions/{other_id}", headers=h(amol))).status_code == 404
    assert await me_status(api, other["access_token"]) == 200
    response = await api.delete(f"/api/auth/sessions/{other_id}", headers=h(mine))
    assert response.status_code == 200 and response.json() == {"id": other_id}
    assert await me_status(api, other["access_token"]) == 401
    refreshed = await api.post("/api/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert refreshed.status_code == 401
    assert await me_status(api, mine) == 200
    bad = await api.delete("/api/auth/sessions/not-an-id", headers=h(mine))
    assert bad.status_code == 404 and bad.json() == {"error": "Session not found"}


async def test_deleting_all_other_sessions_keeps_the_current_one(api, family):
    current = await login(api, "alok")
    others = [await login(api, "alok"), (await token_pair(api, "alok"))["access_token"]]
    older = jwt.encode(  # a token without a session row (the legacy functions' kind)
        {
            "userId": 1,
            "name": "Alok",
            "email": "alok@example.com",
            "iat": int(time.time()) - 60,
            "exp": int(time.time()) + 3600,
        },
        os.environ["JWT_SECRET"],
        algorithm="HS256",
    )
    assert await me_status(api, older) == 200
    response = await api.delete("/api/auth/sessions", headers=h(current))
    assert response.status_code == 200 and response.json() == {"ended": 2}
    for token in [*others, older]:
        assert await me_status(api, token) == 401
    assert await me_status(api, current) == 200
    listed = (await api.get("/api/auth/sessions", headers=h(current))).json()
    assert [r["current"] for r in listed] == [True]


async def test_a_revoked_session_is_refused_on_a_second_instance(family):
    """Two app instances (as two servers would be), the second with its dashboard cache on:
    the revocation made through the first is refused by the second at once."""
    async with (
        app_client(stack_settings()) as first,
        app_client(stack_settings(dashboard_cache=True)) as second,
    ):
        token = await login(first, "alok")
        session_id = jwt.get_unverified_claims(token)["jti"]
        dashboard = "/api/dashboard/1/yearly?year=2025"
        for _ in range(2):  # the second answer may come from its cache
            assert (await second.get(dashboard, headers=h(token))).status_code == 200
        other = await login(first, "alok")
        ended = await first.delete(f"/api/auth/sessions/{session_id}", headers=h(other))
        assert ended.status_code == 200
        await asyncio.sleep(0.2)  # the cache's NOTIFY; the session check needs none
        assert (await second.get("/api/auth/me", headers=h(token))).status_code == 401
        assert (await second.get(dashboard, headers=h(token))).status_code == 401
        assert (await second.get(dashboard, headers=h(other))).status_code == 200


# --------------------------------------------------------------------------------------
# (e) password change and reset
# --------------------------------------------------------------------------------------
async def test_password_change_ends_every_other_session(api, family):
    current = await login(api, "atul")
    other = await login(api, "atul")
    pair = await token_pair(api, "atul")
    response = await api.put(
        "/api/auth/password",
        json={"current_password": DEMO_PASSWORD, "new_password": STRONG},
        headers=h(current),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"ended": 2}
    assert await me_status(api, current) == 200
    assert await me_status(api, other) == 401
    assert await me_status(api, pair["access_token"]) == 401
    assert await login(api, "atul", STRONG)
    bad = await api.post("/api/auth/login", json={"email": "atul", "password": DEMO_PASSWORD})
    assert bad.status_code == 401
    assert audit_actions(family, "auth.password") == ["auth.password_change"]


async def test_password_change_follows_register_rules(api, family):
    token = await login(api, "atul")
    weak = await api.put(
        "/api/auth/password",
        json={"current_password": DEMO_PASSWORD, "new_password": "password123"},
        headers=h(token),
    )
    assert weak.status_code == 400 and "uppercase" in weak.json()["error"]


async def test_a_wrong_current_password_is_refused_and_counts_toward_the_login_limit(family):
    settings = stack_settings(rate_limit_enabled=True, login_rate_limit="3/15minutes")
    async with app_client(settings) as client:
        token = await login(client, "atul")
        before = data_state(family)
        statuses = []
        for _ in range(4):
            response = await client.put(
                "/api/auth/password",
                json={"current_password": "Wrong-pass-1", "new_password": STRONG},
                headers=h(token),
            )
            statuses.append(response.status_code)
            assert set(response.json()) == {"error"}
        assert statuses == [400, 400, 400, 429]
        assert data_state(family) == before
        # the same counter as the login's
        locked = await client.post(
            "/api/auth/login", json={"email": "atul", "password": DEMO_PASSWORD}
        )
        assert locked.status_code == 429


async def test_reset_password_with_an_expired_code_is_refused(api, family):
    admin = await login(api, "alok")
    code = (await api.post("/api/admin/users/3/reset", headers=h(admin))).json()["reset_code"]
    with sql(family) as cur:
        cur.execute("update public.password_reset_codes set expires_at = now() - interval '1 s'")
    before = data_state(family)
    response = await api.post(
        "/api/auth/reset-password", json={"code": code, "new_password": STRONG}
    )
    assert response.status_code == 400
    assert data_state(family) == before


async def test_reset_password_ends_every_session_of_the_user(api, family):
    admin = await login(api, "alok")
    code = (await api.post("/api/admin/users/3/reset", headers=h(admin))).json()["reset_code"]
    after_reset = await login(api, "atul")  # a session opened after the admin's reset
    response = await api.post(
        "/api/auth/reset-password", json={"code": code, "new_password": STRONG}
    )
    assert response.status_code == 200
    assert response.json() == {"id": 3, "name": "Atul", "email": "atul@example.com"}
    assert await me_status(api, after_reset) == 401


# --------------------------------------------------------------------------------------
# (f) TOTP
# --------------------------------------------------------------------------------------
def codes_around_now() -> int:
    """Steps used below are now-1, now, now+1 (the accepted drift): start well inside a
    30-second step so the test does not cross into the next one."""
    if time.time() % 30 > 24:
        time.sleep(31 - time.time() % 30)
    return int(time.time() // 30)


async def enable_totp(api, token: str, step: int) -> str:
    setup = await api.post("/api/auth/totp/setup", headers=h(token))
    assert setup.status_code == 200, setup.text
    assert list(setup.json()) == ["secret", "otpauth_uri"]
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/")
    code = pyotp.TOTP(secret).generate_otp(step)
    enabled = await api.post("/api/auth/totp/enable", json={"code": code}, headers=h(token))
    assert enabled.status_code == 200 and enabled.json() == {"enabled": True}, enabled.text
    return secret


async def test_totp_is_required_once_enabled_and_each_code_works_once(api, family):
    now = codes_around_now()
    token = await login(api, "atul")
    secret = await enable_totp(api, token, now - 1)
    otp = pyotp.TOTP(secret)
    missing = await api.post("/api/auth/login", json={"email": "atul", "password": DEMO_PASSWORD})
    assert missing.status_code == 401 and missing.json() == {"error": "TOTP code required"}
    no_token = await api.post("/api/auth/token", json={"email": "atul", "password": DEMO_PASSWORD})
    assert no_token.status_code == 401 and no_token.json() == {"error": "TOTP code required"}
    wrong = await api.post(
        "/api/auth/login",
        json={"email": "atul", "password": DEMO_PASSWORD, "totp": "000000"}
        if otp.generate_otp(now) != "000000"
        else {"email": "atul", "password": DEMO_PASSWORD, "totp": "111111"},
    )
    assert wrong.status_code == 401 and wrong.json() == {"error": "Invalid TOTP code"}
    # the code used to enable is spent
    spent = await api.post(
        "/api/auth/login",
        json={"email": "atul", "password": DEMO_PASSWORD, "totp": otp.generate_otp(now - 1)},
    )
    assert spent.status_code == 401
    assert await login(api, "atul", totp=otp.generate_otp(now))
    replay = await api.post(
        "/api/auth/login",
        json={"email": "atul", "password": DEMO_PASSWORD, "totp": otp.generate_otp(now)},
    )
    assert replay.status_code == 401 and replay.json() == {"error": "Invalid TOTP code"}
    pair = await token_pair(api, "atul", totp=otp.generate_otp(now + 1))
    assert await me_status(api, pair["access_token"]) == 200
    # a wrong password with a good code says nothing about the code
    bad = await api.post(
        "/api/auth/login", json={"email": "atul", "password": "Wrong-1!", "totp": "123456"}
    )
    assert bad.json() == {"error": "Invalid email or password"}


async def test_totp_codes_are_rate_limited_like_passwords(family):
    now = codes_around_now()
    settings = stack_settings(rate_limit_enabled=True, login_rate_limit="3/15minutes")
    async with app_client(settings) as client:
        token = await login(client, "atul")
        secret = await enable_totp(client, token, now - 1)
        statuses = []
        for _ in range(4):
            response = await client.post(
                "/api/auth/login",
                json={"email": "atul", "password": DEMO_PASSWORD, "totp": "99999x"},
            )
            statuses.append(response.status_code)
        assert statuses == [401, 401, 429, 429] or statuses == [401, 401, 401, 429]
        good = pyotp.TOTP(secret).generate_otp(now)
        locked = await client.post(
            "/api/auth/login", json={"email": "atul", "password": DEMO_PASSWORD, "totp": good}
        )
        assert locked.status_code == 429


async def test_totp_disable_needs_a_fresh_code(api, family):
    now = codes_around_now()
    token = await login(api, "atul")
    secret = await enable_totp(api, token, now - 1)
    otp = pyotp.TOTP(secret)
    again = await api.post("/api/auth/totp/setup", headers=h(token))
    assert again.status_code == 409
    spent = await api.request(
        "DELETE", "/api/auth/totp", json={"code": otp.generate_otp(now - 1)}, headers=h(token)
    )
    assert spent.status_code == 400 and spent.json() == {"error": "Invalid TOTP code"}
    off = await api.request(
        "DELETE", "/api/auth/totp", json={"code": otp.generate_otp(now)}, headers=h(token)
    )
    assert off.status_code == 200 and off.json() == {"enabled": False}
    assert await login(api, "atul")
    assert audit_actions(family, "auth.totp") == ["auth.totp_enable", "auth.totp_disable"]


async def test_totp_enable_refuses_a_wrong_code_and_changes_nothing(api, family):
    token = await login(api, "atul")
    assert (await api.post("/api/auth/totp/setup", headers=h(token))).status_code == 200
    wrong = await api.post("/api/auth/totp/enable", json={"code": "abcdef"}, headers=h(token))
    assert wrong.status_code == 400
    with sql(family) as cur:
        cur.execute("select totp_enabled_at from public.users where id = 3")
        assert cur.fetchone() == (None,)
    assert await login(api, "atul")
