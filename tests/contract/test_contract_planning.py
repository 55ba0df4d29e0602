"""Golden responses of the endpoints issue 23 adds (budgets; search on the list and the
export; import; recurring expenses), on the fixed contract dataset: status, body and
contract headers compared EXACTLY with tests/contract/golden/planning/<case>.json.
Regenerate after an intended change, then review by hand:
    UPDATE_GOLDEN=1 ./scripts/dev test tests/contract/test_contract_planning.py
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_contract import login
from tests.contract.test_contract_changes import HEADERS, UPDATE, render
from tests.contract.test_contract_changes import Case as ChangesCase
from tests.helpers import load_contract_dataset

GOLDEN = Path(__file__).parent / "golden" / "planning"


@dataclass
class Case(ChangesCase):
    # requests sent (as the logged-in member) before the one compared
    before: list[tuple[str, str, Any]] = field(default_factory=list)
    csv: str | None = None  # a text/csv body instead of JSON
    as_user: str | None = None  # the compared request by another member (login email)


BUDGETS = [
    ("PUT", "/api/budgets", {"category_id": 5, "amount": 1000, "month": "2024-12"}),
    ("PUT", "/api/budgets", {"category_id": 1, "amount": 2500.5, "month": "2025-01"}),
    ("PUT", "/api/budgets", {"category_id": 2, "amount": 100, "month": "2025-01"}),
]

IMPORT = (
    "id,date,user,category,payment_method,amount,description,created_at\r\n"
    ',2025-03-01,Alok,Food,UPI,250.5,"Groceries, fruit",\r\n'
    ",2025-03-02,amol,3,,1200,'=1+1,\r\n"
)
IMPORT_BAD = (
    "date,user,category,amount\r\n"
    "2025-02-30,Alok,Food,10\r\n"
    "2025-03-01,Nobody,Food,10\r\n"
    "2025-03-01,Alok,Food,1.234\r\n"
    "2025-03-01,Alok,Food\r\n"
)

# a fixed past schedule (ended), so its goldens do not depend on today's date
RECURRING = {
    "amount": 15000,
    "category_id": 3,
    "payment_method_id": 4,
    "description": "Rent",
    "frequency": "monthly",
    "start_date": "2024-10-31",
    "end_date": "2025-02-28",
}

CASES = [
    Case(
        "put_budget",
        "PUT",
        "/api/budgets",
        body={"category_id": 5, "amount": 20000, "month": "2025-05"},
    ),
    Case(
        "put_budget_zero",
        "PUT",
        "/api/budgets",
        body={"category_id": 5, "amount": 0, "month": "2025-05"},
    ),
    Case(
        "put_budget_unknown_category",
        "PUT",
        "/api/budgets",
        body={"category_id": 99, "amount": 10, "month": "2025-05"},
    ),
    Case(
        "put_budget_bad_month",
        "PUT",
        "/api/budgets",
        body={"category_id": 1, "amount": 10, "month": "2025-13"},
    ),
    Case(
        "put_budget_no_token",
        "PUT",
        "/api/budgets",
        body={"category_id": 1, "amount": 10, "month": "2025-01"},
        auth=False,
    ),
    Case(
        "budgets_2025_01", "GET", "/api/budgets", params={"year": 2025, "month": 1}, before=BUDGETS
    ),
    Case("budgets_without_budgets", "GET", "/api/budgets", params={"year": 2025, "month": 1}),
    Case("budgets_month_13", "GET", "/api/budgets", params={"year": 2025, "month": 13}),
    Case("budgets_no_token", "GET", "/api/budgets", params={"year": 2025, "month": 1}, auth=False),
    Case("expenses_search", "GET", "/api/expenses", params={"q": "ELECTRIC"}),
    Case(
        "expenses_amount_range_payment_method",
        "GET",
        "/api/expenses",
        params={"min_amount": "100", "max_amount": "1500.50", "payment_method_id": 4},
    ),
    Case("expenses_bad_min_amount", "GET", "/api/expenses", params={"min_amount": "1.001"}),
    Case(
        "expenses_min_above_max",
        "GET",
        "/api/expenses",
        params={"min_amount": "10", "max_amount": "9"},
    ),
    Case("export_search", "GET", "/api/expenses/export.csv", params={"q": "food"}),
    Case(
        "export_xlsx_date_from_after_date_to",
        "GET",
        "/api/expenses/export.xlsx",
        params={"date_from": "2025-02-01", "date_to": "2025-01-01"},
    ),
    Case(
        "export_xlsx_bad_date",
        "GET",
        "/api/expenses/export.xlsx",
        params={"date_from": "2025-02-30"},
    ),
    Case("create_recurring", "POST", "/api/recurring", body=RECURRING),
    Case(
        "create_recurring_unknown_category",
        "POST",
        "/api/recurring",
        body={**RECURRING, "category_id": 99},
    ),
    Case("create_recurring_no_token", "POST", "/api/recurring", body=RECURRING, auth=False),
    Case("list_recurring", "GET", "/api/recurring", before=[("POST", "/api/recurring", RECURRING)]),
    Case("list_recurring_no_token", "GET", "/api/recurring", auth=False),
    Case(
        "update_recurring",
        "PUT",
        "/api/recurring/1",
        body={"amount": 16000, "description": "Rent (new flat)"},
        before=[("POST", "/api/recurring", RECURRING)],
    ),
    Case("update_recurring_unknown", "PUT", "/api/recurring/999", body={"amount": 1}),
    Case("update_recurring_nothing", "PUT", "/api/recurring/1", body={}),
    Case(
        "update_recurring_of_another_member",
        "PUT",
        "/api/recurring/1",
        body={"amount": 1},
        before=[("POST", "/api/recurring", RECURRING)],
        as_user="amol@example.com",
    ),
    Case(
        "delete_recurring",
        "DELETE",
        "/api/recurring/1",
        before=[("POST", "/api/recurring", RECURRING)],
    ),
    Case("delete_recurring_unknown", "DELETE", "/api/recurring/999"),
    Case(
        "delete_recurring_of_another_member",
        "DELETE",
        "/api/recurring/1",
        before=[("POST", "/api/recurring", RECURRING)],
        as_user="amol@example.com",
    ),
    Case("delete_recurring_id_not_a_number", "DELETE", "/api/recurring/abc"),
    Case("import", "POST", "/api/expenses/import", csv=IMPORT),
    Case("import_dry_run", "POST", "/api/expenses/import", params={"dry_run": "true"}, csv=IMPORT),
    Case(
        "import_skip_duplicates",
        "POST",
        "/api/expenses/import",
        params={"skip_duplicates": "true"},
        csv=IMPORT + "1,2025-01-05,Alok,Utilities,Credit Card,2000,Electricity bill,x\r\n",
    ),
    Case("import_bad_lines", "POST", "/api/expenses/import", csv=IMPORT_BAD),
    Case("import_no_header", "POST", "/api/expenses/import", csv=""),
    Case("import_no_token", "POST", "/api/expenses/import", csv=IMPORT, auth=False),
]
assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_response_matches_golden(api, dsn, case: Case):
    load_contract_dataset(dsn, api)
    try:
        token = await login(api)
        member = {"Authorization": f"Bearer {token}"}
        for method, url, body in case.before:
            done = await api.request(method, url, json=body, headers=member)
            assert done.status_code < 300, done.text
        if case.as_user:
            member = {"Authorization": f"Bearer {await login(api, case.as_user)}"}
        headers = dict(member) if case.auth else {}
        api.cookies.clear()
        kwargs: dict[str, Any] = {"params": case.params, "headers": headers}
        if case.body is not None:
            kwargs["json"] = case.body
        if case.csv is not None:
            kwargs["content"] = case.csv
            headers["Content-Type"] = "text/csv"
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
    assert actual == path.read_text(), f"{case.describe()} differs from planning/{path.name}"


def test_every_golden_file_belongs_to_a_case():
    names = {c.name for c in CASES}
    assert sorted(p.stem for p in GOLDEN.glob("*.json") if p.stem not in names) == []
