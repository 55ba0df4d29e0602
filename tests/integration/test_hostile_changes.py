"""Hostile input on PUT and DELETE /api/expenses/{id} and GET /api/expenses/export.csv.

Table-driven like test_hostile_input: every case must be a 4xx `{"error": ...}` (never 5xx,
never 422) and leave the data exactly as it was — every expense row, the dashboard totals,
and the audit log (no audit row for a refused request).
"""

from __future__ import annotations

import pytest

from tests.helpers import data_state, sql, token_for
from tests.integration.test_hostile_input import (
    BIG,
    DROP,
    FILTER,
    NONE_HEADER,
    Case,
    assert_rejected,
    nested,
    token,
)

ATUL_ID = 3
STALE = '"00000000000000000000000000000000"'


def auth(value: str) -> dict[str, str]:
    return {"Authorization": value}


def bearer(value: str) -> dict[str, str]:
    return auth(f"Bearer {value}")


def credentials_cases() -> list[tuple[str, dict[str, str], int]]:
    """(id, headers replacing the caller's, status) shared by the three tables."""
    header, payload, _ = token().split(".")
    return [
        ("no-token", {"Authorization": ""}, 401),
        ("garbage-token", bearer("garbage"), 401),
        ("alg-none", bearer(f"{NONE_HEADER}.{payload}."), 401),
        ("signature-stripped", bearer(f"{header}.{payload}."), 401),
        ("expired", bearer(token(exp=1, iat=0)), 401),
        ("hs512", bearer(token(algorithm="HS512")), 401),
        ("deleted-user", bearer(token(userId=4242)), 401),
        ("other-member", bearer(token(userId=ATUL_ID, name="Atul")), 403),
    ]


PUT_CASES = [
    Case("amount-zero", json={"amount": 0}),
    Case("amount-negative", json={"amount": -5}),
    Case("amount-string", json={"amount": "12"}),
    Case("amount-null", json={"amount": None}),
    Case("amount-bool", json={"amount": True}),
    Case("amount-3-decimals", json={"amount": 1.234}),
    Case("amount-10e30", json={"amount": 10**30}),
    Case("amount-1e400", raw=b'{"amount": 1e400}'),
    Case("amount-nan", raw=b'{"amount": NaN}'),
    Case("category-zero", json={"category_id": 0}),
    Case("category-null", json={"category_id": None}),
    Case("category-unknown", json={"category_id": 999}),
    Case("category-filter-syntax", json={"category_id": FILTER}),
    Case("payment-unknown", json={"payment_method_id": 77}),
    Case("payment-star", json={"payment_method_id": "*"}),
    Case("user-unknown", json={"user_id": 999}),
    Case("user-null", json={"user_id": None}),
    Case("user-sql", json={"user_id": DROP}),
    Case("date-null", json={"date": None}),
    Case("date-feb-30", json={"date": "2025-02-30"}),
    Case("date-timestamp", json={"date": 1736899200}),
    Case("description-501", json={"description": "d" * 501}),
    Case("description-nul-byte", json={"description": "a\u0000b"}),
    Case("description-object", json={"description": {"$ne": None}}),
    Case("empty-object", json={}),
    Case("only-unknown-fields", json={"created_by": ATUL_ID, "id": 1, "created_at": "2020-01-01"}),
    Case("json-null", raw=b"null"),
    Case("json-array", json=[{"amount": 5}]),
    Case("malformed-json", raw=b'{"amount": 5,'),
    Case("empty-body", raw=b""),
    Case("deeply-nested-json", raw=nested(5000)),
    Case("too-large", json={"description": "x" * BIG}, status=413),
    Case("text-plain", raw=b'{"amount": 5}', headers={"Content-Type": "text/plain"}, status=415),
    Case("stale-if-match", json={"amount": 5}, headers={"If-Match": STALE}, status=412),
    Case("weak-if-match", json={"amount": 5}, headers={"If-Match": "W/" + STALE}, status=412),
    Case("sql-if-match", json={"amount": 5}, headers={"If-Match": DROP}, status=412),
    Case("empty-if-match", json={"amount": 5}, headers={"If-Match": ""}),
    Case("33-tags-if-match", json={"amount": 5}, headers={"If-Match": ",".join([STALE] * 33)}),
]
DELETE_CASES = [
    Case("stale-if-match", headers={"If-Match": STALE}, status=412),
    Case("weak-if-match", headers={"If-Match": "W/" + STALE}, status=412),
    Case("unquoted-garbage-if-match", headers={"If-Match": "garbage"}, status=412),
    Case("filter-if-match", headers={"If-Match": FILTER}, status=412),
    Case("sql-if-match", headers={"If-Match": DROP}, status=412),
    Case("empty-if-match", headers={"If-Match": ""}),
    Case("commas-only-if-match", headers={"If-Match": " , , "}),
    Case("33-tags-if-match", headers={"If-Match": ",".join([STALE] * 33)}),
]
# (path suffix, status): ids the route must refuse before anything is deleted
BAD_IDS = [
    ("0", 400),
    ("-1", 400),
    ("abc", 400),
    ("1.5", 400),
    ("9007199254740992", 400),
    ("1,or(id.gt.0)", 400),
    ("%27%3B%20drop%20table%20expenses%3B--", 404),  # a percent-escape: no path (issue 24)
    ("424242", 404),
    ("%2A", 404),
]
EXPORT_CASES: list[tuple[str, dict]] = [
    ("user-abc", {"user_id": "abc"}),
    ("user-zero", {"user_id": 0}),
    ("user-negative", {"user_id": -1}),
    ("user-filter-syntax", {"user_id": FILTER}),
    ("user-sql", {"user_id": DROP}),
    ("user-2-pow-53", {"user_id": 2**53}),
    ("user-empty", {"user_id": ""}),
    ("category-fraction", {"category_id": 1.5}),
    ("category-star", {"category_id": "*"}),
    ("category-list", {"category_id": "[1]"}),
    ("date-from-month-13", {"date_from": "2025-13-01"}),
    ("date-from-us-format", {"date_from": "01/31/2025"}),
    ("date-to-feb-30", {"date_to": "2025-02-30"}),
    ("date-from-timestamp", {"date_from": "1736899200"}),
    ("date-to-with-time", {"date_to": "2025-01-01T00:00:00"}),
    ("date-to-filter-syntax", {"date_to": "2025-01-01,or(id.gt.0)"}),
    ("date-from-nul", {"date_from": "2025-01-01\x00"}),
    ("date-from-after-date-to", {"date_from": "2025-02-01", "date_to": "2025-01-01"}),
]


def put_table() -> list[Case]:
    cases = list(PUT_CASES)
    cases += [
        Case(f"creds-{name}", json={"amount": 5}, headers=headers, status=status)
        for name, headers, status in credentials_cases()
    ]
    return cases


def delete_table() -> list[tuple[str, Case]]:
    """(path id, case)"""
    cases = [("{id}", c) for c in DELETE_CASES]
    cases += [
        ("{id}", Case(f"creds-{name}", headers=headers, status=status))
        for name, headers, status in credentials_cases()
    ]
    cases += [(suffix, Case(f"id-{suffix}", status=status)) for suffix, status in BAD_IDS]
    return cases


def export_table() -> list[tuple[dict, Case]]:
    cases: list[tuple[dict, Case]] = [
        (dict(params), Case(f"query-{name}")) for name, params in EXPORT_CASES
    ]
    cases += [
        ({}, Case(f"creds-{name}", headers=headers, status=status))
        for name, headers, status in credentials_cases()
        if status == 401
    ]
    return cases


# --------------------------------------------------------------------------------------
@pytest.fixture
def owned(fresh_db) -> tuple[str, int]:
    """An expense of Alok's (plus one of Amol's) and the database they are in."""
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.expenses (user_id, category_id, payment_method_id, "
            "amount, description, date) values (1, 1, 1, 10, 'mine', '2025-01-15'), "
            "(2, 2, null, 20, 'theirs', '2025-02-01') returning id"
        )
        return fresh_db, cur.fetchone()[0]


def merged_headers(auth_headers: dict, case: Case, kwargs: dict) -> dict:
    headers = {**auth_headers, **kwargs["headers"]}
    if headers.get("Authorization") == "":
        headers.pop("Authorization")
    return headers


@pytest.mark.parametrize("case", put_table(), ids=lambda c: c.id)
async def test_put_rejects_hostile_input_and_changes_nothing(api, owned, auth_headers, case):
    dsn, expense_id = owned
    before = data_state(dsn)
    kwargs = case.request_kwargs()
    response = await api.put(
        f"/api/expenses/{expense_id}",
        **{**kwargs, "headers": merged_headers(auth_headers, case, kwargs)},
    )
    assert_rejected(response, case)
    assert data_state(dsn) == before


@pytest.mark.parametrize("path_id, case", delete_table(), ids=lambda c: getattr(c, "id", ""))
async def test_delete_rejects_hostile_input_and_deletes_nothing(
    api, owned, auth_headers, path_id, case
):
    dsn, expense_id = owned
    before = data_state(dsn)
    kwargs = case.request_kwargs()
    response = await api.delete(
        f"/api/expenses/{path_id.format(id=expense_id)}",
        headers=merged_headers(auth_headers, case, kwargs),
    )
    assert_rejected(response, case)
    assert data_state(dsn) == before


@pytest.mark.parametrize("params, case", export_table(), ids=lambda c: getattr(c, "id", ""))
async def test_export_rejects_hostile_input_with_a_json_error(
    api, owned, auth_headers, params, case
):
    dsn, _ = owned
    before = data_state(dsn)
    kwargs = case.request_kwargs()
    response = await api.get(
        "/api/expenses/export.csv",
        params=params,
        headers=merged_headers(auth_headers, case, kwargs),
    )
    assert_rejected(response, case)
    assert response.headers["content-type"].startswith("application/json")
    assert data_state(dsn) == before


def test_each_table_has_at_least_20_hostile_cases():
    assert min(len(put_table()), len(delete_table()), len(export_table())) >= 20


async def test_put_on_another_members_expense_with_valid_etag_is_still_403(api, owned):
    dsn, expense_id = owned
    atul = bearer(token_for(ATUL_ID, "Atul"))
    etag = (await api.get(f"/api/expenses/{expense_id}", headers=atul)).headers["etag"]
    before = data_state(dsn)
    response = await api.put(
        f"/api/expenses/{expense_id}", json={"amount": 1}, headers={**atul, "If-Match": etag}
    )
    assert response.status_code == 403
    assert response.json() == {"error": "You can only change your own expenses"}
    assert data_state(dsn) == before
