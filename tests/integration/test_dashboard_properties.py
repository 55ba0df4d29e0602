"""Dashboards agree with the expenses they summarise, on random expense sets (hypothesis).

Each example replaces every expense (SQL; the totals trigger keeps the dashboard table in
step), then checks one user's monthly and yearly dashboards against sums over
GET /api/expenses for the same user and period.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.contract import dataset
from tests.helpers import load_contract_dataset, sql

CATEGORY_NAMES = {cid: name for cid, name, _ in dataset.CATEGORIES}
USERS = [1, 2, 3]
YEARS = [2024, 2025]
MONTHS = [1, 2, 6, 12]  # few months, so one user-month collects several categories

amounts = st.one_of(
    st.sampled_from(["0.01", "33.33", "50.00", "100.00", "250.50"]),  # repeats -> ties
    st.integers(1, 2_000_000).map(lambda cents: f"{Decimal(cents) / 100:.2f}"),
)
dates = st.builds(
    lambda y, m, d: dt.date(y, m, min(d, calendar.monthrange(y, m)[1])),
    st.sampled_from(YEARS),
    st.sampled_from(MONTHS),
    st.integers(1, 31),
)
expense_rows = st.lists(
    st.tuples(st.sampled_from(USERS), st.sampled_from(sorted(CATEGORY_NAMES)), amounts, dates),
    max_size=80,
)
# Every category once in one month, with a tie: top_categories must be cut at 5.
ALL_CATEGORIES = [
    (1, cid, "50.00" if cid in (2, 4) else f"{cid}0.25", dt.date(2025, 1, cid))
    for cid in sorted(CATEGORY_NAMES)
]
periods = st.tuples(st.sampled_from(USERS), st.sampled_from(YEARS), st.integers(1, 12))


@pytest.fixture(scope="module")
def contract_db_empty(dsn, api) -> str:
    """The contract dataset's users and 7 categories (so top_categories gets cut at 5)."""
    return load_contract_dataset(dsn, api)


def replace_expenses(dsn: str, rows) -> None:
    with sql(dsn) as cur:
        cur.execute("delete from public.expenses")
        cur.executemany(
            "insert into public.expenses (user_id, category_id, amount, date) "
            "values (%s, %s, %s, %s)",
            rows,
        )


def as_decimal(value) -> Decimal:
    assert isinstance(value, (int, float)) and not isinstance(value, bool), value
    return Decimal(str(value))


def assert_json_number(value, expected: Decimal) -> None:
    """Integers stay integers (400, not 400.0), otherwise at most 2 decimals."""
    assert as_decimal(value) == expected, (value, expected)
    assert isinstance(value, int) == (expected == expected.to_integral_value()), value


def assert_breakdown(body: dict, sums: dict[str, Decimal]) -> None:
    breakdown, total = body["category_breakdown"], sum(sums.values(), Decimal(0))
    assert_json_number(body["total_spent"], total)
    assert [row["category"] for row in breakdown] == sorted(sums, key=lambda c: (-sums[c], c))
    for row in breakdown:
        assert_json_number(row["amount"], sums[row["category"]])
        expected = (sums[row["category"]] / total * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
        assert as_decimal(row["percentage"]) == expected, row
    if total:
        percentages = sum((as_decimal(r["percentage"]) for r in breakdown), Decimal(0))
        assert abs(percentages - 100) <= Decimal("0.5")
    else:
        assert breakdown == [] and body["top_categories"] == []
    assert body["top_categories"] == breakdown[:5]


async def listed(api, headers, user_id: int, first: dt.date, last: dt.date) -> list[dict]:
    response = await api.get(
        "/api/expenses",
        headers=headers,
        params={"user_id": user_id, "date_from": first.isoformat(), "date_to": last.isoformat()},
    )
    assert response.status_code == 200, response.text
    return response.json()


def category_sums(rows: list[dict]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        sums[row["category"]] += as_decimal(row["amount"])
    return dict(sums)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=expense_rows, period=periods, pick_from_data=st.booleans())
@example(rows=ALL_CATEGORIES, period=(1, 2025, 1), pick_from_data=True)
@example(rows=[], period=(2, 2024, 6), pick_from_data=False)
async def test_dashboards_agree_with_listed_expenses(
    api, dsn, contract_db_empty, auth_headers, rows, period, pick_from_data
):
    replace_expenses(dsn, rows)
    user_id, year, month = period
    if pick_from_data and rows:  # most examples look at a period that has spending
        user_id, _, _, day = rows[0]
        year, month = day.year, day.month

    response = await api.get(
        f"/api/dashboard/{user_id}/monthly",
        headers=auth_headers,
        params={"year": year, "month": month},
    )
    assert response.status_code == 200, response.text
    monthly = response.json()
    first = dt.date(year, month, 1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    assert monthly["period"] == {"type": "monthly", "year": year, "month": month}
    assert_breakdown(monthly, category_sums(await listed(api, auth_headers, user_id, first, last)))

    response = await api.get(
        f"/api/dashboard/{user_id}/yearly", headers=auth_headers, params={"year": year}
    )
    assert response.status_code == 200, response.text
    yearly = response.json()
    year_rows = await listed(api, auth_headers, user_id, dt.date(year, 1, 1), dt.date(year, 12, 31))
    assert_breakdown(yearly, category_sums(year_rows))
    by_month: dict[int, Decimal] = defaultdict(Decimal)
    for row in year_rows:
        by_month[int(row["date"][5:7])] += as_decimal(row["amount"])
    assert [t["month"] for t in yearly["monthly_trends"]] == list(range(1, 13))
    for trend in yearly["monthly_trends"]:
        assert_json_number(trend["amount"], by_month[trend["month"]])
