"""Dashboards stay exact while expenses are created, edited and deleted through the API
(hypothesis): random interleavings of POST, PUT (moving rows between users, months, years
and categories) and DELETE — some by members who may not, which must change nothing — then
both dashboards of every user and year involved are compared with sums over
GET /api/expenses, and the totals table with the raw rows."""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import bearer, sql, token_for
from tests.integration.test_dashboard_properties import (  # noqa: F401 - fixture
    CATEGORY_NAMES,
    as_decimal,
    assert_breakdown,
    assert_json_number,
    category_sums,
    contract_db_empty,
    listed,
)

USERS = [1, 2, 3]
NAMES = {1: "Alok", 2: "Amol", 3: "Atul"}
YEARS = [2024, 2025]
MONTHS = [1, 12]  # both ends of a year: moves cross months and years

amounts = st.integers(1, 500_000).map(lambda cents: Decimal(cents) / 100)
dates = st.builds(
    lambda y, m, d: dt.date(y, m, min(d, calendar.monthrange(y, m)[1])),
    st.sampled_from(YEARS),
    st.sampled_from(MONTHS),
    st.integers(1, 31),
)
creates = st.tuples(
    st.just("create"),
    st.sampled_from(USERS),
    st.sampled_from(USERS),
    st.sampled_from(sorted(CATEGORY_NAMES)),
    amounts,
    dates,
)
changes = st.fixed_dictionaries(
    {},
    optional={
        "user_id": st.sampled_from(USERS),
        "category_id": st.sampled_from(sorted(CATEGORY_NAMES)),
        "amount": amounts,
        "date": dates,
    },
).filter(bool)
edits = st.tuples(st.just("edit"), st.integers(0, 50), changes, st.booleans())
deletes = st.tuples(st.just("delete"), st.integers(0, 50), st.booleans())
operations = st.lists(st.one_of(creates, creates, edits, edits, deletes), min_size=1, max_size=14)


def headers(user_id: int) -> dict[str, str]:
    return bearer(token_for(user_id, NAMES[user_id]))


def outsider(row: dict) -> int | None:
    """A member who is neither the owner nor the recorder, if there is one."""
    others = [u for u in USERS if u not in (row["user_id"], row["created_by"])]
    return others[0] if others else None


def json_changes(values: dict) -> dict:
    return {
        k: (float(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, dt.date) else v)
        for k, v in values.items()
    }


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_dashboards_follow_interleaved_creates_edits_and_deletes(
    api,
    dsn,
    contract_db_empty,  # noqa: F811 - the fixture
    ops,
):
    with sql(dsn) as cur:
        cur.execute("delete from public.expenses")
    live: list[dict] = []  # {"id", "user_id", "created_by"}
    touched: set[tuple[int, int]] = set()
    for op in ops:
        if op[0] == "create":
            _, actor, owner, category, amount, date = op
            response = await api.post(
                "/api/expenses",
                headers=headers(actor),
                json={
                    "amount": float(amount),
                    "category_id": category,
                    "user_id": owner,
                    "date": date.isoformat(),
                },
            )
            assert response.status_code == 201, response.text
            live.append({"id": response.json()["id"], "user_id": owner, "created_by": actor})
            touched.add((owner, date.year))
            continue
        if not live:
            continue
        row = live[op[1] % len(live)]
        before = (await api.get(f"/api/expenses/{row['id']}", headers=headers(1))).json()
        touched.add((before["user_id"], int(before["date"][:4])))
        by_outsider = op[-1] and outsider(row) is not None
        actor = outsider(row) if by_outsider else row["created_by"]
        if op[0] == "edit":
            response = await api.put(
                f"/api/expenses/{row['id']}", json=json_changes(op[2]), headers=headers(actor)
            )
        else:
            response = await api.delete(f"/api/expenses/{row['id']}", headers=headers(actor))
        if by_outsider:
            assert response.status_code == 403, response.text
            continue
        assert response.status_code == 200, response.text
        if op[0] == "edit":
            after = response.json()["expense"]
            row["user_id"] = after["user_id"]
            touched.add((after["user_id"], int(after["date"][:4])))
        else:
            live.remove(row)

    everyone = headers(1)
    for user_id, year in sorted(touched):
        year_rows = await listed(api, everyone, user_id, dt.date(year, 1, 1), dt.date(year, 12, 31))
        yearly = (
            await api.get(
                f"/api/dashboard/{user_id}/yearly", params={"year": year}, headers=everyone
            )
        ).json()
        assert_breakdown(yearly, category_sums(year_rows))
        by_month: dict[int, Decimal] = defaultdict(Decimal)
        for item in year_rows:
            by_month[int(item["date"][5:7])] += as_decimal(item["amount"])
        for trend in yearly["monthly_trends"]:
            assert_json_number(trend["amount"], by_month[trend["month"]])
        for month in MONTHS:
            first = dt.date(year, month, 1)
            last = dt.date(year, month, calendar.monthrange(year, month)[1])
            monthly = (
                await api.get(
                    f"/api/dashboard/{user_id}/monthly",
                    headers=everyone,
                    params={"year": year, "month": month},
                )
            ).json()
            assert_breakdown(
                monthly, category_sums(await listed(api, everyone, user_id, first, last))
            )
    with sql(dsn) as cur:
        cur.execute("select count(*) from public.expense_totals_drift()")
        assert cur.fetchone()[0] == 0
        cur.execute("select count(*) from public.expenses")
        assert cur.fetchone()[0] == len(live)
