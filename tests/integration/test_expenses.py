"""GET and POST /api/expenses on the real stack (PostgREST max-rows is 1000 there)."""

from __future__ import annotations

import datetime as dt
import os
import time

import httpx
import pytest

from tests.helpers import count_rows, insert_expenses, sql, token_for

FIELDS = [
    "id",
    "user_id",
    "user_name",
    "amount",
    "category_id",
    "category",
    "payment_method_id",
    "payment_method",
    "description",
    "date",
    "created_at",
]
USER_NAMES = {1: "Alok", 2: "Amol", 3: "Atul", 4: "Rashmi"}
CATEGORY_NAMES = {1: "Food", 2: "Transportation", 3: "Utilities", 4: "Entertainment"}
# (user_id, category_id, payment_method_id, amount, description, date)
ROWS = [
    (1, 1, 1, "400.00", "groceries", "2025-01-15"),
    (1, 2, 4, "120.50", "taxi", "2025-01-20"),
    (2, 1, None, "99.99", None, "2025-01-15"),
    (2, 3, 2, "1500.00", "electricity", "2025-02-01"),
    (3, 4, 3, "250.00", "movies", "2024-12-31"),
    (1, 1, 5, "10.00", "snack", "2025-02-10"),
    (4, 2, 4, "75.25", "bus pass", "2025-01-31"),
    (1, 3, 2, "60.00", "phone", "2025-01-01"),
]


@pytest.fixture
def seeded(fresh_db) -> str:
    insert_expenses(fresh_db, ROWS)
    return fresh_db


def expected(**filters) -> list[tuple[int, tuple]]:
    """(id, row) of ROWS matching the filters, newest date first, then newest id."""
    out = []
    for i, row in enumerate(ROWS, start=1):
        user, category, _, _, _, date = row
        if filters.get("user_id") not in (None, user):
            continue
        if filters.get("category_id") not in (None, category):
            continue
        if filters.get("date_from") and date < filters["date_from"]:
            continue
        if filters.get("date_to") and date > filters["date_to"]:
            continue
        out.append((i, row))
    return sorted(out, key=lambda item: (item[1][5], item[0]), reverse=True)


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()]


# --------------------------------------------------------------------------------------
# GET
# --------------------------------------------------------------------------------------
async def test_list_returns_every_row_in_the_legacy_shape_newest_first(api, seeded, auth_headers):
    response = await api.get("/api/expenses", headers=auth_headers)
    assert response.status_code == 200
    body = response.json()
    assert ids(response) == [i for i, _ in expected()]
    for item, (_, (user, category, payment, amount, description, date)) in zip(body, expected()):
        assert list(item) == FIELDS
        assert item["user_id"] == user and item["user_name"] == USER_NAMES[user]
        assert item["category_id"] == category and item["category"] == CATEGORY_NAMES[category]
        assert item["payment_method_id"] == payment
        assert item["amount"] == float(amount) and item["description"] == description
        assert item["date"] == date
        dt.datetime.fromisoformat(item["created_at"])
    assert "password_hash" not in response.text


async def test_list_amounts_are_numbers_integers_stay_integers(api, seeded, auth_headers):
    by_id = {
        row["id"]: row for row in (await api.get("/api/expenses", headers=auth_headers)).json()
    }
    assert by_id[1]["amount"] == 400 and isinstance(by_id[1]["amount"], int)
    assert by_id[2]["amount"] == 120.5
    assert by_id[3]["amount"] == 99.99
    assert by_id[3]["payment_method"] is None and by_id[3]["payment_method_id"] is None
    assert by_id[2]["payment_method"] == "UPI"


@pytest.mark.parametrize(
    "filters",
    [
        {"user_id": 1},
        {"category_id": 1},
        {"date_from": "2025-01-15"},
        {"date_to": "2025-01-15"},
        {"date_from": "2025-01-15", "date_to": "2025-01-15"},
        {"user_id": 1, "category_id": 1},
        {"user_id": 1, "date_from": "2025-01-01", "date_to": "2025-01-31"},
        {"user_id": 1, "category_id": 1, "date_from": "2025-01-01", "date_to": "2025-02-28"},
        {"category_id": 2, "date_from": "2025-01-21"},
        {"user_id": 3, "category_id": 1},
        {"user_id": 99},
    ],
)
async def test_list_filters_combine_and_dates_are_inclusive(api, seeded, auth_headers, filters):
    response = await api.get("/api/expenses", headers=auth_headers, params=filters)
    assert response.status_code == 200
    assert ids(response) == [i for i, _ in expected(**filters)]


@pytest.mark.parametrize("limit, offset", [(3, 0), (3, 2), (1, 7), (5, 6), (10, 0), (2, 50)])
async def test_list_limit_and_offset_window_the_ordered_list(
    api, seeded, auth_headers, limit, offset
):
    everything = [i for i, _ in expected()]
    response = await api.get(
        "/api/expenses", headers=auth_headers, params={"limit": limit, "offset": offset}
    )
    assert response.status_code == 200
    assert ids(response) == everything[offset : offset + limit]


async def test_list_offset_without_limit_returns_the_rest(api, seeded, auth_headers):
    response = await api.get("/api/expenses", headers=auth_headers, params={"offset": 5})
    assert ids(response) == [i for i, _ in expected()][5:]


async def test_list_limit_and_offset_apply_after_the_filters(api, seeded, auth_headers):
    response = await api.get(
        "/api/expenses", headers=auth_headers, params={"user_id": 1, "limit": 2, "offset": 1}
    )
    assert ids(response) == [i for i, _ in expected(user_id=1)][1:3]


async def test_list_returns_all_of_more_than_1000_matching_rows(api, fresh_db, auth_headers):
    with sql(fresh_db) as cur:
        cur.execute("""
            insert into public.expenses (user_id, category_id, payment_method_id, amount, date)
            select 1 + g % 2, 1 + g % 4, 1 + g % 5, 1 + g % 97,
                   date '2023-01-01' + (g % 700)
            from generate_series(1, 2600) g""")
        cur.execute("select id from public.expenses order by date desc, id desc")
        all_ids = [r[0] for r in cur.fetchall()]
        cur.execute("select id from public.expenses where user_id = 1 order by date desc, id desc")
        alok_ids = [r[0] for r in cur.fetchall()]
    everything = await api.get("/api/expenses", headers=auth_headers)
    assert everything.status_code == 200
    assert ids(everything) == all_ids and len(all_ids) == 2600
    alok = await api.get("/api/expenses", headers=auth_headers, params={"user_id": 1})
    assert ids(alok) == alok_ids and len(alok_ids) == 1300
    window = await api.get(
        "/api/expenses", headers=auth_headers, params={"limit": 1500, "offset": 900}
    )
    assert ids(window) == all_ids[900:2400]


def insert_many(dsn: str, rows: int) -> list[int]:
    """`rows` expenses over two years; their ids newest date first, then newest id."""
    with sql(dsn) as cur:
        cur.execute(
            """
            insert into public.expenses (user_id, category_id, payment_method_id, amount, date)
            select 1 + g %% 2, 1 + g %% 4, 1 + g %% 5, 1 + g %% 97, date '2023-01-01' + (g %% 700)
            from generate_series(1, %s) g""",
            (rows,),
        )
        cur.execute("select id from public.expenses order by date desc, id desc")
        return [r[0] for r in cur.fetchall()]


def postgrest(path: str) -> str:
    return f"{os.environ['SUPABASE_URL']}/rest/v1/{path}"


SERVICE = {
    "apikey": os.environ.get("SUPABASE_SERVICE_ROLE_KEY", ""),
    "Authorization": f"Bearer {os.environ.get('SUPABASE_SERVICE_ROLE_KEY', '')}",
    # a valid session of user 1 (the functions refuse a service-role call without one)
    "X-Gateway-Session": f"1:{'0' * 32}:{int(time.time())}",
}


async def test_the_list_function_on_postgrest_is_not_cut_by_max_rows(fresh_db):
    """The stack's PostgREST caps table reads at max-rows = 1000; the function's one scalar
    result (the whole body) is not a row set, so nothing is cut, with or without filters."""
    all_ids = insert_many(fresh_db, 2600)
    async with httpx.AsyncClient(timeout=30) as client:
        table = await client.get(postgrest("expenses?select=id"), headers=SERVICE)
        assert len(table.json()) == 1000  # the cap is really there
        answer = await client.post(
            postgrest("rpc/list_expenses"),
            json={},
            headers={**SERVICE, "Accept": "application/json"},
        )
        assert answer.status_code == 200
        assert [row["id"] for row in answer.json()] == all_ids
        window = await client.post(
            postgrest("rpc/list_expenses"),
            json={"p_limit": 1500, "p_offset": 1000},
            headers={**SERVICE, "Accept": "application/json"},
        )
        assert [row["id"] for row in window.json()] == all_ids[1000:2500]


async def test_the_list_function_refuses_a_window_the_api_would_refuse(fresh_db):
    async with httpx.AsyncClient(timeout=30) as client:
        for params in ({"p_limit": 0}, {"p_offset": -1}, {"p_offset": None}):
            answer = await client.post(
                postgrest("rpc/list_expenses"),
                json=params,
                headers={**SERVICE, "Accept": "application/json"},
            )
            assert answer.status_code == 400, params


async def test_the_list_function_is_only_for_the_service_role(fresh_db):
    anon = os.environ["SUPABASE_ANON_KEY"]
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            postgrest("rpc/list_expenses"),
            json={},
            headers={
                "apikey": anon,
                "Authorization": f"Bearer {anon}",
                "Accept": "application/json",
            },
        )
    assert answer.status_code in (401, 403, 404)
    assert "user_name" not in answer.text


HOSTILE_TEXT = [
    'say "hi"',
    "back\\slash \\",
    "line\nbreak\ttab\r",
    "bell\u0007 esc\u001b",
    "unicode: café ₹ 漢字 🎉",
    "</script><script>alert(1)</script>",
    "",
    None,
    "\u2028 and \u2029",
    "x" * 500,
]
AMOUNTS = ["0.01", "0.10", "0.50", "1.00", "10.05", "99.99", "1234567890.12", "9999999999.99"]


async def test_list_body_is_the_rows_shaped_exactly_for_hostile_text_and_amounts(
    api, fresh_db, auth_headers
):
    """The function writes JSON by hand (faster than json_build_object, no spaces): every
    string escaped, every amount a number with integers as integers, nulls as null,
    created_at as PostgREST renders timestamptz - compared with the rows read by psycopg2."""
    with sql(fresh_db) as cur:
        for i, text in enumerate(HOSTILE_TEXT):
            cur.execute(
                "insert into public.expenses (user_id, category_id, payment_method_id, "
                "amount, description, date) values (%s, %s, %s, %s, %s, %s)",
                (
                    1 + i % 4,
                    1 + i % 4,
                    None if i % 3 == 0 else 1 + i % 5,
                    AMOUNTS[i % len(AMOUNTS)],
                    text,
                    f"2025-0{1 + i % 9}-1{i % 10}",
                ),
            )
        cur.execute("""select e.id, e.user_id, u.name, e.amount, e.category_id, c.name,
                              e.payment_method_id, pm.name, e.description, e.date::text,
                              to_json(e.created_at) #>> '{}'
                       from public.expenses e join public.users u on u.id = e.user_id
                       join public.categories c on c.id = e.category_id
                       left join public.payment_methods pm on pm.id = e.payment_method_id
                       order by e.date desc, e.id desc""")
        rows = cur.fetchall()
    response = await api.get("/api/expenses", headers=auth_headers)
    assert response.status_code == 200
    body = response.json()
    assert len(body) == len(rows) == len(HOSTILE_TEXT)
    for item, row in zip(body, rows):
        amount = row[3]
        want = dict(zip(FIELDS, row))
        want["amount"] = int(amount) if amount == amount.to_integral() else float(amount)
        assert item == want
        assert type(item["amount"]) is type(want["amount"])  # 10 stays 10, not 10.0
    assert {"user_name", "password_hash"} & set(body[0]) == {"user_name"}


async def test_a_large_list_is_streamed_and_a_small_one_has_a_length(api, fresh_db, auth_headers):
    insert_many(fresh_db, 2600)  # ~600 kB: more than database.SMALL_BODY_BYTES
    large = await api.get("/api/expenses", headers=auth_headers)
    assert large.status_code == 200 and len(large.json()) == 2600
    assert "content-length" not in large.headers  # streamed as it arrives
    assert large.headers["content-type"] == "application/json"
    assert large.headers["x-request-id"] and large.headers["x-content-type-options"] == "nosniff"
    small = await api.get("/api/expenses", headers=auth_headers, params={"limit": 3})
    assert small.headers["content-length"] == str(len(small.content))
    assert len(small.json()) == 3


async def test_list_rejects_date_from_after_date_to(api, seeded, auth_headers):
    response = await api.get(
        "/api/expenses",
        headers=auth_headers,
        params={"date_from": "2025-02-01", "date_to": "2025-01-01"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "date_from must not be after date_to"}


@pytest.mark.parametrize(
    "params",
    [
        {"user_id": "abc"},
        {"user_id": 0},
        {"category_id": "-3"},
        {"date_from": "2025-13-01"},
        {"date_to": "2025-02-29"},
        {"date_from": "01/01/2025"},
        {"limit": 0},
        {"offset": -1},
    ],
)
async def test_list_rejects_invalid_ids_dates_and_paging_with_400(
    api, seeded, auth_headers, params
):
    response = await api.get("/api/expenses", headers=auth_headers, params=params)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


async def test_list_without_token_is_401(api, seeded):
    response = await api.get("/api/expenses")
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication required"}


# --------------------------------------------------------------------------------------
# POST
# --------------------------------------------------------------------------------------
async def test_create_returns_201_with_the_stored_row_in_the_list_shape(
    api, fresh_db, auth_headers
):
    response = await api.post(
        "/api/expenses",
        headers=auth_headers,
        json={
            "amount": 250.5,
            "category_id": 1,
            "payment_method_id": 4,
            "description": "Groceries",
            "date": "2025-01-15",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["message", "id", "expense"]
    assert body["message"] == "Expense added successfully"
    expense = body["expense"]
    assert list(expense) == FIELDS
    assert body["id"] == expense["id"]
    assert {k: expense[k] for k in FIELDS if k not in ("id", "created_at")} == {
        "user_id": 1,
        "user_name": "Alok",
        "amount": 250.5,
        "category_id": 1,
        "category": "Food",
        "payment_method_id": 4,
        "payment_method": "UPI",
        "description": "Groceries",
        "date": "2025-01-15",
    }
    listed = (await api.get("/api/expenses", headers=auth_headers)).json()
    assert listed == [expense]
    assert count_rows(fresh_db, "expenses") == 1


async def test_create_defaults_to_the_caller_and_today(api, fresh_db, auth_headers):
    response = await api.post(
        "/api/expenses", headers=auth_headers, json={"amount": 400, "category_id": 3}
    )
    assert response.status_code == 201
    expense = response.json()["expense"]
    with sql(fresh_db) as cur:
        cur.execute("select current_date::text")
        today = cur.fetchone()[0]
    assert expense["user_id"] == 1 and expense["user_name"] == "Alok"
    assert expense["date"] == today
    assert expense["amount"] == 400 and isinstance(expense["amount"], int)
    assert expense["payment_method_id"] is None and expense["payment_method"] is None
    assert expense["description"] is None


async def test_create_for_another_family_member(api, fresh_db, auth_headers):
    response = await api.post(
        "/api/expenses", headers=auth_headers, json={"amount": 12.3, "category_id": 2, "user_id": 4}
    )
    assert response.status_code == 201
    assert response.json()["expense"]["user_id"] == 4
    assert response.json()["expense"]["user_name"] == "Rashmi"
    assert response.json()["expense"]["amount"] == 12.3


@pytest.mark.parametrize(
    "field, body",
    [
        ("category_id", {"amount": 10, "category_id": 99}),
        ("payment_method_id", {"amount": 10, "category_id": 1, "payment_method_id": 99}),
        ("user_id", {"amount": 10, "category_id": 1, "user_id": 99}),
    ],
)
async def test_create_with_unknown_reference_is_400_naming_the_field(
    api, fresh_db, auth_headers, field, body
):
    response = await api.post("/api/expenses", headers=auth_headers, json=body)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert set(response.json()) == {"error"}
    assert count_rows(fresh_db, "expenses") == 0


@pytest.mark.parametrize(
    "body",
    [
        {"category_id": 1},
        {"amount": 0, "category_id": 1},
        {"amount": -1, "category_id": 1},
        {"amount": "100", "category_id": 1},
        {"amount": 1.005, "category_id": 1},
        {"amount": 10},
        {"amount": 10, "category_id": "Food"},
        {"amount": 10, "category_id": 1, "description": "x" * 501},
        {"amount": 10, "category_id": 1, "description": "nul\u0000byte"},
        {"amount": 10, "category_id": 1, "date": "2025-02-30"},
        {"amount": 10, "category_id": 1, "date": "tomorrow"},
        {"amount": 10, "category_id": 1, "user_id": 0},
    ],
)
async def test_create_with_bad_input_is_400_and_stores_nothing(api, fresh_db, auth_headers, body):
    response = await api.post("/api/expenses", headers=auth_headers, json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert count_rows(fresh_db, "expenses") == 0
    assert count_rows(fresh_db, "expense_monthly_totals") == 0


async def test_create_with_malformed_json_is_400_and_stores_nothing(api, fresh_db, auth_headers):
    response = await api.post(
        "/api/expenses",
        content=b'{"amount": 10,',
        headers={**auth_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Malformed JSON body"}
    assert count_rows(fresh_db, "expenses") == 0


async def test_create_without_token_is_401_and_stores_nothing(api, fresh_db):
    response = await api.post("/api/expenses", json={"amount": 10, "category_id": 1})
    assert response.status_code == 401
    assert count_rows(fresh_db, "expenses") == 0


async def test_create_with_a_logged_out_token_is_401_and_stores_nothing(api, fresh_db):
    token = token_for(2, "Amol")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.post("/api/auth/logout", headers=headers)).status_code == 200
    api.cookies.clear()
    response = await api.post(
        "/api/expenses", headers=headers, json={"amount": 10, "category_id": 1}
    )
    assert response.status_code == 401
    assert count_rows(fresh_db, "expenses") == 0


async def test_create_retried_with_the_same_idempotency_key_stores_one_row(
    api, fresh_db, auth_headers
):
    headers = {**auth_headers, "Idempotency-Key": "retry-1"}
    body = {"amount": 42, "category_id": 1, "date": "2025-03-03"}
    first = await api.post("/api/expenses", headers=headers, json=body)
    second = await api.post("/api/expenses", headers=headers, json=body)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert count_rows(fresh_db, "expenses") == 1
    other = await api.post("/api/expenses", headers=headers, json={**body, "amount": 43})
    assert other.status_code == 409
    assert count_rows(fresh_db, "expenses") == 1
