"""Issue 23: search and more filters on GET /api/expenses and the CSV export — `q` (case-
and accent-insensitive substring of description, category, payment method; indexed),
`min_amount`, `max_amount`, `payment_method_id`. Rows keep the list's shape."""

from __future__ import annotations

import csv
import io

import pytest

from tests.helpers import insert_expenses, sql

# (user_id, category_id, payment_method_id, amount, description, date)
ROWS = [
    (1, 1, 1, "400.00", "Pharmacy bill", "2025-01-15"),
    (1, 2, 4, "120.50", "taxi to the PHARMACY", "2025-01-20"),
    (2, 1, None, "99.99", None, "2025-01-15"),
    (2, 3, 2, "1500.00", "Café Noir ☕", "2025-02-01"),
    (3, 4, 3, "250.00", "crème brûlée", "2024-12-31"),
    (1, 3, 5, "10.00", "100% juice_box", "2025-02-10"),
    (4, 2, 4, "75.25", "bus pass", "2025-01-31"),
    (1, 3, 2, "60.00", "phone", "2025-01-01"),
]


@pytest.fixture
def rows(fresh_db):
    insert_expenses(fresh_db, ROWS)
    return fresh_db


async def listed(api, headers, **params) -> list[dict]:
    response = await api.get("/api/expenses", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def descriptions(items: list[dict]) -> list[str | None]:
    return [item["description"] for item in items]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("pharmacy", ["taxi to the PHARMACY", "Pharmacy bill"]),
        ("PHARM", ["taxi to the PHARMACY", "Pharmacy bill"]),
        ("cafe", ["Café Noir ☕"]),  # accents folded on the row's side
        ("CAFÉ", ["Café Noir ☕"]),  # and on the query's
        ("creme brulee", ["crème brûlée"]),
        ("☕", ["Café Noir ☕"]),
        ("%", ["100% juice_box"]),  # LIKE's wildcards are taken literally
        ("_", ["100% juice_box"]),
        ("1_0", []),  # "100" would match an unescaped _
        ("transport", ["bus pass", "taxi to the PHARMACY"]),  # the category's name
        ("débit", ["crème brûlée"]),  # the payment method's name (Debit Card), accent folded
        ("nothing like it", []),
    ],
)
async def test_q_matches_a_substring_case_and_accent_insensitively(
    api, rows, auth_headers, q, expected
):
    assert descriptions(await listed(api, auth_headers, q=q)) == expected


async def test_matching_rows_are_the_lists_rows_unchanged(api, rows, auth_headers):
    everything = await listed(api, auth_headers)
    by_id = {item["id"]: item for item in everything}
    for params in (
        {"q": "a"},
        {"q": "food"},
        {"min_amount": "75.25"},
        {"max_amount": "99.99"},
        {"min_amount": "60", "max_amount": "400.00"},
        {"payment_method_id": "4"},
        {"q": "p", "payment_method_id": "2", "user_id": "1"},
        {"q": "a", "limit": "2", "offset": "1"},
    ):
        found = await listed(api, auth_headers, **params)
        assert found, params
        assert all(item == by_id[item["id"]] for item in found), params
        # newest date first, then id: the list's order
        keys = [(item["date"], item["id"]) for item in found]
        assert keys == sorted(keys, reverse=True)


async def test_amount_and_payment_method_filters(api, rows, auth_headers):
    amounts = [i["amount"] for i in await listed(api, auth_headers, min_amount="99.99")]
    assert sorted(amounts) == [99.99, 120.5, 250, 400, 1500]
    amounts = [i["amount"] for i in await listed(api, auth_headers, max_amount="75.25")]
    assert sorted(amounts) == [10, 60, 75.25]
    exact = await listed(api, auth_headers, min_amount="120.5", max_amount="120.50")
    assert descriptions(exact) == ["taxi to the PHARMACY"]
    upi = await listed(api, auth_headers, payment_method_id="4")
    assert descriptions(upi) == ["bus pass", "taxi to the PHARMACY"]
    assert await listed(api, auth_headers, payment_method_id="99") == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_amount": "abc"}, "min_amount: must be an amount"),
        ({"min_amount": "-1"}, "min_amount: must be an amount"),
        ({"max_amount": "1.234"}, "max_amount: must be an amount"),
        ({"max_amount": "1e3"}, "max_amount: must be an amount"),
        ({"max_amount": "01"}, "max_amount: must be an amount"),
        ({"max_amount": "12345678901"}, "max_amount: must be an amount"),
        ({"min_amount": "10", "max_amount": "9.99"}, "min_amount must not be more than"),
        ({"payment_method_id": "0"}, "payment_method_id"),
        ({"payment_method_id": "x"}, "payment_method_id"),
        ({"q": ""}, "q: String should have at least 1 character"),
        ({"q": "x" * 201}, "q: String should have at most 200 characters"),
        ({"q": "a\x00b"}, "q: must not contain NUL"),
    ],
)
@pytest.mark.parametrize("path", ["/api/expenses", "/api/expenses/export.csv"])
async def test_bad_filter_values_are_400(api, rows, auth_headers, params, message, path):
    response = await api.get(path, params=params, headers=auth_headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message), response.json()


async def test_the_export_takes_the_same_filters(api, rows, auth_headers):
    for params in (
        {"q": "pharmacy"},
        {"q": "cafe", "min_amount": "1000"},
        {"payment_method_id": "4", "max_amount": "100"},
        {"q": "zzz"},
    ):
        listed_ids = [str(i["id"]) for i in await listed(api, auth_headers, **params)]
        response = await api.get("/api/expenses/export.csv", params=params, headers=auth_headers)
        assert response.status_code == 200
        lines = list(csv.reader(io.StringIO(response.text, newline="")))
        assert [line[0] for line in lines[1:]] == listed_ids, params
    response = await api.get(
        "/api/expenses/export.csv",
        params={"q": "x", "payment_method_id": 4, "min_amount": "1"},
        headers=auth_headers,
    )
    assert response.headers["content-disposition"] == (
        'attachment; filename="expenses_payment-method-4_min-1_search.csv"'
    )


def test_search_uses_the_trigram_index_in_the_generic_plan(fresh_db):
    """The search statement of list_expenses, planned generically (as the function plans
    it) on 20,000 rows: the folded description is found through the trigram index."""
    with sql(fresh_db) as cur:
        cur.execute("select extname from pg_extension where extname in ('pg_trgm', 'unaccent')")
        assert sorted(r[0] for r in cur.fetchall()) == ["pg_trgm", "unaccent"]
        cur.execute(
            "insert into public.expenses (user_id, category_id, amount, description, date) "
            "select 1, 1 + g % 4, 1 + g % 97, 'item ' || md5(g::text), "
            "date '2024-01-01' + g % 400 from generate_series(1, 20000) g"
        )
        cur.execute("analyze public.expenses")
        cur.execute("set local plan_cache_mode = force_generic_plan")
        cur.execute(
            "prepare search(text, bigint[], bigint[]) as select e.id from ("
            "select x.* from public.expenses x where public.search_fold(x.description) like $1 "
            "union all select x.* from public.expenses x where cardinality($2) > 0 "
            "and x.category_id = any ($2) "
            "and not coalesce(public.search_fold(x.description) like $1, false)) e"
        )
        cur.execute("explain execute search(public.search_pattern('abcdef'), '{}', '{}')")
        plan = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("select prosrc from pg_proc where proname = 'list_expenses'")
        source = cur.fetchone()[0]
    assert "Bitmap Index Scan on expenses_description_search_idx" in plan, plan
    # the statement explained here is the function's own search branch
    assert "where public.search_fold(x.description) like pattern" in source
