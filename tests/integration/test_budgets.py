"""Issue 23: budgets per category and month (PUT/GET /api/budgets) on the real stack. Spent
comes from the totals table, so it follows every write path at once: API create, edit,
delete, and a raw SQL insert."""

from __future__ import annotations

import pytest

from tests.helpers import data_state, insert_expenses, sql


async def put(api, headers, **body):
    return await api.put("/api/budgets", json=body, headers=headers)


async def status(api, headers, year=2025, month=5) -> dict[str, dict]:
    response = await api.get("/api/budgets", params={"year": year, "month": month}, headers=headers)
    assert response.status_code == 200, response.text
    return {entry["category"]: entry for entry in response.json()}


async def test_a_budget_holds_from_its_month_until_changed(api, fresh_db, auth_headers):
    response = await put(api, auth_headers, category_id=1, amount=20000, month="2025-05")
    assert response.status_code == 200
    assert response.json() == {
        "message": "Budget saved",
        "category_id": 1,
        "category": "Food",
        "month": "2025-05",
        "amount": 20000,
    }
    assert await status(api, auth_headers, 2025, 4) == {}
    may = await status(api, auth_headers, 2025, 5)
    assert list(may.values()) == [
        {
            "category_id": 1,
            "category": "Food",
            "budget": 20000,
            "spent": 0,
            "remaining": 20000,
            "percentage": 0,
            "over": False,
        }
    ]
    assert (await status(api, auth_headers, 2026, 1))["Food"]["budget"] == 20000
    # changed from July on; 0 ends it from September on
    assert (await put(api, auth_headers, category_id=1, amount=1500.5, month="2025-07")).json()[
        "amount"
    ] == 1500.5
    assert (
        await put(api, auth_headers, category_id=1, amount=0, month="2025-09")
    ).status_code == 200
    assert (await status(api, auth_headers, 2025, 6))["Food"]["budget"] == 20000
    assert (await status(api, auth_headers, 2025, 8))["Food"]["budget"] == 1500.5
    assert await status(api, auth_headers, 2025, 9) == {}
    # setting the same month again replaces it
    await put(api, auth_headers, category_id=1, amount=100, month="2025-05")
    assert (await status(api, auth_headers, 2025, 5))["Food"]["budget"] == 100
    with sql(fresh_db) as cur:
        cur.execute("select count(*) from public.audit_log where action = 'budget.set'")
        assert cur.fetchone()[0] == 4


async def test_spent_follows_every_write_path(api, fresh_db, auth_headers):
    await put(api, auth_headers, category_id=1, amount=1000, month="2025-01")
    await put(api, auth_headers, category_id=2, amount=50, month="2025-01")

    async def may() -> dict[str, dict]:
        return await status(api, auth_headers, 2025, 5)

    created = await api.post(
        "/api/expenses",
        json={"amount": 250.5, "category_id": 1, "date": "2025-05-03"},
        headers=auth_headers,
    )
    assert created.status_code == 201
    expense_id = created.json()["id"]
    food = (await may())["Food"]
    assert (food["spent"], food["remaining"], food["percentage"], food["over"]) == (
        250.5,
        749.5,
        25.1,
        False,
    )
    # another member's spending counts too (family-wide), through a raw SQL insert
    insert_expenses(fresh_db, [(2, 1, None, "800.00", "sql insert", "2025-05-31")])
    food = (await may())["Food"]
    assert (food["spent"], food["remaining"], food["over"]) == (1050.5, -50.5, True)
    assert food["percentage"] == 105.1
    # edit: move the API expense to Transportation
    edited = await api.put(
        f"/api/expenses/{expense_id}", json={"category_id": 2, "amount": 60}, headers=auth_headers
    )
    assert edited.status_code == 200
    now = await may()
    assert now["Food"]["spent"] == 800
    assert (now["Transportation"]["spent"], now["Transportation"]["over"]) == (60, True)
    # edit: move it out of the month
    await api.put(f"/api/expenses/{expense_id}", json={"date": "2025-06-01"}, headers=auth_headers)
    assert (await may())["Transportation"]["spent"] == 0
    assert (await status(api, auth_headers, 2025, 6))["Transportation"]["spent"] == 60
    # delete
    deleted = await api.delete(f"/api/expenses/{expense_id}", headers=auth_headers)
    assert deleted.status_code == 200
    assert (await status(api, auth_headers, 2025, 6))["Transportation"]["spent"] == 0
    # a SQL delete
    with sql(fresh_db) as cur:
        cur.execute("delete from public.expenses where description = 'sql insert'")
    assert (await may())["Food"]["spent"] == 0


async def test_spending_without_a_budget_is_listed(api, fresh_db, auth_headers):
    insert_expenses(
        fresh_db,
        [(1, 3, None, "99.99", "x", "2025-05-02"), (3, 3, None, "0.01", "y", "2025-05-20")],
    )
    assert await status(api, auth_headers) == {
        "Utilities": {
            "category_id": 3,
            "category": "Utilities",
            "budget": None,
            "spent": 100,
            "remaining": None,
            "percentage": None,
            "over": False,
        }
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"category_id": 99, "amount": 10, "month": "2025-05"}, "Invalid category_id"),
        ({"category_id": 1, "amount": -1, "month": "2025-05"}, "amount:"),
        ({"category_id": 1, "amount": 1.234, "month": "2025-05"}, "amount: "),
        ({"category_id": 1, "amount": "10", "month": "2025-05"}, "amount: "),
        ({"category_id": 1, "amount": 10, "month": "2025-13"}, "month: must be a month"),
        ({"category_id": 1, "amount": 10, "month": "2025-5"}, "month: must be a month"),
        ({"category_id": 1, "amount": 10, "month": "2025-05-01"}, "month: must be a month"),
        ({"category_id": 1, "amount": 10}, "month is required"),
        ({"amount": 10, "month": "2025-05"}, "category_id is required"),
    ],
)
async def test_bad_budgets_are_400_and_change_nothing(api, fresh_db, auth_headers, body, message):
    before = data_state(fresh_db)
    response = await api.put("/api/budgets", json=body, headers=auth_headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message), response.json()
    assert data_state(fresh_db) == before
    with sql(fresh_db) as cur:
        cur.execute("select count(*) from public.budgets")
        assert cur.fetchone()[0] == 0


@pytest.mark.parametrize("params", [{"month": 13}, {"month": 0}, {"year": 1800}, {"year": "x"}])
async def test_bad_status_queries_are_400(api, fresh_db, auth_headers, params):
    response = await api.get("/api/budgets", params=params, headers=auth_headers)
    assert response.status_code == 400


async def test_budgets_need_a_token(api, fresh_db):
    assert (await api.get("/api/budgets")).status_code == 401
    response = await api.put(
        "/api/budgets", json={"category_id": 1, "amount": 1, "month": "2025-01"}
    )
    assert response.status_code == 401
