"""Issue 23: GET /api/expenses/export.xlsx on the real stack, read back with a standard
reader (openpyxl): the CSV export's columns, order and filters; amounts as numbers, dates
as dates, texts as strings (formula-looking text stays text); every row of a multi-page
export."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest

from tests.helpers import insert_expenses, sql

COLUMNS = [
    "id",
    "date",
    "user",
    "category",
    "payment_method",
    "amount",
    "description",
    "created_at",
]
TEXTS = [
    "=1+1",
    '=HYPERLINK("http://x","y")',
    "+SUM(A1)",
    "-2+3",
    "@cmd",
    "\tTAB",
    "line one\nline two",
    "Café ☕ — 日本語 🎉",
    "1234",
    "2025-01-01",
    None,
]


def read(content: bytes) -> list[tuple]:
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    sheet = book["Expenses"]
    return [tuple(cell.value for cell in row) for row in sheet.iter_rows()]


async def xlsx(api, headers, **params):
    response = await api.get("/api/expenses/export.xlsx", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    return response


async def test_every_row_with_numbers_dates_and_strings(api, fresh_db, auth_headers):
    insert_expenses(
        fresh_db,
        [
            (1 + i % 4, 1 + i % 4, None if i % 3 == 0 else 1 + i % 5, amount, text, date)
            for i, (text, amount, date) in enumerate(
                (t, a, d)
                for t in TEXTS
                for a, d in (
                    ("0.01", "2024-02-29"),
                    ("9999999999.99", "1999-12-31"),
                    ("400.00", "2025-01-15"),
                )
            )
        ],
    )
    response = await xlsx(api, auth_headers)
    assert response.headers["content-disposition"] == 'attachment; filename="expenses.xlsx"'
    rows = read(response.content)
    listed = (await api.get("/api/expenses", headers=auth_headers)).json()
    assert rows[0] == tuple(COLUMNS)
    assert len(rows) == 1 + len(listed) == 1 + 3 * len(TEXTS)
    for row, item in zip(rows[1:], listed, strict=True):
        assert row == (
            item["id"],
            dt.datetime.fromisoformat(item["date"]),  # a real date cell (openpyxl: datetime)
            item["user_name"],
            item["category"],
            item["payment_method"],
            item["amount"],
            item["description"],
            item["created_at"],
        )
        assert isinstance(row[5], (int, float)) and not isinstance(row[5], bool)
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    cells = [c for c in book["Expenses"]["G"][1:] if c.value is not None]
    assert cells and all(c.data_type == "s" for c in cells)  # strings, never formulas
    assert book["Expenses"]["B2"].is_date


async def test_the_csv_exports_filters_and_a_multi_page_export(api, fresh_db, auth_headers):
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.expenses (user_id, category_id, payment_method_id, amount, "
            "description, date) select 1 + g % 4, 1 + g % 4, 1 + g % 5, 1 + g % 97, "
            "'item ' || g, date '2024-01-01' + g % 300 from generate_series(1, 12000) g"
        )
    rows = read((await xlsx(api, auth_headers)).content)
    with sql(fresh_db) as cur:
        cur.execute("select id from public.expenses order by date desc, id desc")
        assert [r[0] for r in rows[1:]] == [r[0] for r in cur.fetchall()]
    params = {"user_id": 2, "q": "item 1", "min_amount": "10", "date_to": "2024-06-30"}
    filtered = read((await xlsx(api, auth_headers, **params)).content)
    listed = (await api.get("/api/expenses", params=params, headers=auth_headers)).json()
    assert [r[0] for r in filtered[1:]] == [item["id"] for item in listed]
    assert listed


@pytest.mark.parametrize(
    "params", [{"date_from": "2025-02-30"}, {"min_amount": "x"}, {"q": ""}, {"user_id": 0}]
)
async def test_bad_filters_are_400(api, fresh_db, auth_headers, params):
    response = await api.get("/api/expenses/export.xlsx", params=params, headers=auth_headers)
    assert response.status_code == 400


async def test_needs_a_token(api, fresh_db):
    assert (await api.get("/api/expenses/export.xlsx")).status_code == 401
