"""Issue 23: POST /api/expenses/import on the real stack — the export's columns, all or
nothing with every bad line listed, dry run, duplicates skipped, the size cap, and the
export -> import round trip into an emptied range reproducing every row exactly
(amounts, dates, unicode, formula-neutralised text restored)."""

from __future__ import annotations

import pytest

from tests.helpers import app_client, bearer, data_state, insert_expenses, sql, stack_settings

CSV = {"Content-Type": "text/csv"}
HEADER = "id,date,user,category,payment_method,amount,description,created_at\r\n"
# what a member may type that CSV, spreadsheets or the neutralisation could get wrong
TEXTS = [
    'He said "hello", then left',
    "line one\nline two\r\nline three",
    "comma, separated, values",
    "Café ☕ — naïve 日本語 🎉",
    "  spaces around  ",
    'trailing quote"',
    "'quoted like a spreadsheet",
    "''",
    "plain",
]
# every prefix the export neutralises (csv_cell): restored to what was typed
FORMULAS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", '=HYPERLINK("http://x","y")']
# the widened rule (csv_formula_trigger): fullwidth and small signs, after leading blanks or
# invisible characters; and values that only look neutralised must come back as they were
FORMULAS += ["\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20x", "\ufe661", " =1", "\u200b=1", "\u00a0+1"]
# ("'=x" itself is not here: the export writes it and "=x" alike, as `'=x`)
TEXTS_WIDE = ["' x", "'\u200bplain", " 'x", "'\uff1a"]
AMOUNTS = ["0.01", "9999999999.99", "400.00", "10.50", "1", "123456.78"]
DATES = ["2024-02-29", "1999-12-31", "2025-01-01", "2000-02-29"]


def rows_of(dsn: str, where: str = "true") -> list[tuple]:
    with sql(dsn) as cur:
        cur.execute(
            "select user_id, category_id, payment_method_id, amount::text, description, "
            f"date::text from public.expenses where {where} order by 1, 2, 3, 4, 5, 6"
        )
        return cur.fetchall()


async def import_csv(api, headers, text: str | bytes, **params):
    return await api.post(
        "/api/expenses/import", content=text, params=params, headers={**headers, **CSV}
    )


async def test_export_then_import_reproduces_every_row_exactly(api, fresh_db, auth_headers):
    with sql(fresh_db) as cur:  # a member whose name needs more than ASCII
        cur.execute(
            "insert into public.users (id, name, email, password_hash) "
            "values (9, 'Zoë_Ł', null, 'x')"
        )
    texts = TEXTS + TEXTS_WIDE + FORMULAS + [None]
    rows = [
        (
            1 + i % 4 if i % 5 else 9,
            1 + i % 4,
            None if i % 3 == 0 else 1 + i % 5,
            AMOUNTS[i % len(AMOUNTS)],
            text,
            DATES[i % len(DATES)],
        )
        for i, text in enumerate(texts * 2)
    ]
    insert_expenses(fresh_db, rows)
    insert_expenses(fresh_db, [(1, 1, 1, "5.00", "outside the range", "2025-06-01")])
    before = rows_of(fresh_db, "date <= '2025-01-01'")
    assert len(before) == len(rows)

    export = await api.get(
        "/api/expenses/export.csv", params={"date_to": "2025-01-01"}, headers=auth_headers
    )
    assert export.status_code == 200
    for prefix in ("'=1+1", "'+SUM", "'-2+3", "'@cmd", "'\tTAB", "'\rCR", "'\uff1d1", "' =1"):
        assert prefix in export.text  # the file really holds neutralised cells
    with sql(fresh_db) as cur:
        cur.execute("delete from public.expenses where date <= '2025-01-01'")

    response = await import_csv(api, auth_headers, export.content)
    assert response.status_code == 201, response.text
    assert response.json() == {"message": f"Imported {len(rows)} expenses", "imported": len(rows)}
    assert rows_of(fresh_db, "date <= '2025-01-01'") == before
    assert rows_of(fresh_db, "date > '2025-01-01'") == [
        (1, 1, 1, "5.00", "outside the range", "2025-06-01")
    ]
    with sql(fresh_db) as cur:  # recorded by the importing member, audited like any insert
        cur.execute(
            "select count(*) filter (where created_by = 1), count(*) from public.expenses "
            "where date <= '2025-01-01'"
        )
        assert cur.fetchone() == (len(rows), len(rows))
        cur.execute(
            "select count(*) from public.audit_log where action = 'expense.create' and actor_id = 1"
        )
        assert cur.fetchone()[0] == len(rows)
    # the dashboards' totals followed
    dashboard = await api.get(
        "/api/dashboard/1/monthly", params={"year": 2024, "month": 2}, headers=auth_headers
    )
    with sql(fresh_db) as cur:
        cur.execute(
            "select coalesce(sum(amount), 0) from public.expenses where user_id = 1 "
            "and date between '2024-02-01' and '2024-02-29'"
        )
        assert dashboard.json()["total_spent"] == float(cur.fetchone()[0])


async def test_names_or_ids_any_column_order_and_optional_columns(api, fresh_db, auth_headers):
    text = 'amount,category,user,date\n10,3,alok,2025-01-02\n20.5,Food,2,"2025-01-03"\n'
    response = await import_csv(api, auth_headers, text)
    assert response.status_code == 201, response.text
    assert rows_of(fresh_db) == [
        (1, 3, None, "10.00", None, "2025-01-02"),
        (2, 1, None, "20.50", None, "2025-01-03"),
    ]
    text = HEADER + ",2025-01-04,Atul,Utilities,4,7,x,\n,2025-01-04,3,3,UPI,8,,ignored\n"
    assert (await import_csv(api, auth_headers, text)).status_code == 201
    assert rows_of(fresh_db, "user_id = 3") == [
        (3, 3, 4, "7.00", "x", "2025-01-04"),
        (3, 3, 4, "8.00", None, "2025-01-04"),
    ]


async def test_every_bad_line_is_listed_and_nothing_is_written(api, fresh_db, auth_headers):
    insert_expenses(fresh_db, [(1, 1, 1, "5.00", "kept", "2025-01-01")])
    text = (
        HEADER
        + ",2025-01-01,Alok,Food,UPI,10,fine,\r\n"  # line 2: fine
        + ",2025-02-30,Alok,Food,UPI,10,x,\r\n"  # 3
        + ",2025-01-01,Nobody,Food,UPI,10,x,\r\n"  # 4
        + ",2025-01-01,Alok,Sweets,UPI,10,x,\r\n"  # 5
        + ',2025-01-01,Alok,Food,Cheque,10,"two\r\nlines",\r\n'  # 6 (and 7)
        + ",2025-01-01,Alok,Food,,-3,x,\r\n"  # 8
        + ",2025-01-01,Alok,Food,,1.234,x,\r\n"  # 9
        + ",2025-01-01,Alok,Food,,0,x,\r\n"  # 10
        + ",2025-01-01,Alok,Food,,10\r\n"  # 11
        + ",2025-01-01,Alok,Food,,10,"
        + "y" * 501
        + ",\r\n"  # 12
        + ",2201-01-01,Alok,Food,,10,x,\r\n"  # 13: beyond the years a dashboard shows
        + ',2025-01-01,Alok,Food,,10,"unterminated,\r\n'  # 14
    )
    before = data_state(fresh_db)
    response = await import_csv(api, auth_headers, text)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Nothing imported: 11 bad lines"
    assert [(line["line"], line["error"]) for line in body["lines"]] == [
        (3, "date must be a date in YYYY-MM-DD format: 2025-02-30"),
        (4, "unknown user: Nobody"),
        (5, "unknown category: Sweets"),
        (6, "unknown payment method: Cheque"),
        (8, "amount must be a number above 0 with at most 2 decimals: -3"),
        (9, "amount must be a number above 0 with at most 2 decimals: 1.234"),
        (10, "amount must be a number above 0 with at most 2 decimals: 0"),
        (11, "expected 8 fields, found 6"),
        (12, "description must be at most 500 characters"),
        (13, "date must be between 1900-01-01 and 2200-12-31: 2201-01-01"),
        (14, "malformed CSV record (unterminated or misplaced quote)"),
    ][: len(body["lines"])] or body
    assert len(body["lines"]) == 11
    assert data_state(fresh_db) == before
    # dry run of the same file: the same refusal
    assert (await import_csv(api, auth_headers, text, dry_run="true")).json() == body


@pytest.mark.parametrize(
    ("text", "content_type", "message"),
    [
        ("", "text/csv", "The CSV must start with a header line"),
        (HEADER, "text/csv", "The CSV holds no expenses"),
        (
            "date,user,amount\n2025-01-01,Alok,1\n",
            "text/csv",
            "The header must name the columns category",
        ),
        ("date,user,category,amount,colour\n", "text/csv", "The header may name only"),
        (
            HEADER + ",2025-01-01,Alok,Food,,1,x,\n",
            "application/json",
            "Content-Type must be text/csv",
        ),
        (
            b"date,user,category,amount\n2025-01-01,Al\xffok,Food,1\n",
            "text/csv",
            "The body must be UTF-8 text",
        ),
    ],
)
async def test_refused_files_write_nothing(
    api, fresh_db, auth_headers, text, content_type, message
):
    before = data_state(fresh_db)
    response = await api.post(
        "/api/expenses/import", content=text, headers={**auth_headers, "Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert data_state(fresh_db) == before


async def test_dry_run_counts_and_writes_nothing(api, fresh_db, auth_headers):
    before = data_state(fresh_db)
    text = HEADER + ",2025-01-01,Alok,Food,,1,x,\n,2025-01-02,Amol,Food,,2,y,\n"
    response = await import_csv(api, auth_headers, text, dry_run="true")
    assert response.status_code == 200
    assert response.json() == {
        "message": "Dry run: 2 expenses would be imported, nothing written",
        "would_import": 2,
    }
    assert data_state(fresh_db) == before


async def test_skip_duplicates(api, fresh_db, auth_headers):
    insert_expenses(
        fresh_db,
        [(1, 1, None, "1.00", None, "2025-01-01"), (2, 1, 4, "2.00", "y", "2025-01-02")],
    )
    text = (
        HEADER
        + ",2025-01-01,Alok,Food,,1,,\n"  # equal to an existing row (null description)
        + ",2025-01-02,Amol,Food,UPI,2.00,y,\n"  # equal
        + ",2025-01-02,Amol,Food,UPI,2.00,z,\n"  # another description: new
    )
    dry = await import_csv(api, auth_headers, text, dry_run="true", skip_duplicates="true")
    assert dry.json()["would_import"] == 1
    response = await import_csv(api, auth_headers, text, skip_duplicates="true")
    assert response.status_code == 201
    assert response.json() == {
        "message": "Imported 1 expense (2 duplicates skipped)",
        "imported": 1,
    }
    again = await import_csv(api, auth_headers, text, skip_duplicates="true")
    assert again.json()["imported"] == 0
    without = await import_csv(api, auth_headers, text)
    assert without.json()["imported"] == 3
    assert len(rows_of(fresh_db)) == 2 + 1 + 3


async def test_the_size_cap_refuses_a_larger_file_and_writes_nothing(fresh_db):
    before = data_state(fresh_db)
    line = ",2025-01-01,Alok,Food,,1,x,\n"
    text = HEADER + line * (4096 // len(line))
    async with app_client(stack_settings(import_max_bytes=2048)) as client:
        headers = {**bearer(), **CSV}
        response = await client.post("/api/expenses/import", content=text, headers=headers)
        assert response.status_code == 413
        assert response.json() == {"error": "Request body too large"}

        async def chunked():  # no Content-Length: counted as it streams in
            yield HEADER.encode()
            for _ in range(4096 // len(line)):
                yield line.encode()

        response = await client.post("/api/expenses/import", content=chunked(), headers=headers)
        assert response.status_code == 413, response.text
        small = await client.post("/api/expenses/import", content=HEADER + line, headers=headers)
        assert small.status_code == 201
    with sql(fresh_db) as cur:
        cur.execute("select count(*) from public.expenses")
        assert cur.fetchone()[0] == 1
    assert before != data_state(fresh_db)


async def test_import_needs_a_token(api, fresh_db):
    response = await api.post("/api/expenses/import", content=HEADER, headers=CSV)
    assert response.status_code == 401
