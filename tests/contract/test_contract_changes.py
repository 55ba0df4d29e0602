"""Golden responses of the endpoints issue 12 adds (GET/PUT/DELETE /api/expenses/{id} and
the CSV export), on the fixed contract dataset.

Each case's status, body and contract headers (ETag, Content-Type, Content-Disposition) are
compared EXACTLY with tests/contract/golden/changes/<case>.json (a directory of its own: the
legacy goldens stay as they are). Regenerate after an intended change, then review by hand:
    UPDATE_GOLDEN=1 ./scripts/dev test tests/contract/test_contract_changes.py
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_contract import login
from tests.helpers import load_contract_dataset

GOLDEN = Path(__file__).parent / "golden" / "changes"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
HEADERS = ("etag", "content-type", "content-disposition")
STALE = '"00000000000000000000000000000000"'
# Expense 1 is Alok's (the logged-in user); 15 is Amol's.


@dataclass
class Case:
    name: str
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: bool = True
    if_match_current: bool = False  # send the expense's current ETag as If-Match

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


CASES = [
    Case("get_expense", "GET", "/api/expenses/1"),
    Case("get_expense_of_another_member", "GET", "/api/expenses/15"),
    Case("get_expense_unknown", "GET", "/api/expenses/999"),
    Case("get_expense_id_not_a_number", "GET", "/api/expenses/abc"),
    Case("get_expense_no_token", "GET", "/api/expenses/1", auth=False),
    Case("update_expense_amount", "PUT", "/api/expenses/1", body={"amount": 2100.5}),
    Case(
        "update_expense_move_user_month_category",
        "PUT",
        "/api/expenses/1",
        body={"user_id": 2, "date": "2024-12-31", "category_id": 5},
    ),
    Case(
        "update_expense_clear_optional_fields",
        "PUT",
        "/api/expenses/1",
        body={"description": None, "payment_method_id": None},
    ),
    Case(
        "update_expense_with_current_if_match",
        "PUT",
        "/api/expenses/1",
        body={"description": "Electricity (corrected)"},
        if_match_current=True,
    ),
    Case(
        "update_expense_stale_if_match",
        "PUT",
        "/api/expenses/1",
        body={"amount": 1},
        headers={"If-Match": STALE},
    ),
    Case("update_expense_of_another_member", "PUT", "/api/expenses/15", body={"amount": 1}),
    Case("update_expense_unknown", "PUT", "/api/expenses/999", body={"amount": 1}),
    Case("update_expense_empty_body", "PUT", "/api/expenses/1", body={}),
    Case("update_expense_zero_amount", "PUT", "/api/expenses/1", body={"amount": 0}),
    Case("update_expense_null_amount", "PUT", "/api/expenses/1", body={"amount": None}),
    Case("update_expense_unknown_category", "PUT", "/api/expenses/1", body={"category_id": 99}),
    Case("update_expense_impossible_date", "PUT", "/api/expenses/1", body={"date": "2025-02-30"}),
    Case("update_expense_no_token", "PUT", "/api/expenses/1", body={"amount": 1}, auth=False),
    Case("delete_expense", "DELETE", "/api/expenses/1"),
    Case(
        "delete_expense_with_current_if_match", "DELETE", "/api/expenses/1", if_match_current=True
    ),
    Case("delete_expense_stale_if_match", "DELETE", "/api/expenses/1", headers={"If-Match": STALE}),
    Case("delete_expense_of_another_member", "DELETE", "/api/expenses/15"),
    Case("delete_expense_unknown", "DELETE", "/api/expenses/999"),
    Case("delete_expense_no_token", "DELETE", "/api/expenses/1", auth=False),
    Case("export_all", "GET", "/api/expenses/export.csv"),
    Case(
        "export_user_category_period",
        "GET",
        "/api/expenses/export.csv",
        params={"user_id": 1, "category_id": 3, "date_from": "2025-01-01", "date_to": "2025-01-31"},
    ),
    Case("export_user_without_spending", "GET", "/api/expenses/export.csv", params={"user_id": 5}),
    Case("export_bad_date", "GET", "/api/expenses/export.csv", params={"date_from": "2025-13-01"}),
    Case(
        "export_date_from_after_date_to",
        "GET",
        "/api/expenses/export.csv",
        params={"date_from": "2025-02-01", "date_to": "2025-01-01"},
    ),
    Case("export_no_token", "GET", "/api/expenses/export.csv", auth=False),
]
assert len({c.name for c in CASES}) == len(CASES)


def render(case: Case, status: int, headers: dict[str, str], body: Any) -> str:
    return (
        json.dumps(
            {"request": case.describe(), "status": status, "headers": headers, "body": body},
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_response_matches_golden(api, dsn, case: Case):
    load_contract_dataset(dsn, api)
    try:
        token = await login(api)
        headers = {"Authorization": f"Bearer {token}"} if case.auth else {}
        if case.if_match_current:
            current = await api.get(case.path, headers=headers)
            headers["If-Match"] = current.headers["etag"]
        headers.update(case.headers)
        api.cookies.clear()
        kwargs: dict[str, Any] = {"params": case.params, "headers": headers}
        if case.body is not None:
            kwargs["json"] = case.body
        response = await api.request(case.method, case.path, **kwargs)
    finally:
        load_contract_dataset(dsn, api)
    is_csv = response.headers.get("content-type", "").startswith("text/csv")
    body = response.text if is_csv else response.json()
    actual = render(
        case,
        response.status_code,
        {h: response.headers[h] for h in HEADERS if h in response.headers},
        body,
    )
    path = GOLDEN / f"{case.name}.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"no golden {path.name}; run with UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(), f"{case.describe()} differs from changes/{path.name}"


def test_every_golden_file_belongs_to_a_case():
    names = {c.name for c in CASES}
    assert sorted(p.stem for p in GOLDEN.glob("*.json") if p.stem not in names) == []
