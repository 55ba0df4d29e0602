"""GET /api/expenses/export.csv on the real stack: RFC 4180 CSV that Python's csv reads back
exactly, formula injection neutralised, the list's filters and order, pages streamed."""

from __future__ import annotations

import csv
import io

import pytest

from tests.helpers import sql

HEADER = ["id", "date", "user", "category", "payment_method", "amount", "description", "created_at"]
TRICKY = [
    'He said "hello", then left',
    "line one\nline two\r\nline three",
    "comma, separated, values",
    "Café ☕ — naïve 日本語 🎉",
    "  spaces around  ",
    "semi;colon|pipe",
    'trailing quote"',
    "",
]
FORMULAS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", '=HYPERLINK("http://x","y")']


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def insert(dsn: str, rows: list[tuple]) -> None:
    """rows of (user_id, category_id, payment_method_id, amount, description, date)."""
    with sql(dsn) as cur:
        cur.executemany(
            "insert into public.expenses (user_id, category_id, payment_method_id, "
            "amount, description, date) values (%s,%s,%s,%s,%s,%s)",
            rows,
        )


async def export(api, headers, **params):
    response = await api.get("/api/expenses/export.csv", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def test_every_field_reads_back_exactly(api, fresh_db, auth_headers):
    insert(
        fresh_db,
        [(1, 1, 4, "10.50", text, "2025-01-15") for text in TRICKY]
        + [(2, 3, None, "400.00", None, "2025-01-14")],
    )
    response = await export(api, auth_headers)
    listed = (await api.get("/api/expenses", headers=auth_headers)).json()
    rows = parse(response.text)
    assert rows[0] == HEADER
    assert len(rows) == 1 + len(listed)
    for row, item in zip(rows[1:], listed):  # same rows, same order as the list
        assert row == [
            str(item["id"]),
            item["date"],
            item["user_name"],
            item["category"],
            item["payment_method"] or "",
            f"{item['amount']:g}",
            item["description"] or "",
            item["created_at"],
        ]
    assert [r[6] for r in rows[1 : len(TRICKY) + 1]] == list(reversed(TRICKY))


async def test_rfc4180_framing(api, fresh_db, auth_headers):
    insert(fresh_db, [(1, 1, 1, "1.00", 'a "quoted", text', "2025-01-01")])
    response = await export(api, auth_headers)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="expenses.csv"'
    lines = response.content.split(b"\r\n")
    assert lines[0] == b"id,date,user,category,payment_method,amount,description,created_at"
    assert lines[1].split(b",")[6:8] == [b'"a ""quoted""', b' text"']
    assert lines[-1] == b""  # every record ends with CRLF


@pytest.mark.parametrize("text", FORMULAS)
async def test_formula_cells_are_neutralised(api, fresh_db, auth_headers, text):
    insert(fresh_db, [(1, 1, 1, "1.00", text, "2025-01-01")])
    rows = parse((await export(api, auth_headers)).text)
    assert rows[1][6] == "'" + text


async def test_names_are_neutralised_too(api, fresh_db, auth_headers):
    with sql(fresh_db) as cur:
        cur.execute("update public.categories set name = '=cmd|calc' where id = 1")
    insert(fresh_db, [(1, 1, 1, "1.00", "x", "2025-01-01")])
    rows = parse((await export(api, auth_headers)).text)
    assert rows[1][3] == "'=cmd|calc"


async def test_amounts_render_like_the_list(api, fresh_db, auth_headers):
    insert(
        fresh_db,
        [
            (1, 1, 1, amount, "x", "2025-01-01")
            for amount in ("400.00", "120.50", "0.01", "9999999999.99")
        ],
    )
    rows = parse((await export(api, auth_headers)).text)
    assert sorted(r[5] for r in rows[1:]) == sorted(["400", "120.5", "0.01", "9999999999.99"])


@pytest.mark.parametrize(
    "params",
    [
        {"user_id": 2},
        {"category_id": 3},
        {"date_from": "2025-01-10"},
        {"date_to": "2025-01-10"},
        {"user_id": 1, "category_id": 1, "date_from": "2025-01-01", "date_to": "2025-01-31"},
        {"user_id": 99},
    ],
)
async def test_filters_match_the_list(api, fresh_db, auth_headers, params):
    insert(
        fresh_db,
        [
            (u, c, 1, "5.00", f"{u}-{c}-{d}", f"2025-01-{d:02d}")
            for u in (1, 2)
            for c in (1, 3)
            for d in (5, 10, 20)
        ],
    )
    rows = parse((await export(api, auth_headers, **params)).text)
    listed = (await api.get("/api/expenses", params=params, headers=auth_headers)).json()
    assert [int(r[0]) for r in rows[1:]] == [e["id"] for e in listed]


async def test_pages_join_seamlessly_across_equal_dates(api, fresh_db, auth_headers, monkeypatch):
    """Keyset paging on (date, id): with tiny pages every row comes once, in order."""
    import routers.expenses

    monkeypatch.setattr(routers.expenses, "EXPORT_PAGE_ROWS", 4)
    insert(fresh_db, [(1, 1, 1, "1.00", f"r{i}", f"2025-01-{1 + i % 3:02d}") for i in range(23)])
    rows = parse((await export(api, auth_headers)).text)
    listed = (await api.get("/api/expenses", headers=auth_headers)).json()
    assert [int(r[0]) for r in rows[1:]] == [e["id"] for e in listed]
    assert len(rows) == 24


async def test_empty_export_is_just_the_header(api, fresh_db, auth_headers):
    response = await export(api, auth_headers)
    assert (
        response.content
        == b"id,date,user,category,payment_method,amount,description,created_at\r\n"
    )


async def test_export_needs_a_valid_session(api, fresh_db, auth_headers):
    assert (await api.get("/api/expenses/export.csv")).status_code == 401
    logout = await api.post("/api/auth/logout", headers=auth_headers)
    assert logout.status_code == 200
    api.cookies.clear()
    response = await api.get("/api/expenses/export.csv", headers=auth_headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}
