"""Issue 23: recurring expenses on the real stack — the API, month-end clamping, every
occurrence exactly once (also with three concurrent materialize_recurring() runs), the
rule in the audit trail, a deleted rule keeping its expenses, and the leader loop."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import psycopg2

from background import materialize_recurring_if_leader
from tests.helpers import app_client, bearer, sql, stack_settings, token_for

RULE = {"amount": 15000, "category_id": 3, "frequency": "monthly", "description": "Rent"}


def expense_dates(dsn: str, description: str = "Rent") -> list[str]:
    with sql(dsn) as cur:
        cur.execute(
            "select date::text from public.expenses where description = %s order by date",
            (description,),
        )
        return [r[0] for r in cur.fetchall()]


def materialize(dsn: str, until: str) -> int:
    with sql(dsn) as cur:
        cur.execute("select public.materialize_recurring(%s)", (until,))
        return cur.fetchone()[0]


async def test_create_makes_the_due_occurrences_at_once(api, fresh_db, auth_headers):
    start = dt.date.today().replace(day=1) - dt.timedelta(days=40)
    start = start.replace(day=1)
    response = await api.post(
        "/api/recurring", json={**RULE, "start_date": start.isoformat()}, headers=auth_headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body) == ["message", "id", "next_date", "recurring"]
    assert body["message"] == "Recurring expense created"
    dates = expense_dates(fresh_db)
    today = dt.date.today()
    months = (today.year - start.year) * 12 + today.month - start.month + 1
    assert dates[0] == start.isoformat() and len(dates) == months  # every first so far
    assert body["next_date"] > dates[-1]
    assert body["recurring"]["next_date"] == body["next_date"]
    listed = (await api.get("/api/recurring", headers=auth_headers)).json()
    assert listed == [body["recurring"]]
    # the expenses are ordinary: listed, in the dashboards' totals, audited with the rule
    with sql(fresh_db) as cur:
        cur.execute(
            "select count(*) from public.audit_log where action = 'expense.recurring' "
            "and (after ->> 'rule_id')::bigint = %s",
            (body["id"],),
        )
        assert cur.fetchone()[0] == months
        # both audit rows of each made expense name the caller and the request
        cur.execute(
            "select action, count(*) from public.audit_log where target_id in "
            "(select expense_id from public.recurring_occurrences where rule_id = %s) "
            "and action in ('expense.create', 'expense.recurring') and actor_id = 1 "
            "and request_id is not null group by 1 order by 1",
            (body["id"],),
        )
        assert cur.fetchall() == [("expense.create", months), ("expense.recurring", months)]
        cur.execute("select sum(amount) from public.expense_monthly_totals where user_id = 1")
        assert cur.fetchone()[0] == 15000 * months
    # running again creates nothing
    assert materialize(fresh_db, dt.date.today().isoformat()) == 0


async def test_a_rule_from_long_ago_is_answered_after_its_work_not_before(fresh_db):
    """A weekly rule from 1900 makes ~6,600 expenses in its request. The gateway waits for
    Postgres as the import does (MATERIALIZE_SECONDS), not HTTP_TIMEOUT_SECONDS: a 503 while
    the rows then commit would invite a retry that makes them all again."""
    rule = {**RULE, "frequency": "weekly", "start_date": "1900-01-01", "description": "old"}
    async with app_client(stack_settings(http_timeout_seconds=0.05)) as client:
        response = await client.post("/api/recurring", json=rule, headers=bearer())
        assert response.status_code == 201, response.text
        weeks = (dt.date.today() - dt.date(1900, 1, 1)).days // 7 + 1
        assert len(expense_dates(fresh_db, "old")) == weeks
        changed = await client.put(
            f"/api/recurring/{response.json()['id']}", json={"amount": 1}, headers=bearer()
        )
        assert changed.status_code == 200, changed.text


async def test_month_ends_clamp_and_the_schedule_does_not_drift(api, fresh_db, auth_headers):
    for frequency, start in (("monthly", "2024-01-31"), ("yearly", "2024-02-29")):
        response = await api.post(
            "/api/recurring",
            json={
                **RULE,
                "frequency": frequency,
                "start_date": start,
                "end_date": "2028-03-01",
                "description": frequency,
            },
            headers=auth_headers,
        )
        assert response.status_code == 201
    with sql(fresh_db) as cur:  # nothing materialised beyond today by the API; test ahead
        cur.execute("delete from public.recurring_occurrences")
        cur.execute("delete from public.expenses")
    assert materialize(fresh_db, "2024-06-30") == 6 + 1
    assert expense_dates(fresh_db, "monthly") == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
        "2024-05-31",
        "2024-06-30",
    ]
    materialize(fresh_db, "2028-12-31")
    assert expense_dates(fresh_db, "yearly") == [
        "2024-02-29",
        "2025-02-28",
        "2026-02-28",
        "2027-02-28",
        "2028-02-29",
    ]
    assert len(expense_dates(fresh_db, "monthly")) == 50  # 2024-01 .. 2028-02, end_date holds


async def test_weekly_and_catch_up_after_downtime(api, fresh_db, auth_headers):
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.recurring_expenses (user_id, category_id, amount, frequency, "
            "start_date, description) values (2, 1, 10, 'weekly', '2025-01-01', 'Milk')"
        )
    assert materialize(fresh_db, "2025-01-07") == 1
    # "down" for three weeks: the next run makes every missed occurrence once
    assert materialize(fresh_db, "2025-01-29") == 4
    assert expense_dates(fresh_db, "Milk") == [
        "2025-01-01",
        "2025-01-08",
        "2025-01-15",
        "2025-01-22",
        "2025-01-29",
    ]


def test_three_concurrent_runs_create_each_occurrence_once(fresh_db):
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.recurring_expenses (user_id, category_id, amount, frequency, "
            "start_date, description) select 1 + g % 4, 1 + g % 4, g, 'weekly', "
            "date '2020-01-01' + g, 'rule ' || g from generate_series(1, 30) g"
        )
    results: list[int] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        conn = psycopg2.connect(fresh_db)
        try:
            with conn, conn.cursor() as cur:
                barrier.wait()
                cur.execute("select public.materialize_recurring('2024-12-31')")
                results.append(cur.fetchone()[0])
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sql(fresh_db) as cur:
        cur.execute("select count(*), count(distinct (description, date)) from public.expenses")
        total, distinct = cur.fetchone()
        cur.execute("select count(*) from public.recurring_occurrences")
        occurrences = cur.fetchone()[0]
    assert total == distinct == occurrences == sum(results) > 30 * 200
    assert sorted(results)[0] >= 0


def test_materialising_10000_occurrences_at_once(fresh_db):
    """10,000 occurrences (100 rules x 100 months) in one run: each exactly once, each an
    ordinary expense of its rule's user, category and amount on its date, each with its
    two audit rows, and the monthly totals exact. The issue asks for under a second: the
    triggers on expenses run once per statement for that (sql/R40_expenses.sql,
    R50_dashboards.sql); the time is measured by scripts/bench.py's recurring case, not
    asserted here (the suite shares the machine with other work)."""
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.recurring_expenses (user_id, category_id, payment_method_id, "
            "amount, frequency, start_date, end_date, description) "
            "select 1 + g % 4, 1 + g % 3, case when g % 2 = 0 then 1 + g % 5 end, g + 0.25, "
            "'monthly', date '2000-01-01' + (g % 28), "
            "date '2000-01-01' + (g % 28) + interval '99 months', 'rule ' || g "
            "from generate_series(1, 100) g"
        )
    assert materialize(fresh_db, "2024-12-31") == 10_000
    with sql(fresh_db) as cur:
        cur.execute(
            "select count(*), count(distinct (o.rule_id, o.occurs_on)), count(distinct e.id) "
            "from public.recurring_occurrences o "
            "join public.expenses e on e.id = o.expense_id "
            "join public.recurring_expenses r on r.id = o.rule_id "
            "where e.date = o.occurs_on and e.user_id = r.user_id "
            "and e.category_id = r.category_id and e.amount = r.amount "
            "and e.payment_method_id is not distinct from r.payment_method_id "
            "and e.description = r.description and e.created_by = r.user_id "
            "and e.version = 1"
        )
        assert cur.fetchone() == (10_000, 10_000, 10_000)
        cur.execute("select count(*) from public.expenses")
        assert cur.fetchone()[0] == 10_000
        # one "expense.create" (the row as stored) and one "expense.recurring" (its rule
        # and date) per expense, nothing else
        cur.execute(
            "select a.action, count(*), count(distinct a.target_id) from public.audit_log a "
            "join public.expenses e on e.id = a.target_id "
            "join public.recurring_occurrences o on o.expense_id = e.id "
            "where (a.action = 'expense.create' and a.after = to_jsonb(e) - 'version') "
            "or (a.action = 'expense.recurring' and a.after = jsonb_build_object("
            "'rule_id', o.rule_id, 'date', o.occurs_on)) group by 1 order by 1"
        )
        assert cur.fetchall() == [
            ("expense.create", 10_000, 10_000),
            ("expense.recurring", 10_000, 10_000),
        ]
        cur.execute("select count(*) from public.audit_log")
        assert cur.fetchone()[0] == 20_000
        cur.execute("select count(*) from public.expense_totals_drift()")
        assert cur.fetchone()[0] == 0
        cur.execute("select sum(amount), sum(expense_count) from public.expense_monthly_totals")
        assert cur.fetchone() == (sum(100 * (g + Decimal("0.25")) for g in range(1, 101)), 10_000)
    assert materialize(fresh_db, "2024-12-31") == 0


async def test_change_applies_from_the_next_occurrence_and_delete_keeps_expenses(
    api, fresh_db, auth_headers
):
    today = dt.date.today()
    start = (today - dt.timedelta(days=21)).isoformat()
    created = await api.post(
        "/api/recurring",
        json={**RULE, "frequency": "weekly", "start_date": start},
        headers=auth_headers,
    )
    rule_id = created.json()["id"]
    before = expense_dates(fresh_db)
    assert len(before) == 4
    changed = await api.put(
        f"/api/recurring/{rule_id}", json={"amount": 99.5}, headers=auth_headers
    )
    assert changed.status_code == 200
    assert changed.json()["recurring"]["amount"] == 99.5
    assert expense_dates(fresh_db) == before  # nothing re-made, nothing changed
    with sql(fresh_db) as cur:
        cur.execute("select count(*) from public.expenses where amount = 15000")
        assert cur.fetchone()[0] == 4
    other = await api.put(
        f"/api/recurring/{rule_id}", json={"amount": 1}, headers=bearer(token_for(2, "Amol"))
    )
    assert other.status_code == 403
    assert other.json() == {"error": "You can only change your own recurring expenses"}
    deleted = await api.delete(f"/api/recurring/{rule_id}", headers=auth_headers)
    assert deleted.json() == {"message": "Recurring expense deleted", "id": rule_id}
    assert expense_dates(fresh_db) == before
    assert (await api.get("/api/recurring", headers=auth_headers)).json() == []
    assert (await api.delete(f"/api/recurring/{rule_id}", headers=auth_headers)).status_code == 404


async def test_bad_rules_are_400(api, fresh_db, auth_headers):
    for body, message in (
        ({**RULE, "start_date": "2025-01-01", "frequency": "daily"}, "frequency"),
        ({**RULE, "start_date": "2025-02-30"}, "start_date"),
        ({**RULE, "start_date": "1899-12-31"}, "start_date: must be between 1900-01-01"),
        ({**RULE, "start_date": "2025-01-01", "end_date": "2201-01-01"}, "end_date: must be"),
        ({**RULE, "start_date": "2025-01-02", "end_date": "2025-01-01"}, "end_date must not"),
        ({**RULE, "start_date": "2025-01-01", "category_id": 99}, "Invalid category_id"),
        ({**RULE, "start_date": "2025-01-01", "amount": 0}, "amount"),
    ):
        response = await api.post("/api/recurring", json=body, headers=auth_headers)
        assert response.status_code == 400, body
        assert message in response.json()["error"]
    with sql(fresh_db) as cur:
        cur.execute("select count(*) from public.recurring_expenses")
        assert cur.fetchone()[0] == 0


def test_the_leader_loop_runs_it_once_at_a_time(fresh_db):
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.recurring_expenses (user_id, category_id, amount, frequency, "
            "start_date) values (1, 1, 5, 'monthly', current_date - 65)"
        )
    assert materialize_recurring_if_leader(fresh_db) == 3
    assert materialize_recurring_if_leader(fresh_db) == 0
    conn = psycopg2.connect(fresh_db)  # another worker holds the lock: this one skips
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtext('ffb.materialize_recurring'))")
            assert materialize_recurring_if_leader(fresh_db) is None
    finally:
        conn.rollback()
        conn.close()
