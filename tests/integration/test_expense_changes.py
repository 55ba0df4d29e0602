"""GET/PUT/DELETE /api/expenses/{id} on the real stack: who may change what, ETag/If-Match,
the dashboards following at once, and one audit row per change (issue 12)."""

from __future__ import annotations

import asyncio

import psycopg2
import pytest

import background
from tests.helpers import bearer, count_rows, data_state, sql, token_for

ALOK, AMOL, ATUL = 1, 2, 3


@pytest.fixture
def alok():
    return bearer(token_for(ALOK, "Alok"))


@pytest.fixture
def amol():
    return bearer(token_for(AMOL, "Amol"))


@pytest.fixture
def atul():
    return bearer(token_for(ATUL, "Atul"))


async def create(api, headers, **fields) -> dict:
    body = {
        "amount": 100,
        "category_id": 1,
        "payment_method_id": 4,
        "description": "groceries",
        "date": "2025-01-15",
        **fields,
    }
    response = await api.post("/api/expenses", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["expense"]


def audit_rows(dsn: str, action: str | None = None) -> list[tuple]:
    with sql(dsn) as cur:
        cur.execute(
            "select action, actor_id, target_id, request_id, client_addr, before, after "
            "from public.audit_log where %s::text is null or action = %s order by id",
            (action, action),
        )
        return cur.fetchall()


async def monthly_total(api, headers, user_id: int, year: int, month: int) -> float:
    response = await api.get(
        f"/api/dashboard/{user_id}/monthly", params={"year": year, "month": month}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()["total_spent"]


# --------------------------------------------------------------------------------------
# GET one
# --------------------------------------------------------------------------------------
async def test_get_returns_the_expense_in_the_list_shape_with_an_etag(api, fresh_db, alok, amol):
    created = await create(api, alok, description='Groceries, fruit "fresh"')
    response = await api.get(f"/api/expenses/{created['id']}", headers=amol)  # any member reads
    assert response.status_code == 200
    assert response.json() == created
    listed = (await api.get("/api/expenses", headers=alok)).json()
    assert list(response.json()) == list(listed[0])  # same keys, same order
    etag = response.headers["etag"]
    assert etag == f'"{response.json()["id"]}-1"'  # opaque: id and version, no digest


async def test_get_unknown_expense_is_404(api, fresh_db, alok):
    response = await api.get("/api/expenses/999999", headers=alok)
    assert response.status_code == 404
    assert response.json() == {"error": "Expense not found"}


async def test_get_needs_a_token(api, fresh_db, alok):
    created = await create(api, alok)
    response = await api.get(f"/api/expenses/{created['id']}")
    assert response.status_code == 401


async def test_export_route_is_not_captured_by_the_id_route(api, fresh_db, alok):
    response = await api.get("/api/expenses/export.csv", headers=alok)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")


# --------------------------------------------------------------------------------------
# PUT
# --------------------------------------------------------------------------------------
async def test_owner_changes_only_the_fields_sent(api, fresh_db, alok):
    created = await create(api, alok)
    response = await api.put(f"/api/expenses/{created['id']}", json={"amount": 120.5}, headers=alok)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["message", "expense"]
    assert body["message"] == "Expense updated successfully"
    assert body["expense"] == {**created, "amount": 120.5}
    got = await api.get(f"/api/expenses/{created['id']}", headers=alok)
    assert got.json() == body["expense"]
    assert got.headers["etag"] == response.headers["etag"]


async def test_null_clears_optional_fields(api, fresh_db, alok):
    created = await create(api, alok)
    response = await api.put(
        f"/api/expenses/{created['id']}",
        json={"description": None, "payment_method_id": None},
        headers=alok,
    )
    assert response.status_code == 200, response.text
    assert response.json()["expense"]["description"] is None
    assert response.json()["expense"]["payment_method"] is None


async def test_recorder_may_change_what_they_recorded_for_someone_else(api, fresh_db, alok, amol):
    created = await create(api, alok, user_id=AMOL)  # Alok records Amol's expense
    for headers, amount in ((alok, 1), (amol, 2)):  # recorder and owner
        response = await api.put(
            f"/api/expenses/{created['id']}", json={"amount": amount}, headers=headers
        )
        assert response.status_code == 200, response.text
    with sql(fresh_db) as cur:
        cur.execute(
            "select created_by, user_id from public.expenses where id = %s", (created["id"],)
        )
        assert cur.fetchone() == (ALOK, AMOL)


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_another_member_is_refused_and_nothing_changes(api, fresh_db, alok, atul, method):
    created = await create(api, alok)
    before = data_state(fresh_db)
    kwargs = {"json": {"amount": 1}} if method == "PUT" else {}
    response = await api.request(method, f"/api/expenses/{created['id']}", headers=atul, **kwargs)
    assert response.status_code == 403
    assert response.json() == {"error": "You can only change your own expenses"}
    assert data_state(fresh_db) == before


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_stale_if_match_is_412_and_nothing_changes(api, fresh_db, alok, amol, method):
    created = await create(api, alok, user_id=AMOL)
    etag = (await api.get(f"/api/expenses/{created['id']}", headers=alok)).headers["etag"]
    # Amol changes it first; Alok still holds the old ETag
    assert (
        await api.put(f"/api/expenses/{created['id']}", json={"amount": 5}, headers=amol)
    ).status_code == 200
    before = data_state(fresh_db)
    kwargs = {"json": {"amount": 7}} if method == "PUT" else {}
    response = await api.request(
        method, f"/api/expenses/{created['id']}", headers={**alok, "If-Match": etag}, **kwargs
    )
    assert response.status_code == 412
    assert response.json() == {"error": "Expense was changed by someone else"}
    assert data_state(fresh_db) == before


async def test_current_if_match_succeeds_and_returns_the_new_etag(api, fresh_db, alok):
    created = await create(api, alok)
    etag = (await api.get(f"/api/expenses/{created['id']}", headers=alok)).headers["etag"]
    first = await api.put(
        f"/api/expenses/{created['id']}", json={"amount": 2}, headers={**alok, "If-Match": etag}
    )
    assert first.status_code == 200
    assert first.headers["etag"] != etag
    # a list of tags matches when one of them is current; "*" matches any
    second = await api.put(
        f"/api/expenses/{created['id']}",
        json={"amount": 3},
        headers={**alok, "If-Match": f'"nope", {first.headers["etag"]}'},
    )
    assert second.status_code == 200
    third = await api.put(
        f"/api/expenses/{created['id']}", json={"amount": 4}, headers={**alok, "If-Match": "*"}
    )
    assert third.status_code == 200


async def test_weak_etag_never_matches(api, fresh_db, alok):
    created = await create(api, alok)
    etag = (await api.get(f"/api/expenses/{created['id']}", headers=alok)).headers["etag"]
    response = await api.put(
        f"/api/expenses/{created['id']}",
        json={"amount": 2},
        headers={**alok, "If-Match": f"W/{etag}"},
    )
    assert response.status_code == 412


async def test_concurrent_puts_with_the_same_etag_let_exactly_one_win(api, fresh_db, alok):
    created = await create(api, alok)
    etag = (await api.get(f"/api/expenses/{created['id']}", headers=alok)).headers["etag"]
    responses = await asyncio.gather(
        *[
            api.put(
                f"/api/expenses/{created['id']}",
                json={"amount": n},
                headers={**alok, "If-Match": etag},
            )
            for n in (11, 12, 13, 14)
        ]
    )
    assert sorted(r.status_code for r in responses) == [200, 412, 412, 412]
    assert len(audit_rows(fresh_db, "expense.update")) == 1


async def test_without_if_match_the_last_write_wins(api, fresh_db, alok):
    created = await create(api, alok)
    for amount in (1, 2):
        assert (
            await api.put(f"/api/expenses/{created['id']}", json={"amount": amount}, headers=alok)
        ).status_code == 200
    assert (await api.get(f"/api/expenses/{created['id']}", headers=alok)).json()["amount"] == 2


@pytest.mark.parametrize(
    "body, message",
    [
        ({"amount": 0}, "amount: Input should be greater than 0"),
        ({"amount": "12"}, "amount: amount must be a number"),
        ({"amount": None}, "amount: amount must be a number"),
        ({"amount": 1.234}, "amount: amount may have at most 2 decimals"),
        ({"category_id": 99}, "Invalid category_id: category does not exist"),
        ({"payment_method_id": 99}, "Invalid payment_method_id: payment method does not exist"),
        ({"user_id": 99}, "Invalid user_id: user does not exist"),
        ({"description": "x" * 501}, "description: String should have at most 500 characters"),
        ({"date": "2025-02-30"}, "date: is not a valid calendar date"),
    ],
)
async def test_put_validates_like_post_with_the_same_messages(api, fresh_db, alok, body, message):
    created = await create(api, alok)
    post = await api.post(
        "/api/expenses", json={"amount": 1, "category_id": 1, **body}, headers=alok
    )
    before = data_state(fresh_db)
    response = await api.put(f"/api/expenses/{created['id']}", json=body, headers=alok)
    assert response.status_code == 400
    assert response.json() == {"error": message}
    if body != {"amount": None}:  # POST has no "null amount" distinct from a missing one
        assert post.json() == response.json()
    assert data_state(fresh_db) == before


@pytest.mark.parametrize("content", [None, "{}", '{"unknown": 1}', "null"])
async def test_put_without_any_field_is_400(api, fresh_db, alok, content):
    created = await create(api, alok)
    before = data_state(fresh_db)
    headers = {**alok, "Content-Type": "application/json"}
    response = await api.put(
        f"/api/expenses/{created['id']}", content=content or b"", headers=headers
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("Nothing to update")
    assert data_state(fresh_db) == before


async def test_unknown_expense_is_404_for_put_and_delete(api, fresh_db, alok):
    for method, kwargs in (("PUT", {"json": {"amount": 1}}), ("DELETE", {})):
        response = await api.request(method, "/api/expenses/424242", headers=alok, **kwargs)
        assert response.status_code == 404
        assert response.json() == {"error": "Expense not found"}


# --------------------------------------------------------------------------------------
# DELETE
# --------------------------------------------------------------------------------------
async def test_delete_then_retry_answers_404_and_changes_nothing(api, fresh_db, alok):
    created = await create(api, alok)
    response = await api.delete(f"/api/expenses/{created['id']}", headers=alok)
    assert response.status_code == 200
    assert response.json() == {"message": "Expense deleted successfully", "id": created["id"]}
    before = data_state(fresh_db)
    retry = await api.delete(f"/api/expenses/{created['id']}", headers=alok)
    assert retry.status_code == 404
    assert retry.json() == {"error": "Expense not found"}
    assert data_state(fresh_db) == before
    assert len(audit_rows(fresh_db, "expense.delete")) == 1


# --------------------------------------------------------------------------------------
# Dashboards follow at once
# --------------------------------------------------------------------------------------
async def test_moves_between_users_months_years_and_categories_show_on_dashboards(
    api, fresh_db, alok
):
    created = await create(api, alok, amount=100, date="2024-12-31", category_id=1)
    assert await monthly_total(api, alok, ALOK, 2024, 12) == 100
    await api.put(
        f"/api/expenses/{created['id']}",
        json={"user_id": AMOL, "date": "2025-01-01", "category_id": 2, "amount": 40},
        headers=alok,
    )
    assert await monthly_total(api, alok, ALOK, 2024, 12) == 0
    assert await monthly_total(api, alok, AMOL, 2025, 1) == 40
    yearly = (
        await api.get(f"/api/dashboard/{AMOL}/yearly", params={"year": 2025}, headers=alok)
    ).json()
    assert yearly["category_breakdown"] == [
        {"category": "Transportation", "amount": 40, "percentage": 100}
    ]
    await api.delete(f"/api/expenses/{created['id']}", headers=alok)  # Alok recorded it
    assert await monthly_total(api, alok, AMOL, 2025, 1) == 0
    with sql(fresh_db) as cur:
        cur.execute("select count(*) from public.expense_totals_drift()")
        assert cur.fetchone()[0] == 0


# --------------------------------------------------------------------------------------
# Authorship and the audit trail
# --------------------------------------------------------------------------------------
async def test_create_sets_created_by_and_writes_one_audit_row(api, fresh_db, alok):
    response = await api.post(
        "/api/expenses",
        json={"amount": 5, "category_id": 1, "user_id": AMOL},
        headers={**alok, "X-Request-ID": "req-create-1"},
    )
    expense_id = response.json()["id"]
    with sql(fresh_db) as cur:
        cur.execute("select created_by from public.expenses where id = %s", (expense_id,))
        assert cur.fetchone()[0] == ALOK
    [(action, actor, target, request_id, client, before, after)] = audit_rows(fresh_db)
    assert (action, actor, target, request_id, client) == (
        "expense.create",
        ALOK,
        expense_id,
        "req-create-1",
        "127.0.0.1",
    )
    assert before is None and after["user_id"] == AMOL and after["created_by"] == ALOK


async def test_update_and_delete_audit_rows_hold_before_and_after(api, fresh_db, alok):
    created = await create(api, alok, amount=10)
    await api.put(
        f"/api/expenses/{created['id']}",
        json={"amount": 11},
        headers={**alok, "X-Request-ID": "req-put"},
    )
    await api.delete(f"/api/expenses/{created['id']}", headers={**alok, "X-Request-ID": "req-del"})
    rows = audit_rows(fresh_db)
    assert [r[0] for r in rows] == ["expense.create", "expense.update", "expense.delete"]
    _, actor, target, request_id, _, before, after = rows[1]
    assert (actor, target, request_id) == (ALOK, created["id"], "req-put")
    assert (float(before["amount"]), float(after["amount"])) == (10, 11)
    _, actor, target, request_id, _, before, after = rows[2]
    assert (actor, target, request_id, after) == (ALOK, created["id"], "req-del", None)
    assert float(before["amount"]) == 11


async def test_existing_rows_are_back_filled_with_their_owner(fresh_db):
    """The migration's back-fill and the insert default for rows written without a caller."""
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.expenses (user_id, category_id, amount) "
            "values (%s, 1, 3) returning created_by",
            (AMOL,),
        )
        assert cur.fetchone()[0] == AMOL


@pytest.mark.parametrize(
    "statement",
    [
        "update public.audit_log set action = 'auth.login'",
        "delete from public.audit_log",
        "truncate public.audit_log",
    ],
)
@pytest.mark.parametrize("role", ["service_role", "authenticated", "anon"])
async def test_no_api_role_can_rewrite_the_audit_log(api, fresh_db, alok, role, statement):
    await create(api, alok)
    rows = count_rows(fresh_db, "audit_log")
    with sql(fresh_db) as cur:
        cur.execute(f"set local role {role}")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(statement)
    assert count_rows(fresh_db, "audit_log") == rows


async def test_audit_rows_for_login_failure_success_logout_and_registration(api, fresh_db):
    bad = await api.post("/api/auth/login", json={"email": "alok@example.com", "password": "x"})
    assert bad.status_code == 401
    good = await api.post(
        "/api/auth/login", json={"email": "alok@example.com", "password": "password123"}
    )
    token = good.json()["token"]
    api.cookies.clear()
    await api.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    registered = await api.post(
        "/api/auth/register", json={"username": "new_member", "password": "Str0ng!pass"}
    )
    new_id = registered.json()["user"]["id"]
    rows = [(r[0], r[1], r[2]) for r in audit_rows(fresh_db)]
    assert rows == [
        ("auth.login_failed", None, ALOK),
        ("auth.login", ALOK, ALOK),
        ("auth.logout", ALOK, ALOK),
        ("auth.register", new_id, new_id),
    ]
    assert all(r[4] == "127.0.0.1" and r[3] for r in audit_rows(fresh_db))
    assert "password" not in str(audit_rows(fresh_db)).lower()


async def test_failed_registration_leaves_no_audit_row(api, fresh_db):
    response = await api.post(
        "/api/auth/register", json={"username": "Alok", "password": "Str0ng!pass"}
    )
    assert response.status_code == 400
    assert audit_rows(fresh_db) == []


async def test_retention_prunes_rows_older_than_the_setting(fresh_db, api, alok):
    await create(api, alok)
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.audit_log (occurred_at, action) values "
            "(now() - interval '400 days', 'auth.login'), "
            "(now() - interval '10 days', 'auth.login')"
        )
    assert background.prune_audit_log(fresh_db, 365) == 1
    assert count_rows(fresh_db, "audit_log") == 2
    assert background.prune_audit_log(fresh_db, 5) == 1
    assert count_rows(fresh_db, "audit_log") == 1
