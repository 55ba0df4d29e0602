"""GET /api/dashboard/users, /{user_id}/monthly and /{user_id}/yearly on the real stack."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.helpers import bearer, insert_expenses, sql, token_for

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
# (user_id, category_id, amount, date)
ROWS = [
    (1, 3, "10000.00", "2025-01-05"),  # Utilities, split over two rows
    (1, 3, "4326.00", "2025-01-28"),
    (1, 1, "5000.00", "2025-01-10"),  # Food
    (1, 2, "3000.50", "2025-01-31"),  # Transportation
    (1, 4, "1006.50", "2025-01-01"),  # Entertainment
    (1, 1, "500.25", "2025-02-14"),  # another month
    (1, 1, "777.00", "2024-12-31"),  # another year
    (2, 1, "999.00", "2025-01-15"),  # another user
]
JANUARY_BREAKDOWN = [
    {"category": "Utilities", "amount": 14326, "percentage": 61.4},
    {"category": "Food", "amount": 5000, "percentage": 21.4},
    {"category": "Transportation", "amount": 3000.5, "percentage": 12.9},
    {"category": "Entertainment", "amount": 1006.5, "percentage": 4.3},
]


@pytest.fixture
def seeded(fresh_db) -> str:
    insert_expenses(fresh_db, ROWS, "user_id, category_id, amount, date")
    return fresh_db


# --------------------------------------------------------------------------------------
# users
# --------------------------------------------------------------------------------------
async def test_users_lists_id_name_email_by_id(api, fresh_db, auth_headers):
    await api.post("/api/auth/register", json={"username": "no_email", "password": "Str0ng!pass"})
    response = await api.get("/api/dashboard/users", headers=auth_headers)
    assert response.status_code == 200
    assert response.json() == [
        {"id": 1, "name": "Alok", "email": "alok@example.com"},
        {"id": 2, "name": "Amol", "email": "amol@example.com"},
        {"id": 3, "name": "Atul", "email": "atul@example.com"},
        {"id": 4, "name": "Rashmi", "email": "rashmi@example.com"},
        {"id": 5, "name": "no_email", "email": None},
    ]
    assert all(list(u) == ["id", "name", "email"] for u in response.json())
    assert "password_hash" not in response.text and "$2b$" not in response.text


async def test_users_without_token_is_401(api, fresh_db):
    response = await api.get("/api/dashboard/users")
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication required"}


# --------------------------------------------------------------------------------------
# monthly
# --------------------------------------------------------------------------------------
async def test_monthly_totals_and_percentages_for_one_user_and_month(api, seeded, auth_headers):
    response = await api.get("/api/dashboard/1/monthly?year=2025&month=1", headers=auth_headers)
    assert response.status_code == 200
    assert response.json() == {
        "user": {"id": 1, "name": "Alok"},
        "period": {"type": "monthly", "year": 2025, "month": 1},
        "total_spent": 23333,
        "top_categories": JANUARY_BREAKDOWN,
        "category_breakdown": JANUARY_BREAKDOWN,
    }
    assert list(response.json()) == [
        "user",
        "period",
        "total_spent",
        "top_categories",
        "category_breakdown",
    ]
    assert isinstance(response.json()["total_spent"], int)


async def test_monthly_of_another_user_counts_only_their_rows(api, seeded, auth_headers):
    response = await api.get("/api/dashboard/2/monthly?year=2025&month=1", headers=auth_headers)
    body = response.json()
    assert body["user"] == {"id": 2, "name": "Amol"}
    assert body["total_spent"] == 999
    assert body["category_breakdown"] == [{"category": "Food", "amount": 999, "percentage": 100}]


async def test_monthly_keeps_two_decimals_for_fractional_totals(api, seeded, auth_headers):
    response = await api.get("/api/dashboard/1/monthly?year=2025&month=2", headers=auth_headers)
    body = response.json()
    assert body["total_spent"] == 500.25
    assert body["top_categories"] == [{"category": "Food", "amount": 500.25, "percentage": 100}]


async def test_monthly_top_categories_are_the_first_5_ties_by_name(api, fresh_db, auth_headers):
    with sql(fresh_db) as cur:
        cur.executemany(
            "insert into public.categories (id, name) values (%s, %s)",
            [(5, "Health"), (6, "Education"), (7, "Travel")],
        )
        cur.executemany(
            "insert into public.expenses (user_id, category_id, amount, date) "
            "values (2, %s, %s, '2025-03-10')",
            [(1, 100), (2, 100), (3, 300), (4, 50), (5, 200), (6, 25), (7, 10)],
        )
    response = await api.get("/api/dashboard/2/monthly?year=2025&month=3", headers=auth_headers)
    body = response.json()
    breakdown = [
        {"category": "Utilities", "amount": 300, "percentage": 38.2},
        {"category": "Health", "amount": 200, "percentage": 25.5},
        {"category": "Food", "amount": 100, "percentage": 12.7},
        {"category": "Transportation", "amount": 100, "percentage": 12.7},
        {"category": "Entertainment", "amount": 50, "percentage": 6.4},
        {"category": "Education", "amount": 25, "percentage": 3.2},
        {"category": "Travel", "amount": 10, "percentage": 1.3},
    ]
    assert body["total_spent"] == 785
    assert body["category_breakdown"] == breakdown
    assert body["top_categories"] == breakdown[:5]


async def test_monthly_empty_month_is_zero_and_empty_lists(api, seeded, auth_headers):
    response = await api.get("/api/dashboard/3/monthly?year=2025&month=6", headers=auth_headers)
    assert response.status_code == 200
    assert response.json() == {
        "user": {"id": 3, "name": "Atul"},
        "period": {"type": "monthly", "year": 2025, "month": 6},
        "total_spent": 0,
        "top_categories": [],
        "category_breakdown": [],
    }


async def test_monthly_defaults_to_the_current_month(api, fresh_db, auth_headers):
    created = await api.post(
        "/api/expenses", headers=auth_headers, json={"amount": 12.5, "category_id": 4}
    )
    assert created.status_code == 201
    today = dt.date.fromisoformat(created.json()["expense"]["date"])
    response = await api.get("/api/dashboard/1/monthly", headers=auth_headers)
    body = response.json()
    assert body["period"] == {"type": "monthly", "year": today.year, "month": today.month}
    assert body["total_spent"] == 12.5


async def test_monthly_reflects_an_expense_created_through_the_api(api, seeded, auth_headers):
    created = await api.post(
        "/api/expenses",
        headers=auth_headers,
        json={"amount": 667, "category_id": 2, "date": "2025-01-20"},
    )
    assert created.status_code == 201
    body = (
        await api.get("/api/dashboard/1/monthly?year=2025&month=1", headers=auth_headers)
    ).json()
    assert body["total_spent"] == 24000
    assert {"category": "Transportation", "amount": 3667.5, "percentage": 15.3} in body[
        "category_breakdown"
    ]


@pytest.mark.parametrize(
    "query",
    [
        "year=2025&month=13",
        "year=2025&month=0",
        "year=99999&month=1",
        "year=0&month=1",
        "year=-1",
        "month=abc",
    ],
)
async def test_monthly_rejects_bad_periods_with_400(api, seeded, auth_headers, query):
    response = await api.get(f"/api/dashboard/1/monthly?{query}", headers=auth_headers)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


async def test_monthly_unknown_user_is_404(api, seeded, auth_headers):
    response = await api.get("/api/dashboard/99/monthly?year=2025&month=1", headers=auth_headers)
    assert response.status_code == 404
    assert response.json() == {"error": "User not found"}


@pytest.mark.parametrize("user_id", ["0", "abc", "-5"])
async def test_monthly_invalid_user_id_is_400(api, seeded, auth_headers, user_id):
    response = await api.get(f"/api/dashboard/{user_id}/monthly", headers=auth_headers)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


async def test_monthly_without_token_is_401(api, seeded):
    response = await api.get("/api/dashboard/1/monthly?year=2025&month=1")
    assert response.status_code == 401


# --------------------------------------------------------------------------------------
# yearly
# --------------------------------------------------------------------------------------
async def test_yearly_sums_the_year_with_all_12_months(api, seeded, auth_headers):
    response = await api.get("/api/dashboard/1/yearly?year=2025", headers=auth_headers)
    assert response.status_code == 200
    breakdown = [
        {"category": "Utilities", "amount": 14326, "percentage": 60.1},
        {"category": "Food", "amount": 5500.25, "percentage": 23.1},
        {"category": "Transportation", "amount": 3000.5, "percentage": 12.6},
        {"category": "Entertainment", "amount": 1006.5, "percentage": 4.2},
    ]
    trends = [{"month": m, "month_name": MONTHS[m - 1], "amount": 0} for m in range(1, 13)]
    trends[0]["amount"], trends[1]["amount"] = 23333, 500.25
    assert response.json() == {
        "user": {"id": 1, "name": "Alok"},
        "period": {"type": "yearly", "year": 2025},
        "total_spent": 23833.25,
        "top_categories": breakdown,
        "category_breakdown": breakdown,
        "monthly_trends": trends,
    }
    assert list(response.json()) == [
        "user",
        "period",
        "total_spent",
        "top_categories",
        "category_breakdown",
        "monthly_trends",
    ]


async def test_yearly_other_year_holds_only_its_rows(api, seeded, auth_headers):
    body = (await api.get("/api/dashboard/1/yearly?year=2024", headers=auth_headers)).json()
    assert body["total_spent"] == 777
    assert [t["amount"] for t in body["monthly_trends"]] == [0] * 11 + [777]


async def test_yearly_empty_year_still_has_12_zero_months(api, seeded, auth_headers):
    body = (await api.get("/api/dashboard/4/yearly?year=2030", headers=auth_headers)).json()
    assert body["total_spent"] == 0
    assert body["top_categories"] == [] and body["category_breakdown"] == []
    assert body["monthly_trends"] == [
        {"month": m, "month_name": MONTHS[m - 1], "amount": 0} for m in range(1, 13)
    ]


async def test_yearly_defaults_to_the_current_year(api, fresh_db, auth_headers):
    body = (await api.get("/api/dashboard/1/yearly", headers=auth_headers)).json()
    assert body["period"] == {"type": "yearly", "year": dt.date.today().year}
    assert len(body["monthly_trends"]) == 12


@pytest.mark.parametrize("query", ["year=99999", "year=0", "year=-2025", "year=abc"])
async def test_yearly_rejects_absurd_years_with_400(api, seeded, auth_headers, query):
    response = await api.get(f"/api/dashboard/1/yearly?{query}", headers=auth_headers)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


async def test_yearly_unknown_user_is_404(api, seeded, auth_headers):
    response = await api.get("/api/dashboard/99/yearly?year=2025", headers=auth_headers)
    assert response.status_code == 404
    assert response.json() == {"error": "User not found"}


async def test_yearly_for_a_deleted_user_is_404_for_others(api, seeded):
    with sql(seeded) as cur:
        cur.execute("delete from public.users where id = 2")
    headers = bearer(token_for(1, "Alok"))
    response = await api.get("/api/dashboard/2/yearly?year=2025", headers=headers)
    assert response.status_code == 404
    assert response.json() == {"error": "User not found"}
