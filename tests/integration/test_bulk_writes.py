"""Multi-row writes to expenses on the real stack (issue 23's bulk work: the totals and the
audit of inserts and deletes run once per statement, over the statement's rows): every
path keeps the monthly totals exact and writes one audit row per changed expense, with
the request's context - a multi-row INSERT, UPDATE (moves between users, months and
categories, amount changes, changes the totals do not depend on), DELETE, COPY, the
cascade of `delete from users`, and concurrent bulk writers."""

from __future__ import annotations

import io
import json
import threading

import psycopg2

from tests.helpers import sql

# 600 rows over 4 users x 3 categories x 12 months (144 buckets), every other one with a
# payment method, a third recorded by member 2
INSERT_600 = (
    "insert into public.expenses (user_id, category_id, payment_method_id, amount, description, "
    "date, created_by) select 1 + g % 4, 1 + g % 3, case when g % 2 = 0 then 1 + g % 5 end, "
    "1 + (g % 37) * 1.25, 'bulk ' || g, date '2024-01-01' + ((g / 12) % 12) * 31, "
    "case when g % 3 = 0 then 2 end from generate_series(1, 600) g"
)


def drift(cur) -> list:
    cur.execute("select * from public.expense_totals_drift()")
    return cur.fetchall()


def audit_count(cur, action: str) -> int:
    cur.execute("select count(*) from public.audit_log where action = %s", (action,))
    return cur.fetchone()[0]


def test_multi_row_insert_update_delete_keep_totals_exact_and_audit_each_row(fresh_db):
    with sql(fresh_db) as cur:
        cur.execute(INSERT_600)
        assert drift(cur) == []
        # one expense.create per row, the row as stored; created_by defaults to the owner
        cur.execute(
            "select count(*) from public.expenses e join public.audit_log a "
            "on a.target_id = e.id and a.action = 'expense.create' "
            "and a.after = to_jsonb(e) - 'version' and a.before is null"
        )
        assert cur.fetchone()[0] == 600 == audit_count(cur, "expense.create")
        cur.execute(
            "select count(*) filter (where created_by = 2), "
            "count(*) filter (where created_by = user_id) from public.expenses"
        )
        # 200 recorded by member 2 (50 of them their own), the rest by their owners
        assert cur.fetchone() == (300, 450)
        cur.execute("select count(*) from public.expense_monthly_totals")
        assert cur.fetchone()[0] == 144

        # one UPDATE moving rows between users, months and categories, changing amounts,
        # and touching rows without changing what the totals depend on
        cur.execute("create temp table before_update as select * from public.expenses")
        cur.execute(
            "update public.expenses set "
            "user_id = case when id % 5 = 0 then 1 + (user_id % 4) else user_id end, "
            "date = case when id % 7 = 0 then date + 45 else date end, "
            "category_id = case when id % 11 = 0 then 4 else category_id end, "
            "amount = case when id % 13 = 0 then amount + 0.5 else amount end, "
            "description = description || ' (edited)' where id % 2 = 1"
        )
        assert cur.rowcount == 300
        assert drift(cur) == []
        cur.execute(
            "select count(*) from public.audit_log a join before_update b on b.id = a.target_id "
            "join public.expenses e on e.id = a.target_id where a.action = 'expense.update' "
            "and a.before = to_jsonb(b) - 'version' and a.after = to_jsonb(e) - 'version'"
        )
        assert cur.fetchone()[0] == 300 == audit_count(cur, "expense.update")
        cur.execute("select count(*) from public.expenses where version = 2")
        assert cur.fetchone()[0] == 300

        # moving every expense out of one bucket removes its totals row
        cur.execute(
            "select user_id, month, category_id from public.expense_monthly_totals "
            "where category_id <> 4 order by expense_count, user_id, month, category_id limit 1"
        )
        user_id, month, category_id = cur.fetchone()
        cur.execute(
            "update public.expenses set category_id = 4 where user_id = %s "
            "and date_trunc('month', date)::date = %s and category_id = %s",
            (user_id, month, category_id),
        )
        assert cur.rowcount > 0
        assert drift(cur) == []
        cur.execute(
            "select count(*) from public.expense_monthly_totals where (user_id, month, "
            "category_id) = (%s, %s, %s) or expense_count <= 0",
            (user_id, month, category_id),
        )
        assert cur.fetchone()[0] == 0

        # one DELETE of a third: one expense.delete per row, the row as it was
        cur.execute("create temp table before_delete as select * from public.expenses")
        cur.execute("delete from public.expenses where id % 3 = 0")
        assert cur.rowcount == 200
        assert drift(cur) == []
        cur.execute(
            "select count(*) from public.audit_log a join before_delete b on b.id = a.target_id "
            "where a.action = 'expense.delete' and a.before = to_jsonb(b) - 'version' "
            "and a.after is null"
        )
        assert cur.fetchone()[0] == 200 == audit_count(cur, "expense.delete")

        # the cascade of `delete from users`: the member's expenses go (audited, their
        # totals rows with them); what they recorded for others stays as it is
        cur.execute(
            "select count(*) filter (where user_id = 2), "
            "count(*) filter (where created_by = 2 and user_id <> 2) from public.expenses"
        )
        owned, recorded = cur.fetchone()
        assert owned > 0 and recorded > 0
        cur.execute("delete from public.users where id = 2")
        assert drift(cur) == []
        assert audit_count(cur, "expense.delete") == 200 + owned
        cur.execute("select count(*) from public.expense_monthly_totals where user_id = 2")
        assert cur.fetchone()[0] == 0
        cur.execute("select count(*) from public.expenses where created_by = 2")
        assert cur.fetchone()[0] == recorded

        # an emptied table leaves no totals row
        cur.execute("delete from public.expenses")
        assert drift(cur) == []
        cur.execute("select count(*) from public.expense_monthly_totals")
        assert cur.fetchone()[0] == 0


def test_copy_counts_and_audits_like_insert(fresh_db):
    data = io.StringIO(
        "".join(
            f"{1 + i % 4}\t{1 + i % 4}\t{i + 1}.50\t2025-0{1 + i % 9}-15\tcopied {i}\n"
            for i in range(300)
        )
    )
    with sql(fresh_db) as cur:
        cur.copy_expert(
            "copy public.expenses (user_id, category_id, amount, date, description) from stdin",
            data,
        )
        assert drift(cur) == []
        cur.execute(
            "select count(*) from public.expenses e join public.audit_log a "
            "on a.target_id = e.id and a.action = 'expense.create' "
            "and a.after = to_jsonb(e) - 'version'"
        )
        assert cur.fetchone()[0] == 300 == audit_count(cur, "expense.create")
        cur.execute("select sum(amount), sum(expense_count) from public.expense_monthly_totals")
        assert cur.fetchone() == (sum(i + 1.5 for i in range(300)), 300)


def test_a_statements_audit_rows_carry_the_requests_context(fresh_db):
    """What PostgREST sets for a service-role request from the gateway: the session header
    names the actor, the request id and client address come from the gateway's headers."""
    headers = {
        "x-gateway-session": "3:jti-1:1700000000",
        "x-request-id": "req-bulk-1",
        "x-client-address": "203.0.113.9",
    }
    with sql(fresh_db) as cur:
        cur.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "service_role"}),),
        )
        cur.execute("select set_config('request.headers', %s, true)", (json.dumps(headers),))
        cur.execute(
            "insert into public.expenses (user_id, category_id, amount, date) "
            "select 1, 1, g, date '2025-01-01' + g from generate_series(1, 5) g"
        )
        cur.execute("delete from public.expenses where amount > 3")
        cur.execute(
            "select action, actor_id, request_id, client_addr, count(*) from public.audit_log "
            "group by 1, 2, 3, 4 order by 1"
        )
        assert cur.fetchall() == [
            ("expense.create", 3, "req-bulk-1", "203.0.113.9", 5),
            ("expense.delete", 3, "req-bulk-1", "203.0.113.9", 2),
        ]
        cur.execute("select count(*) from public.expenses where created_by = 3")
        assert cur.fetchone()[0] == 3  # the caller recorded them


def test_concurrent_bulk_writers_keep_the_totals_exact(fresh_db):
    """Three transactions writing the same buckets at once (two inserting, one moving rows
    between them in the opposite direction): each waits for the others' totals rows, none
    deadlocks, and the totals are exact afterwards."""
    with sql(fresh_db) as cur:
        cur.execute(INSERT_600)
    statements = [
        INSERT_600,
        INSERT_600.replace("1 + g % 4", "4 - g % 4"),
        "update public.expenses set user_id = 5 - user_id, category_id = 4 - category_id",
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(statements))

    def run(statement: str) -> None:
        conn = psycopg2.connect(fresh_db)
        try:
            with conn, conn.cursor() as cur:
                barrier.wait()
                cur.execute(statement)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(s,)) for s in statements]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sql(fresh_db) as cur:
        assert drift(cur) == []
        cur.execute("select count(*), sum(expense_count) from public.expense_monthly_totals")
        buckets, counted = cur.fetchone()
        assert counted == 1800 and buckets > 0
