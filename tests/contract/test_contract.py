"""Golden responses of every endpoint of the contract, on the fixed dataset.

Each case sends one request to the app (real stack) and compares status and body with
tests/contract/golden/<case>.json EXACTLY: same keys in the same order, same types (400 is
not 400.0), same list order. Volatile values are normalised first with contract_diff's
rules (token, created_at, ids of rows the case created; a defaulted `date` of today).

Regenerate after an intended contract change, then review every changed file by hand
against docs/CONTRACT.md:  UPDATE_GOLDEN=1 ./scripts/dev test tests/contract
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jsondiff import diff_json
from scripts.contract_diff import normalise
from tests.helpers import load_contract_dataset

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
TODAY = "<today>"
STRONG = "Str0ng!Passw0rd"


@dataclass
class Case:
    name: str
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    content: str | None = None  # a raw body instead of JSON
    auth: str = "user"  # user | none | invalid | fresh (own login) | revoked
    created: list[str] = field(default_factory=list)
    writes: bool = False

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


def get(name, path, auth="user", **params) -> Case:
    return Case(name, "GET", path, params, auth=auth)


def post(name, path, body=None, auth="user", created=(), content=None) -> Case:
    return Case(
        name,
        "POST",
        path,
        body=body,
        content=content,
        auth=auth,
        created=list(created),
        writes=True,
    )


EXPENSE = {
    "amount": 123.45,
    "category_id": 5,
    "payment_method_id": 4,
    "description": "Pharmacy",
    "date": "2025-02-14",
}
CASES = [
    # --- auth ---------------------------------------------------------------------------
    post(
        "login_success",
        "/api/auth/login",
        {"email": "alok@example.com", "password": "password123"},
        auth="none",
    ),
    post(
        "login_with_username",
        "/api/auth/login",
        {"email": "Amol", "password": "password123"},
        auth="none",
    ),
    post(
        "login_user_without_email",
        "/api/auth/login",
        {"email": "Guest_user", "password": "password123"},
        auth="none",
    ),
    post(
        "login_wrong_password",
        "/api/auth/login",
        {"email": "alok@example.com", "password": "wrong-password"},
        auth="none",
    ),
    post(
        "login_unknown_user",
        "/api/auth/login",
        {"email": "nobody@example.com", "password": "password123"},
        auth="none",
    ),
    post("login_missing_password", "/api/auth/login", {"email": "alok@example.com"}, auth="none"),
    post("login_malformed_json", "/api/auth/login", content="{", auth="none"),
    post(
        "register_success",
        "/api/auth/register",
        {"username": "new_member", "password": STRONG, "email": "new_member@example.com"},
        auth="none",
        created=["user.id"],
    ),
    post(
        "register_without_email",
        "/api/auth/register",
        {"username": "no_email_member", "password": STRONG},
        auth="none",
        created=["user.id"],
    ),
    post(
        "register_duplicate_username",
        "/api/auth/register",
        {"username": "Alok", "password": STRONG},
        auth="none",
    ),
    post(
        "register_duplicate_email",
        "/api/auth/register",
        {"username": "another_alok", "password": STRONG, "email": "alok@example.com"},
        auth="none",
    ),
    post(
        "register_short_username",
        "/api/auth/register",
        {"username": "ab", "password": STRONG},
        auth="none",
    ),
    post(
        "register_username_with_space",
        "/api/auth/register",
        {"username": "new member", "password": STRONG},
        auth="none",
    ),
    post(
        "register_weak_password",
        "/api/auth/register",
        {"username": "new_member", "password": "password123"},
        auth="none",
    ),
    post(
        "register_short_password",
        "/api/auth/register",
        {"username": "new_member", "password": "S0rt!"},
        auth="none",
    ),
    post(
        "register_invalid_email",
        "/api/auth/register",
        {"username": "new_member", "password": STRONG, "email": "not-an-email"},
        auth="none",
    ),
    post("register_missing_username", "/api/auth/register", {"password": STRONG}, auth="none"),
    get("me", "/api/auth/me"),
    get("me_no_token", "/api/auth/me", auth="none"),
    get("me_invalid_token", "/api/auth/me", auth="invalid"),
    get("me_after_logout", "/api/auth/me", auth="revoked"),
    post("logout", "/api/auth/logout", auth="fresh"),
    post("logout_no_token", "/api/auth/logout", auth="none"),
    # --- reference data -----------------------------------------------------------------
    get("categories", "/api/categories", auth="none"),
    get("payment_methods", "/api/payment-methods", auth="none"),
    # --- expenses: list -----------------------------------------------------------------
    get("expenses_all", "/api/expenses"),
    get("expenses_user_1", "/api/expenses", user_id=1),
    get("expenses_user_4", "/api/expenses", user_id=4),
    get("expenses_user_without_spending", "/api/expenses", user_id=5),
    get("expenses_unknown_user", "/api/expenses", user_id=99),
    get("expenses_category_5", "/api/expenses", category_id=5),
    get("expenses_date_from", "/api/expenses", date_from="2025-01-15"),
    get("expenses_date_to", "/api/expenses", date_to="2024-02-29"),
    get(
        "expenses_year_2024_inclusive",
        "/api/expenses",
        date_from="2024-01-01",
        date_to="2024-12-31",
    ),
    get("expenses_single_day", "/api/expenses", date_from="2025-01-10", date_to="2025-01-10"),
    get(
        "expenses_user_category_period",
        "/api/expenses",
        user_id=1,
        category_id=3,
        date_from="2025-01-01",
        date_to="2025-01-31",
    ),
    get("expenses_limit", "/api/expenses", limit=3),
    get("expenses_limit_offset", "/api/expenses", limit=3, offset=3),
    get("expenses_user_limit_offset", "/api/expenses", user_id=2, limit=2, offset=1),
    get("expenses_offset_past_end", "/api/expenses", limit=5, offset=100),
    get("expenses_bad_date", "/api/expenses", date_from="2025-13-01"),
    get("expenses_date_not_iso", "/api/expenses", date_to="01/31/2025"),
    get(
        "expenses_date_from_after_date_to",
        "/api/expenses",
        date_from="2025-02-01",
        date_to="2025-01-01",
    ),
    get("expenses_user_id_not_a_number", "/api/expenses", user_id="abc"),
    get("expenses_limit_0", "/api/expenses", limit=0),
    get("expenses_negative_offset", "/api/expenses", offset=-1),
    get("expenses_no_token", "/api/expenses", auth="none"),
    get("expenses_invalid_token", "/api/expenses", auth="invalid"),
    # --- expenses: create ---------------------------------------------------------------
    post("create_expense_decimal_amount", "/api/expenses", EXPENSE, created=["id", "expense.id"]),
    post(
        "create_expense_integer_amount_for_other_user",
        "/api/expenses",
        {"amount": 400, "category_id": 1, "user_id": 2, "date": "2025-02-01"},
        created=["id", "expense.id"],
    ),
    post(
        "create_expense_default_date",
        "/api/expenses",
        {"amount": 99.9, "category_id": 3},
        created=["id", "expense.id"],
    ),
    post("create_expense_missing_amount", "/api/expenses", {"category_id": 1}),
    post("create_expense_zero_amount", "/api/expenses", {**EXPENSE, "amount": 0}),
    post("create_expense_negative_amount", "/api/expenses", {**EXPENSE, "amount": -5}),
    post("create_expense_string_amount", "/api/expenses", {**EXPENSE, "amount": "12"}),
    post("create_expense_three_decimals", "/api/expenses", {**EXPENSE, "amount": 1.234}),
    post("create_expense_missing_category", "/api/expenses", {"amount": 10}),
    post("create_expense_unknown_category", "/api/expenses", {**EXPENSE, "category_id": 99}),
    post(
        "create_expense_unknown_payment_method",
        "/api/expenses",
        {**EXPENSE, "payment_method_id": 99},
    ),
    post("create_expense_unknown_user", "/api/expenses", {**EXPENSE, "user_id": 99}),
    post("create_expense_long_description", "/api/expenses", {**EXPENSE, "description": "x" * 501}),
    post("create_expense_impossible_date", "/api/expenses", {**EXPENSE, "date": "2025-02-30"}),
    post("create_expense_malformed_json", "/api/expenses", content='{"amount": 10,'),
    post("create_expense_no_token", "/api/expenses", EXPENSE, auth="none"),
    # --- dashboards ---------------------------------------------------------------------
    get("dashboard_users", "/api/dashboard/users"),
    get("dashboard_users_no_token", "/api/dashboard/users", auth="none"),
    get("monthly_alok_2025_01_seven_categories", "/api/dashboard/1/monthly", year=2025, month=1),
    get("monthly_alok_2024_02_half_rounds_up", "/api/dashboard/1/monthly", year=2024, month=2),
    get("monthly_alok_2024_12_single_category", "/api/dashboard/1/monthly", year=2024, month=12),
    get("monthly_alok_2025_03", "/api/dashboard/1/monthly", year=2025, month=3),
    get("monthly_amol_2025_01_tie", "/api/dashboard/2/monthly", year=2025, month=1),
    get("monthly_atul_2025_01_thirds", "/api/dashboard/3/monthly", year=2025, month=1),
    get("monthly_rashmi_2025_01_empty", "/api/dashboard/4/monthly", year=2025, month=1),
    get("monthly_guest_2024_06_empty", "/api/dashboard/5/monthly", year=2024, month=6),
    get("yearly_alok_2025", "/api/dashboard/1/yearly", year=2025),
    get("yearly_alok_2024", "/api/dashboard/1/yearly", year=2024),
    get("yearly_alok_2023", "/api/dashboard/1/yearly", year=2023),
    get("yearly_amol_2024_integer_total", "/api/dashboard/2/yearly", year=2024),
    get("yearly_atul_2025", "/api/dashboard/3/yearly", year=2025),
    get("yearly_rashmi_2024", "/api/dashboard/4/yearly", year=2024),
    get("yearly_guest_2025_empty", "/api/dashboard/5/yearly", year=2025),
    get("monthly_month_13", "/api/dashboard/1/monthly", year=2025, month=13),
    get("monthly_month_0", "/api/dashboard/1/monthly", year=2025, month=0),
    get("monthly_month_not_a_number", "/api/dashboard/1/monthly", year=2025, month="jan"),
    get("monthly_year_1800", "/api/dashboard/1/monthly", year=1800, month=1),
    get("yearly_year_3000", "/api/dashboard/1/yearly", year=3000),
    get("monthly_unknown_user", "/api/dashboard/99/monthly", year=2025, month=1),
    get("yearly_unknown_user", "/api/dashboard/99/yearly", year=2025),
    get("monthly_user_id_not_a_number", "/api/dashboard/abc/monthly", year=2025, month=1),
    get("monthly_no_token", "/api/dashboard/1/monthly", auth="none", year=2025, month=1),
    get("yearly_invalid_token", "/api/dashboard/1/yearly", auth="invalid", year=2025),
    # --- anything else ------------------------------------------------------------------
    get("unknown_route", "/api/nothing-here", auth="none"),
]
assert len({c.name for c in CASES}) == len(CASES)


async def login(api, email: str = "alok@example.com") -> str:
    response = await api.post("/api/auth/login", json={"email": email, "password": "password123"})
    assert response.status_code == 200, response.text
    api.cookies.clear()  # the login cookie must not authenticate "no token" requests
    return response.json()["token"]


async def send(api, case: Case, token: str) -> tuple[int, Any]:
    headers = {}
    if case.auth == "revoked":
        token = await login(api)
        assert (
            await api.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
    if case.auth == "fresh":
        token = await login(api)
    if case.auth in ("user", "revoked", "fresh"):
        headers["Authorization"] = f"Bearer {token}"
    elif case.auth == "invalid":
        headers["Authorization"] = "Bearer invalid.token.value"
    kwargs: dict[str, Any] = {"params": case.params, "headers": headers}
    if case.content is not None:
        kwargs["content"] = case.content
        headers["Content-Type"] = "application/json"
    elif case.body is not None:
        kwargs["json"] = case.body
    api.cookies.clear()
    response = await api.request(case.method, case.path, **kwargs)
    api.cookies.clear()
    body = normalise(response.json(), case.created)
    expense = body.get("expense") if isinstance(body, dict) else None
    if (
        isinstance(expense, dict)
        and case.body
        and "date" not in case.body
        and expense.get("date") in around_today()
    ):
        expense["date"] = TODAY
    return response.status_code, body


def around_today() -> set[str]:
    """The database's current_date may be a day off Python's near midnight (time zones)."""
    today = dt.date.today()
    return {(today + dt.timedelta(days=d)).isoformat() for d in (-1, 0, 1)}


def render(status: int, body: Any, case: Case) -> str:
    """The golden file's text; also what the comparison runs on (so key order and int vs
    float count)."""
    return (
        json.dumps(
            {"request": case.describe(), "status": status, "body": body},
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


@pytest.fixture(scope="module")
async def token(api, contract_db) -> str:
    return await login(api)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_response_matches_golden(api, dsn, contract_db, token, case: Case):
    if case.writes:
        load_contract_dataset(dsn, api)
    try:
        status, body = await send(api, case, token if case.auth != "revoked" else "")
    finally:
        if case.writes:
            load_contract_dataset(dsn, api)
    path = GOLDEN / f"{case.name}.json"
    actual = render(status, body, case)
    if UPDATE:
        path.write_text(actual)
    assert path.exists(), f"no golden {path.name}; run with UPDATE_GOLDEN=1 and review it"
    expected = path.read_text()
    if actual != expected:
        golden = json.loads(expected)
        details = (
            [f"status: golden {golden['status']}, actual {status}"]
            if golden["status"] != status
            else []
        )
        details += [
            d.describe("golden", "actual") for d in diff_json(golden["body"], body, key_order=True)
        ]
        pytest.fail(
            f"{case.describe()} differs from {path.name}:\n  "
            + "\n  ".join(details or ["formatting differs (request line?)"])
        )


def test_every_golden_file_belongs_to_a_case():
    names = {c.name for c in CASES}
    stale = sorted(p.stem for p in GOLDEN.glob("*.json") if p.stem not in names)
    assert not stale, f"golden files without a case (delete them): {stale}"
