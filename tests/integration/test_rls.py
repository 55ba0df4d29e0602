"""Data isolation enforced by Postgres itself, straight against PostgREST (no gateway).

Whoever holds the anon key, or a JWT for the `authenticated` role signed with the stack's
secret ({"role": "authenticated", "userId": N}), talks to the same SUPABASE_URL/rest/v1 our
gateway uses. Row level security and grants, not Python, must keep them to their own rows:
anon reads no user and no expense; user A reads and adds only A's expenses; nobody but the
service role reads password hashes or the bookkeeping tables or calls the gateway's RPCs.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest
from jose import jwt

from tests.helpers import count_rows, sql, token_for

ALOK, AMOL = 1, 2


def rest() -> str:
    return os.environ["SUPABASE_URL"] + "/rest/v1"


def stack_jwt(claims: dict, secret: str | None = None) -> str:
    """A JWT as PostgREST expects it, signed with the stack's secret (HS256)."""
    return jwt.encode(
        {"exp": int(time.time()) + 600, **claims},
        secret or os.environ["SUPABASE_JWT_SECRET"],
        algorithm="HS256",
    )


def headers_for(token: str) -> dict[str, str]:
    return {
        "apikey": os.environ["SUPABASE_ANON_KEY"],
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
    }


ANON = {
    "apikey": os.environ.get("SUPABASE_ANON_KEY", ""),
    "Authorization": f"Bearer {os.environ.get('SUPABASE_ANON_KEY', '')}",
    "Content-Type": "application/json",
}


def user_headers(user_id: int) -> dict[str, str]:
    return headers_for(stack_jwt({"role": "authenticated", "userId": user_id}))


def expense_count(dsn: str, user_id: int) -> int:
    with sql(dsn) as cur:
        cur.execute("select count(*) from public.expenses where user_id = %s", (user_id,))
        return cur.fetchone()[0]


@pytest.fixture
def family_expenses(fresh_db) -> str:
    """Alok 3 expenses, Amol 2, Atul 1 (inserted as the superuser)."""
    with sql(fresh_db) as cur:
        cur.executemany(
            "insert into public.expenses (user_id, category_id, amount, date) values (%s, %s, %s, %s)",
            [
                (ALOK, 1, 10, "2025-01-05"),
                (ALOK, 2, 20, "2025-01-06"),
                (ALOK, 3, 30, "2025-02-01"),
                (AMOL, 1, 40, "2025-01-07"),
                (AMOL, 4, 50, "2025-01-08"),
                (3, 1, 60, "2025-01-09"),
            ],
        )
    return fresh_db


def assert_no_secrets(response: httpx.Response) -> None:
    assert "password_hash" not in response.text
    assert "$2b$" not in response.text


# ---------------------------------------------------------------------------------- anon
@pytest.mark.parametrize("table", ["users", "expenses"])
def test_anon_reads_no_user_and_no_expense(family_expenses, table):
    response = httpx.get(f"{rest()}/{table}?select=*", headers=ANON)
    assert response.status_code == 401, response.text  # 42501 permission denied
    assert response.json()["code"] == "42501"
    assert_no_secrets(response)


def test_anon_cannot_insert_an_expense(family_expenses):
    before = count_rows(family_expenses, "expenses")
    response = httpx.post(
        f"{rest()}/expenses", headers=ANON, json={"user_id": ALOK, "category_id": 1, "amount": 5}
    )
    assert response.status_code == 401, response.text
    assert count_rows(family_expenses, "expenses") == before


# ---------------------------------------------------------------------------------- authenticated
def test_authenticated_user_reads_only_own_expenses(family_expenses):
    response = httpx.get(
        f"{rest()}/expenses?select=id,user_id,amount&order=id", headers=user_headers(ALOK)
    )
    assert response.status_code == 200, response.text
    rows = response.json()
    assert [r["user_id"] for r in rows] == [ALOK] * 3
    assert len(rows) == expense_count(family_expenses, ALOK)


def test_authenticated_user_filtering_for_another_user_gets_nothing(family_expenses):
    response = httpx.get(
        f"{rest()}/expenses?select=id&user_id=eq.{AMOL}", headers=user_headers(ALOK)
    )
    assert response.status_code == 200 and response.json() == []
    # ... and no count leaks either (exact count of what RLS lets through).
    counted = httpx.head(
        f"{rest()}/expenses?user_id=eq.{AMOL}",
        headers={**user_headers(ALOK), "Prefer": "count=exact"},
    )
    assert counted.headers["content-range"].endswith("/0")


def test_authenticated_user_inserts_own_expense_and_totals_follow(family_expenses):
    before = expense_count(family_expenses, ALOK)
    response = httpx.post(
        f"{rest()}/expenses",
        headers={**user_headers(ALOK), "Prefer": "return=representation"},
        json={"user_id": ALOK, "category_id": 4, "amount": 7.5, "date": "2025-03-03"},
    )
    assert response.status_code == 201, response.text
    assert response.json()[0]["user_id"] == ALOK
    assert expense_count(family_expenses, ALOK) == before + 1
    # The trigger keeps the dashboard totals exact whatever path wrote the row.
    with sql(family_expenses) as cur:
        cur.execute(
            "select amount from public.expense_monthly_totals where user_id = %s "
            "and month = '2025-03-01' and category_id = 4",
            (ALOK,),
        )
        assert cur.fetchone()[0] == 7.5


def test_authenticated_user_cannot_insert_expense_for_another_user(family_expenses):
    before_total = count_rows(family_expenses, "expenses")
    before_amol = expense_count(family_expenses, AMOL)
    response = httpx.post(
        f"{rest()}/expenses",
        headers=user_headers(ALOK),
        json={"user_id": AMOL, "category_id": 1, "amount": 999},
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "42501"  # new row violates row-level security policy
    assert count_rows(family_expenses, "expenses") == before_total
    assert expense_count(family_expenses, AMOL) == before_amol


def test_authenticated_user_cannot_slip_another_users_row_into_a_bulk_insert(family_expenses):
    before = count_rows(family_expenses, "expenses")
    response = httpx.post(
        f"{rest()}/expenses",
        headers=user_headers(ALOK),
        json=[
            {"user_id": ALOK, "category_id": 1, "amount": 1},
            {"user_id": AMOL, "category_id": 1, "amount": 2},
        ],
    )
    assert response.status_code == 403, response.text
    assert count_rows(family_expenses, "expenses") == before  # all or nothing


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_authenticated_user_can_neither_change_nor_delete_others_expenses(family_expenses, method):
    """Amol's rows, recorded by Amol: Alok's PATCH/DELETE matches no row (RLS) and changes
    nothing (issue 12: only the owner or the recorder may change an expense)."""
    with sql(family_expenses) as cur:
        cur.execute(
            "select id, amount from public.expenses where user_id = %s order by id", (AMOL,)
        )
        before = cur.fetchall()
    kwargs = {"json": {"amount": 1, "user_id": ALOK}} if method == "PATCH" else {}
    response = httpx.request(
        method, f"{rest()}/expenses?user_id=eq.{AMOL}", headers=user_headers(ALOK), **kwargs
    )
    assert response.status_code in (200, 204), response.text
    with sql(family_expenses) as cur:
        cur.execute(
            "select id, amount from public.expenses where user_id = %s order by id", (AMOL,)
        )
        assert cur.fetchall() == before


def test_owner_and_recorder_change_and_delete_through_rls(family_expenses):
    """The same rule as PUT/DELETE /api/expenses/{id}, for the `authenticated` role."""
    with sql(family_expenses) as cur:  # recorded by Alok for Amol
        cur.execute(
            "insert into public.expenses (user_id, category_id, amount, created_by) "
            "values (%s, 1, 5, %s) returning id",
            (AMOL, ALOK),
        )
        recorded = cur.fetchone()[0]
    for who, amount in ((ALOK, 6), (AMOL, 7)):  # recorder, then owner
        response = httpx.patch(
            f"{rest()}/expenses?id=eq.{recorded}",
            json={"amount": amount},
            headers={**user_headers(who), "Prefer": "return=representation"},
        )
        assert response.status_code == 200, response.text
        assert [r["amount"] for r in response.json()] == [amount]
    third = httpx.patch(
        f"{rest()}/expenses?id=eq.{recorded}",
        json={"amount": 8},
        headers={**user_headers(3), "Prefer": "return=representation"},
    )
    assert third.json() == []
    # created_by is not a column a member may set
    forged = httpx.patch(
        f"{rest()}/expenses?id=eq.{recorded}", json={"created_by": 3}, headers=user_headers(ALOK)
    )
    assert forged.status_code in (401, 403), forged.text
    deleted = httpx.delete(f"{rest()}/expenses?id=eq.{recorded}", headers=user_headers(ALOK))
    assert deleted.status_code in (200, 204), deleted.text
    with sql(family_expenses) as cur:
        cur.execute(
            "select action, actor_id from public.audit_log where target_id = %s "
            "and action <> 'expense.create' order by id",
            (recorded,),
        )
        assert cur.fetchall() == [
            ("expense.update", ALOK),
            ("expense.update", AMOL),
            ("expense.delete", ALOK),
        ]


def test_authenticated_insert_records_the_caller_and_refuses_a_forged_recorder(family_expenses):
    ok = httpx.post(
        f"{rest()}/expenses",
        json={"user_id": ALOK, "category_id": 1, "amount": 3},
        headers={**user_headers(ALOK), "Prefer": "return=representation"},
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()[0]["created_by"] == ALOK
    before = count_rows(family_expenses, "expenses")
    forged = httpx.post(
        f"{rest()}/expenses",
        json={"user_id": ALOK, "category_id": 1, "amount": 3, "created_by": AMOL},
        headers=user_headers(ALOK),
    )
    assert forged.status_code == 403, forged.text
    assert count_rows(family_expenses, "expenses") == before


@pytest.mark.parametrize(
    "table",
    [
        "users",
        "expense_monthly_totals",
        "revoked_tokens",
        "idempotency_keys",
        "rate_limits",
        "schema_bootstrap",
    ],
)
def test_authenticated_user_cannot_read_users_or_bookkeeping_tables(family_expenses, table):
    with sql(family_expenses) as cur:  # something to leak in every table
        cur.execute("insert into public.revoked_tokens values ('j1', now() + interval '1 hour')")
        cur.execute(
            "insert into public.rate_limits values ('login:x', 1, now() + interval '1 hour')"
        )
        cur.execute(
            "insert into public.idempotency_keys (user_id, key, request_hash, response, "
            "expires_at) values (1, 'k', 'h', '{}', now() + interval '1 hour')"
        )
    response = httpx.get(f"{rest()}/{table}?select=*", headers=user_headers(ALOK))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "42501"
    assert_no_secrets(response)


def test_authenticated_user_cannot_read_users_through_an_embedding(family_expenses):
    """expenses -> users(name, password_hash) must not open the users table."""
    response = httpx.get(
        f"{rest()}/expenses?select=id,users(name,password_hash)", headers=user_headers(ALOK)
    )
    assert response.status_code in (401, 403), response.text
    assert_no_secrets(response)


SERVICE_ONLY_RPCS = {
    "find_login_user": {"p_login": "alok@example.com"},
    "register_user": {"p_name": "mallory", "p_email": None, "p_password_hash": "x"},
    "session_is_valid": {"p_user_id": 1, "p_jti": "x", "p_issued_at": 0},
    "invite_is_usable": {"p_code_sha256": "0" * 64},
    "register_user_invited": {
        "p_name": "mallory",
        "p_email": None,
        "p_password_hash": "x",
        "p_code_sha256": "0" * 64,
    },
    "revoke_token": {"p_jti": "x", "p_expires_at": "2030-01-01T00:00:00Z"},
    "expense_json": {"p_id": 1},
    "create_expense": {
        "p_actor_id": 2,
        "p_user_id": 2,
        "p_category_id": 1,
        "p_payment_method_id": None,
        "p_amount": "5",
        "p_description": None,
        "p_date": None,
        "p_idempotency_key": None,
        "p_request_hash": None,
        "p_ttl_hours": 24,
    },
    "get_monthly_dashboard": {"p_user_id": 2, "p_year": 2025, "p_month": 1},
    "get_yearly_dashboard": {"p_user_id": 2, "p_year": 2025},
    "dashboard_categories": {"p_user_id": 2, "p_from": "2025-01-01", "p_to": "2026-01-01"},
    "rate_limit_incr": {"p_key": "x", "p_expiry_seconds": 60, "p_amount": 1},
    "rate_limit_get": {"p_key": "x"},
    "rate_limit_clear": {"p_key": None},
    "rebuild_expense_monthly_totals": {},
    "expense_totals_drift": {},
    # issue 22: accounts
    "admin_list_users": {},
    "admin_delete_user": {"p_id": 1},
    "refresh_session": {
        "p_token_sha256": "0" * 64,
        "p_new_sha256": "1" * 64,
        "p_new_expires_at": "2030-01-01T00:00:00Z",
    },
    "reset_password": {"p_code_sha256": "0" * 64, "p_password_hash": "x"},
    "list_sessions": {"p_current": "x"},
    "totp_state": {},
    # issue 21: the checking reads behind /api/auth/me, /api/dashboard/users, the cache hit
    # and /health/versions
    "auth_me": {},
    "dashboard_users": {},
    "gateway_session_check": {},
    "server_versions": {},
}


@pytest.mark.parametrize("caller", ["anon", "authenticated"])
@pytest.mark.parametrize("function", sorted(SERVICE_ONLY_RPCS))
def test_service_only_rpcs_refuse_anon_and_authenticated(family_expenses, function, caller):
    headers = ANON if caller == "anon" else user_headers(AMOL)
    before = {t: count_rows(family_expenses, t) for t in ("users", "expenses", "revoked_tokens")}
    response = httpx.post(
        f"{rest()}/rpc/{function}", headers=headers, json=SERVICE_ONLY_RPCS[function]
    )
    assert response.status_code == (401 if caller == "anon" else 403), response.text
    assert response.json()["code"] == "42501"  # permission denied for function
    assert_no_secrets(response)
    assert {t: count_rows(family_expenses, t) for t in before} == before


def test_service_role_may_call_the_rpcs_the_others_cannot(family_expenses):
    """The refusals above are about the role, not a broken function."""
    key = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
    response = httpx.post(
        f"{rest()}/rpc/get_monthly_dashboard",
        headers={
            "apikey": key,
            "Authorization": f"Bearer {key}",
            # a valid session: without one the function refuses (require_gateway_session)
            "X-Gateway-Session": f"1:{'0' * 32}:{int(time.time())}",
        },
        json=SERVICE_ONLY_RPCS["get_monthly_dashboard"],
    )
    assert response.status_code == 200, response.text
    assert response.json()["total_spent"] == 90


# ---------------------------------------------------------------------------------- bad tokens
@pytest.mark.parametrize(
    "claims",
    [
        {"role": "authenticated"},  # no userId
        {"role": "authenticated", "userId": "1 or 1=1"},
        {"role": "authenticated", "userId": None},
        {"role": "authenticated", "userId": -1},
    ],
)
def test_authenticated_jwt_without_a_valid_user_id_reads_nothing_and_inserts_nothing(
    family_expenses, claims
):
    headers = headers_for(stack_jwt(claims))
    response = httpx.get(f"{rest()}/expenses?select=id", headers=headers)
    assert response.status_code == 200 and response.json() == []
    before = count_rows(family_expenses, "expenses")
    response = httpx.post(
        f"{rest()}/expenses", headers=headers, json={"user_id": ALOK, "category_id": 1, "amount": 1}
    )
    assert response.status_code == 403
    assert count_rows(family_expenses, "expenses") == before


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            lambda: stack_jwt({"role": "service_role"}, secret="x" * 40), id="forged-service-role"
        ),
        pytest.param(
            lambda: stack_jwt({"role": "authenticated", "userId": 2}, secret="x" * 40),
            id="forged-user",
        ),
        pytest.param(
            lambda: stack_jwt({"role": "authenticated", "userId": 1, "exp": int(time.time()) - 60}),
            id="expired",
        ),
    ],
)
def test_postgrest_refuses_forged_and_expired_jwts(family_expenses, token):
    response = httpx.get(f"{rest()}/users?select=*", headers=headers_for(token()))
    assert response.status_code == 401, response.text
    assert response.json()["code"].startswith("PGRST3")
    assert_no_secrets(response)


def test_our_gateway_tokens_mean_nothing_to_postgrest(family_expenses):
    """The app's JWT_SECRET is not the stack's: a token the API issued is no key to PostgREST."""
    response = httpx.get(f"{rest()}/expenses?select=id", headers=headers_for(token_for(1)))
    assert response.status_code == 401, response.text
