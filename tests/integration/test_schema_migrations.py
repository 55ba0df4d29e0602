"""The schema bootstrap on real Postgres, as the non-superuser `postgres` of hosted Supabase.

Each test gets a database of its own (CREATE DATABASE as `postgres`, which has CREATEDB as
on hosted Supabase), with hosted Supabase's default privileges for `postgres` (ALL on every
new table, sequence and function to anon, authenticated and service_role), so the
bootstrap meets what it meets in production.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

import catalog
import migrate
from tests.helpers import ROOT, Dsn, password_hash, sql

OLD_RELEASE = "73f7ccd"  # the release before versioned migrations
OLD_FILES = ("supabase_schema.sql", "supabase_functions.sql", "gateway_functions.sql")
HOSTED_DEFAULT_PRIVILEGES = """
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
"""
ALL_TABLES = migrate.BASELINE_TABLES  # the tables of the release before migrations


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def autocommit(dsn: str, statement: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@contextmanager
def superuser():
    """supabase_admin over the stack's unix socket: only for what `postgres` may not do on
    hosted Supabase either (here: revoking its SET ON PARAMETER)."""
    conn = psycopg2.connect(os.environ["DEV_ADMIN_DSN"])
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def bootstrap(dsn: str, *args: str, sql_dir: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "scripts/bootstrap_schema.py", "--database-url", dsn, *args]
    if sql_dir is not None:
        cmd += ["--sql-dir", str(sql_dir)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)


def ok(result: subprocess.CompletedProcess, code: int = 0) -> subprocess.CompletedProcess:
    assert result.returncode == code, result.stdout + result.stderr
    return result


def old_release_sql(name: str) -> str:
    return subprocess.run(
        ["git", "show", f"{OLD_RELEASE}:sql/{name}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def privilege_table(dsn: str) -> dict[str, dict[str, list[str]]]:
    """role -> kind -> sorted 'PRIV object' items, read from pg_catalog."""
    with sql(dsn) as cur:
        privileges = catalog.read_privileges(cur)
    table: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for p in privileges:
        table[p.grantee][p.kind].append(f"{p.privilege} {p.object}")
    return {
        role: {kind: sorted(items) for kind, items in kinds.items()}
        for role, kinds in table.items()
    }


def privilege_summary(dsn: str) -> str:
    rows = []
    for role in ("public", "anon", "authenticated", "service_role"):
        kinds = privilege_table(dsn).get(role, {})
        rows.append(
            f"{role}: "
            + (", ".join(f"{len(v)} on {k}s" for k, v in sorted(kinds.items())) or "nothing")
        )
    return "; ".join(rows)


def table_columns(dsn: str) -> dict[str, list[str]]:
    """The columns each table has now (later migrations add columns to old tables)."""
    with sql(dsn) as cur:
        cur.execute(
            "select table_name, array_agg(column_name::text order by ordinal_position) "
            "from information_schema.columns where table_schema = 'public' "
            "and table_name = any(%s) group by 1",
            (list(ALL_TABLES),),
        )
        return dict(cur.fetchall())


def snapshot_rows(dsn: str, columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """Every row of every table, reading only the given columns (those of the old release)."""
    with sql(dsn) as cur:
        rows = {}
        for table in ALL_TABLES:
            names = ", ".join(f'"{c}"' for c in columns[table])  # names from the catalog
            cur.execute(f"select {names} from public.{table}")
            rows[table] = sorted(cur.fetchall(), key=repr)  # json has no order: sort here
        return rows


@pytest.fixture
def database(dsn):
    """A database of its own, created and owned by the non-superuser `postgres`."""
    name = f"ffb_test_{secrets.token_hex(4)}"
    autocommit(dsn, f"create database {name}")
    db = Dsn(psycopg2.extensions.make_dsn(dsn, dbname=name))
    with sql(db) as cur:
        cur.execute(HOSTED_DEFAULT_PRIVILEGES)
    yield db
    for attempt in range(20):
        try:
            autocommit(dsn, f"drop database if exists {name} with (force)")
            break
        except psycopg2.errors.InsufficientPrivilege:
            # an autovacuum worker on it (after many applies): `with (force)` may not end
            # it as a non-superuser (PostgreSQL 15); it finishes on its own
            if attempt == 19:
                raise
            time.sleep(0.5)


@pytest.fixture
def sql_copy(tmp_path) -> Path:
    """A copy of sql/ a test may add migrations to or edit."""
    target = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", target)
    return target


# --------------------------------------------------------------------------------------
# Roles: the stack is shaped like hosted Supabase
# --------------------------------------------------------------------------------------
def test_stack_connects_as_a_postgres_role_shaped_like_hosted_supabase(dsn):
    with sql(dsn) as cur:
        cur.execute(
            "select current_user, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, "
            "rolreplication, rolbypassrls from pg_roles where rolname = current_user"
        )
        assert cur.fetchone() == ("postgres", False, True, True, True, True, True)
        cur.execute("select current_setting('server_version_num')::int / 10000")
        major = cur.fetchone()[0]
        cur.execute(
            "select r.rolname, m.admin_option from pg_auth_members m "
            "join pg_roles r on r.oid = m.roleid where m.member = 'postgres'::regrole order by 1"
        )
        if major >= 16:
            # hosted Supabase's 17 images: ADMIN OPTION on the API roles and authenticator,
            # which PostgreSQL 16+ requires to `alter role authenticator set ...`
            assert cur.fetchall() == [
                ("anon", True),
                ("authenticated", True),
                ("authenticator", True),
                ("service_role", True),
            ]
        else:  # hosted Supabase's 15 layout: a plain member of the API roles only
            assert cur.fetchall() == [
                ("anon", False),
                ("authenticated", False),
                ("service_role", False),
            ]
        cur.execute("select has_parameter_privilege('postgres', 'pgrst.db_pre_request', 'SET')")
        assert cur.fetchone()[0] is True


def test_the_whole_bootstrap_succeeds_as_the_non_superuser_postgres(database):
    applied = ok(bootstrap(database))
    assert "applied sql/migrations/0001_baseline.sql" in applied.stdout
    assert "==> schema matches sql/" in applied.stdout
    ok(bootstrap(database, "--check"))
    with sql(database) as cur:
        cur.execute(
            "select version, name, applied_by from public.schema_migrations "
            "where version <> 'R' order by version"
        )
        assert cur.fetchall()[0] == ("0001", "migrations/0001_baseline.sql", "postgres")


# --------------------------------------------------------------------------------------
# Least privilege
# --------------------------------------------------------------------------------------
def test_privileges_read_from_pg_catalog_equal_the_allow_list(dsn):
    with sql(dsn) as cur:
        actual = catalog.read_privileges(cur)
    assert actual == catalog.allowed_privileges()


def test_anon_holds_reference_reads_and_the_hook_only(dsn):
    assert privilege_table(dsn)["anon"] == {
        "function": ["EXECUTE public.check_gateway_session()"],
        "table": ["SELECT public.categories", "SELECT public.payment_methods"],
    }
    assert "public" not in privilege_table(dsn)  # nothing left to PUBLIC either


def test_no_api_role_holds_anything_on_a_sequence(dsn):
    assert all("sequence" not in kinds for kinds in privilege_table(dsn).values())


def test_authenticated_holds_exactly_what_the_rls_rules_use(dsn):
    assert privilege_table(dsn)["authenticated"] == {
        "function": [
            "EXECUTE public.check_gateway_session()",
            "EXECUTE public.request_user_id()",
            # issue 23: the search index's expression runs as the writer of a row
            "EXECUTE public.search_fold(text)",
        ],
        "table": [
            "DELETE public.expenses",
            "INSERT public.expenses",
            "SELECT public.categories",
            "SELECT public.expenses",
            "SELECT public.payment_methods",
        ],
        # issue 12: a member changes (these columns) or deletes what they own or recorded
        "column": [
            f"UPDATE public.expenses.{c}"
            for c in (
                "amount",
                "category_id",
                "date",
                "description",
                "payment_method_id",
                "user_id",
            )
        ],
    }


def test_default_privileges_grants_on_a_new_migrations_table_are_revoked(database, sql_copy):
    ok(bootstrap(database, sql_dir=sql_copy))
    (sql_copy / "migrations" / "0900_notes.sql").write_text(
        "create table public.notes (id bigint generated by default as identity primary key,\n"
        "  body text not null);\nalter table public.notes enable row level security;\n"
    )
    ok(bootstrap(database, sql_dir=sql_copy))
    assert not any(
        "notes" in item
        for kinds in privilege_table(database).values()
        for items in kinds.values()
        for item in items
    )


# --------------------------------------------------------------------------------------
# Migrations
# --------------------------------------------------------------------------------------
def test_a_new_migration_applies_once_and_is_recorded(database, sql_copy):
    ok(bootstrap(database, sql_dir=sql_copy))
    # not idempotent on purpose: a second run would fail on the existing column
    (sql_copy / "migrations" / "0900_expense_note.sql").write_text(
        "alter table public.expenses add column note text;\n"
        "insert into public.categories (name) values ('added by 0900');\n"
    )
    dry = ok(bootstrap(database, "--dry-run", sql_dir=sql_copy))
    assert "would apply sql/migrations/0900_expense_note.sql" in dry.stdout
    first = ok(bootstrap(database, sql_dir=sql_copy))
    assert "applied sql/migrations/0900_expense_note.sql" in first.stdout
    second = ok(bootstrap(database, sql_dir=sql_copy))
    assert "0900" not in second.stdout.split("checking the result")[0]
    assert "nothing to apply" in second.stdout
    with sql(database) as cur:
        cur.execute(
            "select version, name, sha256, applied_by from public.schema_migrations "
            "where version = '0900'"
        )
        rows = cur.fetchall()
        cur.execute("select count(*) from public.categories where name = 'added by 0900'")
        assert cur.fetchone()[0] == 1
    assert rows == [
        (
            "0900",
            "migrations/0900_expense_note.sql",
            catalog.SqlFile(
                "x", "0900", (sql_copy / "migrations/0900_expense_note.sql").read_text()
            ).sha256,
            "postgres",
        )
    ]
    ok(bootstrap(database, "--check", sql_dir=sql_copy))


def test_concurrent_start_ups_apply_each_file_once(database):
    """Several workers start at once (BOOTSTRAP_ON_STARTUP): the advisory lock lets one
    apply and the others find nothing left to do."""
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: migrate.apply_schema(database), range(4)))
    assert sum(1 for r in results if any("applied sql/migrations/0001" in d for d in r.done)) == 1
    with sql(database) as cur:
        cur.execute(
            "select version, name, count(*) from public.schema_migrations "
            "group by 1, 2 having count(*) > 1"
        )
        assert cur.fetchall() == []
        cur.execute("select count(*) from public.schema_migrations")
        assert cur.fetchone()[0] == len(catalog.migration_files()) + len(catalog.repeatable_files())
    assert migrate.ensure_schema(database) == []  # a later start-up has nothing to do


def test_migrations_run_in_order_each_in_its_own_transaction(database, sql_copy):
    ok(bootstrap(database, sql_dir=sql_copy))
    (sql_copy / "migrations" / "0901_good.sql").write_text(
        "create table public.good (id int primary key);\n"
        "alter table public.good enable row level security;\n"
    )
    (sql_copy / "migrations" / "0902_bad.sql").write_text(
        "create table public.half (id int primary key);\nselect 1/0;\n"
    )
    failed = ok(bootstrap(database, sql_dir=sql_copy), 2)
    assert "sql/migrations/0902_bad.sql failed, its transaction was rolled back" in failed.stderr
    with sql(database) as cur:
        cur.execute(
            "select to_regclass('public.good') is not null, to_regclass('public.half') is not null"
        )
        assert cur.fetchone() == (True, False)  # 0901 kept, 0902 rolled back whole
        cur.execute("select version from public.schema_migrations where version like '09%'")
        assert [r[0] for r in cur.fetchall()] == ["0901"]


def test_a_migration_that_creates_a_function_is_rolled_back_with_the_reason(database, sql_copy):
    """The repeatable files' apply drops every function they do not define, so a function
    made by a migration would silently vanish later: refused at once instead."""
    ok(bootstrap(database, sql_dir=sql_copy))
    (sql_copy / "migrations" / "0900_with_function.sql").write_text(
        "create table public.t900 (id int primary key);\n"
        "create function public.f900() returns int language sql as 'select 1';\n"
    )
    failed = ok(bootstrap(database, sql_dir=sql_copy), 2)
    assert "sql/migrations/0900_with_function.sql failed" in failed.stderr
    assert "creates or changes public.f900()" in failed.stderr
    assert "belong in the repeatable files sql/*.sql" in failed.stderr
    with sql(database) as cur:
        cur.execute("select to_regclass('public.t900')")
        assert cur.fetchone()[0] is None


def test_an_edited_applied_migration_is_refused_naming_file_and_checksums(database, sql_copy):
    ok(bootstrap(database, sql_dir=sql_copy))
    baseline = sql_copy / "migrations" / "0001_baseline.sql"
    before = catalog.SqlFile("x", "0001", baseline.read_text()).sha256
    baseline.write_text(baseline.read_text().replace("numeric(12, 2)", "numeric(14, 2)"))
    after = catalog.SqlFile("x", "0001", baseline.read_text()).sha256
    (sql_copy / "migrations" / "0900_later.sql").write_text(
        "create table public.later (id int primary key);\n"
    )
    ledger_before = snapshot_ledger(database)
    for args in ((), ("--check",), ("--dry-run",)):
        refused = ok(bootstrap(database, *args, sql_dir=sql_copy), 4)
        assert "sql/migrations/0001_baseline.sql was edited after it was applied" in refused.stderr
        assert f"ledger sha256 {before}" in refused.stderr
        assert f"file sha256 {after}" in refused.stderr
    assert snapshot_ledger(database) == ledger_before  # nothing ran, 0900 included
    with sql(database) as cur:
        cur.execute("select to_regclass('public.later')")
        assert cur.fetchone()[0] is None


def snapshot_ledger(dsn: str) -> list[tuple]:
    with sql(dsn) as cur:
        cur.execute(
            "select version, name, sha256, applied_at from public.schema_migrations order by 1, 2"
        )
        return cur.fetchall()


def test_a_function_sql_no_longer_defines_is_dropped_with_its_old_overloads(database, sql_copy):
    ok(bootstrap(database, sql_dir=sql_copy))
    rate_limits = sql_copy / "R60_rate_limits.sql"
    # an overload, as an earlier version of the file would have left behind
    with sql(database) as cur:
        cur.execute(
            "create function public.rate_limit_get(p_key text, p_extra int) returns json "
            "language sql as 'select null::json'"
        )
    text = rate_limits.read_text()
    start = text.index("create or replace function public.rate_limit_clear")
    end = text.index("$$;", start) + 3
    text = text[:start] + text[end:]
    assert ",\n  public.rate_limit_clear(text)\n" in text
    text = text.replace(",\n  public.rate_limit_clear(text)\n", "\n")
    rate_limits.write_text(text)
    allow = sql_copy / "privileges.txt"
    allow.write_text(
        "".join(
            line
            for line in allow.read_text().splitlines(keepends=True)
            if "rate_limit_clear" not in line
        )
    )
    applied = ok(bootstrap(database, sql_dir=sql_copy))
    assert "dropped function public.rate_limit_clear(text)" in applied.stdout
    assert "dropped function public.rate_limit_get(text,integer)" in applied.stdout
    with sql(database) as cur:
        cur.execute(
            "select p.oid::regprocedure::text from pg_proc p where p.proname in "
            "('rate_limit_clear', 'rate_limit_get') order by 1"
        )
        assert [r[0] for r in cur.fetchall()] == ["rate_limit_get(text)"]


# --------------------------------------------------------------------------------------
# --check
# --------------------------------------------------------------------------------------
DRIFTS = {
    "changed column type": (
        "alter table public.expenses alter column description type varchar(600)",
        "column public.expenses.description is `character varying(600)`, sql/ defines `text`",
        False,
    ),
    "extra overload": (
        "create function public.get_yearly_dashboard(p_user_id bigint, p_year text) returns json "
        "language sql security definer as 'select null::json'; grant execute on function "
        "public.get_yearly_dashboard(bigint, text) to service_role",
        "extra function public.get_yearly_dashboard(bigint,text)",
        True,
    ),
    "extra grant to anon": (
        "grant insert on public.categories to anon",
        "extra privilege: anon INSERT on table public.categories",
        True,
    ),
    "missing policy": (
        "drop policy expenses_owner_read on public.expenses",
        "missing policy expenses_owner_read on public.expenses",
        True,
    ),
    "RLS switched off": (
        "alter table public.users disable row level security",
        "RLS disabled on public.users",
        True,
    ),
    "changed index": (
        "drop index public.expenses_date_idx; create index expenses_date_idx on "
        "public.expenses (date)",
        "index expenses_date_idx is `CREATE INDEX expenses_date_idx ON public.expenses USING "
        "btree (date)`",
        False,
    ),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_check_names_the_drift_and_changes_nothing(database, drift):
    statement, line, repaired_by_apply = DRIFTS[drift]
    ok(bootstrap(database))
    with sql(database) as cur:
        cur.execute(statement)
    before = privilege_table(database)
    check = ok(bootstrap(database, "--check"), 1)
    assert line in check.stderr
    assert privilege_table(database) == before
    assert ok(bootstrap(database, "--check"), 1).stderr == check.stderr  # still there
    if repaired_by_apply:
        ok(bootstrap(database))
        ok(bootstrap(database, "--check"))


def test_check_names_an_extra_grant_to_anon_on_the_stack(dsn):
    """The case of the issue: `grant insert on public.categories to anon` was unseen."""
    with sql(dsn) as cur:
        cur.execute("grant insert on public.categories to anon")
    try:
        check = ok(bootstrap(dsn, "--check"), 1)
        assert (
            "extra privilege: anon INSERT on table public.categories (not in sql/privileges.txt)"
        ) in check.stderr
    finally:
        ok(bootstrap(dsn))
    ok(bootstrap(dsn, "--check"))


# --------------------------------------------------------------------------------------
# The pre-request hook refused (hosted Supabase without supautils' permission)
# --------------------------------------------------------------------------------------
def test_refused_hook_keeps_everything_else_prints_the_statement_and_exits_3(database, dsn):
    with superuser() as admin:
        admin.execute("alter role authenticator reset pgrst.db_pre_request")
        admin.execute("revoke set on parameter pgrst.db_pre_request from postgres")
    try:
        result = ok(bootstrap(database), 3)
        assert (
            "alter role authenticator set pgrst.db_pre_request to 'public.check_gateway_session';"
        ) in result.stderr
        assert "Supabase's SQL editor" in result.stderr
        assert "applied sql/migrations/0001_baseline.sql" in result.stdout
        with sql(database) as cur:  # everything else is there
            cur.execute("select count(*) from public.schema_migrations")
            assert cur.fetchone()[0] == len(catalog.migration_files()) + len(
                catalog.repeatable_files()
            )
            cur.execute("select to_regprocedure('public.check_gateway_session()') is not null")
            assert cur.fetchone()[0]
        check = ok(bootstrap(database, "--check"), 1)
        assert (
            "pre-request hook missing: authenticator lacks "
            "pgrst.db_pre_request=public.check_gateway_session"
        ) in check.stderr
        assert len([line for line in check.stderr.splitlines() if line.startswith("  - ")]) == 1
    finally:
        with superuser() as admin:
            admin.execute("grant set on parameter pgrst.db_pre_request to postgres")
        ok(bootstrap(dsn))  # sets the hook again and tells PostgREST to reload
    ok(bootstrap(database, "--check"))


# --------------------------------------------------------------------------------------
# Upgrade from the release before migrations
# --------------------------------------------------------------------------------------
def seed_like_the_old_release(dsn: str) -> None:
    rng = random.Random(11)
    with sql(dsn) as cur:
        cur.executemany(
            "insert into public.categories (id, name, description) values (%s,%s,%s)",
            [
                (1, "Food", "Groceries"),
                (2, "Transportation", None),
                (3, "Utilities", "Bills"),
                (4, "Entertainment", "Fun"),
            ],
        )
        cur.executemany(
            "insert into public.payment_methods (id, name) values (%s,%s)",
            [(1, "Cash"), (2, "Credit Card"), (3, "UPI")],
        )
        cur.executemany(
            "insert into public.users (id, name, email, password_hash) values (%s,%s,%s,%s)",
            [
                (1, "Alok", "alok@example.com", password_hash("password123")),
                (2, "Amol", "amol@example.com", password_hash("password123")),
                (3, "Noemail", None, password_hash("password123")),
            ],
        )
        rows = []
        for _ in range(600):
            rows.append(
                (
                    rng.choice([1, 1, 2, 3]),
                    rng.randint(1, 4),
                    rng.choice([1, 2, 3, None]),
                    f"{rng.randint(1, 500000) / 100:.2f}",
                    rng.choice(["lunch", None, "x"]),
                    f"{rng.choice([2024, 2025])}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                )
            )
        cur.executemany(
            "insert into public.expenses (user_id, category_id, payment_method_id, "
            "amount, description, date) values (%s,%s,%s,%s,%s,%s)",
            rows,
        )
        for table in ("categories", "payment_methods", "users"):
            cur.execute(
                f"select setval(pg_get_serial_sequence('public.{table}', 'id'), "
                f"(select max(id) from public.{table}))"
            )
        cur.execute("insert into public.revoked_tokens values ('jti-1', now() + interval '1 day')")
        cur.execute(
            "insert into public.idempotency_keys (user_id, key, request_hash, response, "
            "expires_at) values (1, 'k1', 'h', '{\"id\": 1}', now() + interval '1 day')"
        )
        cur.execute(
            "insert into public.rate_limits values ('login:x', 2, now() + interval '1 hour')"
        )
        cur.execute("insert into public.schema_bootstrap (id, sql_sha256) values (1, 'old')")


def test_upgrade_from_the_release_before_migrations_keeps_every_row(database, capsys):
    with sql(database) as cur:  # what 73f7ccd's bootstrap applied, as postgres
        for name in OLD_FILES:
            cur.execute(old_release_sql(name))
    seed_like_the_old_release(database)
    old_columns = table_columns(database)
    rows_before = snapshot_rows(database, old_columns)
    privileges_before = privilege_table(database)
    summary_before = privilege_summary(database)
    with sql(database) as cur:
        cur.execute(
            "select public.get_yearly_dashboard(1, 2025)::text, "
            "public.get_monthly_dashboard(1, 2024, 3)::text"
        )
        dashboards_before = cur.fetchone()
    assert ok(bootstrap(database, "--check"), 1)

    upgraded = ok(bootstrap(database))
    assert (
        "recognised a database made by the release before versioned migrations" in upgraded.stdout
    )
    assert "baselined sql/migrations/0001_baseline.sql" in upgraded.stdout
    ok(bootstrap(database, "--check"))

    # migration 0002 (issue 12) adds expenses.created_by, back-filled with the owner
    with sql(database) as cur:
        cur.execute(
            "select count(*) from public.expenses where created_by is distinct from user_id"
        )
        assert cur.fetchone()[0] == 0
    assert (
        snapshot_rows(database, old_columns) == rows_before
    )  # every row, the totals table included
    with sql(database) as cur:
        cur.execute(
            "select public.get_yearly_dashboard(1, 2025)::text, "
            "public.get_monthly_dashboard(1, 2024, 3)::text"
        )
        assert cur.fetchone() == dashboards_before
        cur.execute("select count(*) from public.expense_totals_drift()")
        assert cur.fetchone()[0] == 0
        cur.execute(
            "select version, applied_by from public.schema_migrations "
            "where version <> 'R' order by version"
        )
        later = [(m.version, "postgres") for m in catalog.migration_files() if m.version != "0001"]
        assert cur.fetchall() == [("0001", "postgres (baseline)"), *later]  # later ones ran
    assert json.loads(dashboards_before[0])["total_spent"] > 0
    privileges_after = privilege_table(database)
    assert privileges_after != privileges_before
    with sql(database) as cur:
        assert catalog.read_privileges(cur) == catalog.allowed_privileges()
    with capsys.disabled():
        counts = ", ".join(f"{t} {len(r)}" for t, r in rows_before.items())
        print(f"\n[upgrade] rows before = after: {counts}")
        print(f"[upgrade] privileges before: {summary_before}")
        print(f"[upgrade] privileges after:  {privilege_summary(database)}")
        for role in ("public", "anon", "authenticated"):
            print(f"[upgrade] {role} before: {json.dumps(privileges_before.get(role, {}))}")
            print(f"[upgrade] {role} after:  {json.dumps(privileges_after.get(role, {}))}")


# --------------------------------------------------------------------------------------
# Upgrade from the release before the repeatable files were regrouped by domain
# --------------------------------------------------------------------------------------
# The last release whose repeatable files were named by history (supabase_schema.sql,
# supabase_functions.sql, login_canonical.sql, gateway_functions.sql, expense_changes.sql;
# order in its schema.REPEATABLE_ORDER): its ledger holds rows for those names.
PRE_REGROUP_RELEASE = "288a48d"
PRE_REGROUP_FILES = (
    "supabase_schema.sql",
    "supabase_functions.sql",
    "login_canonical.sql",
    "gateway_functions.sql",
    "expense_changes.sql",
)


def release_tree(commit: str, target: Path) -> Path:
    """The files of `commit` its schema runner needs: schema.py, config.py, the bootstrap
    script and sql/ (read from git, so the test runs that release's own runner)."""
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", commit, "--", "schema.py", "config.py"]
        + ["scripts/bootstrap_schema.py", "sql"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in names:
        content = subprocess.run(
            ["git", "show", f"{commit}:{name}"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(content)
    return target


def bootstrap_with_release(tree: Path, dsn: str) -> subprocess.CompletedProcess:
    """That release's scripts/bootstrap_schema.py, importing its own schema.py."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "scripts/bootstrap_schema.py", "--database-url", dsn],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def repeatable_ledger(dsn: str) -> dict[str, str]:
    with sql(dsn) as cur:
        cur.execute(
            "select name, sha256 from public.schema_migrations where version = %s",
            (catalog.REPEATABLE_VERSION,),
        )
        return dict(cur.fetchall())


def audit_rows(dsn: str) -> list[tuple]:
    with sql(dsn) as cur:
        cur.execute("select id, actor_id, action, target_id from public.audit_log order by id")
        return cur.fetchall()


def test_upgrade_from_the_release_before_the_sql_regroup(database, tmp_path):
    old = release_tree(PRE_REGROUP_RELEASE, tmp_path / "release")
    assert sorted(p.name for p in (old / "sql").glob("*.sql")) == sorted(PRE_REGROUP_FILES)
    ok(bootstrap_with_release(old, database))
    assert repeatable_ledger(database).keys() == set(PRE_REGROUP_FILES)
    seed_like_the_old_release(database)
    with sql(database) as cur:  # an audit row and an invite, as that release writes them
        cur.execute("select public.record_login(1, true)")
        cur.execute(
            "insert into public.invites (code_sha256, expires_at) "
            "values (repeat('a', 64), now() + interval '1 day')"
        )
        cur.execute(
            "select public.get_yearly_dashboard(1, 2025)::text, "
            "public.get_monthly_dashboard(1, 2024, 3)::text"
        )
        dashboards_before = cur.fetchone()
    columns = table_columns(database)
    rows_before = snapshot_rows(database, columns)
    audit_before = audit_rows(database)
    migrations_before = [row for row in snapshot_ledger(database) if row[0] != "R"]

    # before the upgrade: the ledger names files sql/ no longer has, and the new ones are
    # not applied yet; nothing else differs but what later issues changed in sql/ (their
    # migrations, and the columns, functions and triggers those brought)
    check = ok(bootstrap(database, "--check"), 1)
    problems = [line[4:] for line in check.stderr.splitlines() if line.startswith("  - ")]
    renames = sorted(
        [
            f"sql/{name} is recorded as applied but no longer exists (removed or renamed; the "
            f"apply re-applies the repeatable files and deletes its ledger row)"
            for name in PRE_REGROUP_FILES
        ]
        + [
            f"sql/{r.name} not applied yet (a new or renamed repeatable file)"
            for r in catalog.repeatable_files()
        ]
    )
    assert set(renames) <= set(problems), check.stderr
    later = re.compile(
        r"migration sql/migrations/\d{4}_\w+\.sql not applied yet"
        r"|missing (table|sequence|column|function|trigger|constraint|policy) public\."
        r"|missing index \w+: CREATE (UNIQUE )?INDEX "
        r"|(missing )?trigger \w+ on public\."
        r"|(missing|extra) privilege: "
        r"|function public\..+ differs from its definition in sql/"
        # a later release gave a function more arguments: the apply drops the old overload
        r"|extra function public\.\w+\(.*\) \(an overload or a function sql/ does not define"
        r"|missing privilege: service_role EXECUTE on function public\.\w+\("
        # issue 22: record_login's old overload (R31_auth_sessions.sql drops it)
        r"|extra (function|privilege: service_role EXECUTE on function) "
        r"public\.record_login\(bigint,boolean\)"
        # issue 23's bulk writes: the per-row totals trigger was replaced by one statement
        # trigger per event (R50_dashboards.sql drops it, in the apply's transaction)
        r"|extra trigger expenses_totals_sync on public\.expenses "
    )
    assert all(later.match(p) for p in set(problems) - set(renames)), check.stderr
    dry = ok(bootstrap(database, "--dry-run"))
    assert "would re-apply the repeatable files" in dry.stdout
    assert "sql/gateway_functions.sql no longer exists (its ledger row goes)" in dry.stdout

    upgraded = ok(bootstrap(database))
    assert "applied the repeatable files (sql/R10_roles_privileges.sql" in upgraded.stdout
    # the regroup moved functions and grants: none is dropped, nothing revoked (but an
    # older overload of a function a later release changed the arguments of)
    dropped = re.findall(r"dropped function public\.(\w+)\(", upgraded.stdout)
    with sql(database) as cur:
        cur.execute("select proname from pg_proc where pronamespace = 'public'::regnamespace")
        still_defined = {row[0] for row in cur.fetchall()}
    # (issue 23's bulk writes replaced the per-row totals trigger's function with one per
    # event, so that one is dropped, not moved)
    assert set(dropped) - {"expense_totals_sync"} <= still_defined, upgraded.stdout
    assert "expense_totals_sync" in dropped
    assert "\n  revoked " not in upgraded.stdout, upgraded.stdout
    ok(bootstrap(database, "--check"))

    # the ledger: one row per current file with its checksum, none for the old names, and
    # the migrations' rows untouched
    assert repeatable_ledger(database) == {r.name: r.sha256 for r in catalog.repeatable_files()}
    migrations_after = [row for row in snapshot_ledger(database) if row[0] != "R"]
    assert migrations_after[: len(migrations_before)] == migrations_before  # newer ones follow
    # every row kept, the dashboards unchanged, the totals exact
    assert snapshot_rows(database, columns) == rows_before
    assert audit_rows(database) == audit_before
    with sql(database) as cur:
        cur.execute(
            "select public.get_yearly_dashboard(1, 2025)::text, "
            "public.get_monthly_dashboard(1, 2024, 3)::text"
        )
        assert cur.fetchone() == dashboards_before
        cur.execute("select count(*) from public.expense_totals_drift()")
        assert cur.fetchone()[0] == 0
        cur.execute("select count(*) from public.invites")
        assert cur.fetchone()[0] == 1
        assert catalog.read_privileges(cur) == catalog.allowed_privileges()
    assert migrate.ensure_schema(database) == []  # a later start-up has nothing to do


def test_a_renamed_or_removed_repeatable_file_leaves_no_ledger_row(database, sql_copy, monkeypatch):
    ok(bootstrap(database, sql_dir=sql_copy))
    # a file that defines one function, applied and then removed with nothing else changed
    (sql_copy / "R99_scratch.sql").write_text(
        "create or replace function public.scratch_r99() returns int language sql "
        "as 'select 1';\nrevoke all on function public.scratch_r99() "
        "from public, anon, authenticated, service_role;\n"
    )
    ok(bootstrap(database, sql_dir=sql_copy))
    assert "R99_scratch.sql" in repeatable_ledger(database)
    (sql_copy / "R99_scratch.sql").unlink()
    check = ok(bootstrap(database, "--check", sql_dir=sql_copy), 1)
    assert "sql/R99_scratch.sql is recorded as applied but no longer exists" in check.stderr
    # the app's start-up sees it from the ledger alone, and the apply drops what it defined
    monkeypatch.setattr(catalog, "SQL_DIR", sql_copy)
    found = migrate.ensure_schema(database)
    assert any(p.startswith("sql/R99_scratch.sql is recorded as applied") for p in found)
    assert "R99_scratch.sql" not in repeatable_ledger(database)
    with sql(database) as cur:
        cur.execute("select to_regprocedure('public.scratch_r99()')")
        assert cur.fetchone()[0] is None
    assert migrate.ensure_schema(database) == []

    # a rename: the new name is recorded, the old one's row goes, in the same apply
    (sql_copy / "R60_rate_limits.sql").rename(sql_copy / "R65_rate_limits.sql")
    check = ok(bootstrap(database, "--check", sql_dir=sql_copy), 1)
    assert "sql/R65_rate_limits.sql not applied yet" in check.stderr
    assert "sql/R60_rate_limits.sql is recorded as applied but no longer exists" in check.stderr
    applied = ok(bootstrap(database, sql_dir=sql_copy))
    assert "dropped function" not in applied.stdout
    ledger = repeatable_ledger(database)
    assert "R65_rate_limits.sql" in ledger and "R60_rate_limits.sql" not in ledger
    ok(bootstrap(database, "--check", sql_dir=sql_copy))


def test_repeatable_files_run_in_file_name_order_and_must_say_where(tmp_path, monkeypatch):
    names = [r.name for r in catalog.repeatable_files()]
    assert names == sorted(names) and names[0] == "R10_roles_privileges.sql"
    (tmp_path / "R20_b.sql").write_text("select 2;\n")
    (tmp_path / "R05_a.sql").write_text("select 1;\n")
    monkeypatch.setattr(catalog, "SQL_DIR", tmp_path)
    assert [r.name for r in catalog.repeatable_files()] == ["R05_a.sql", "R20_b.sql"]
    (tmp_path / "gateway_functions.sql").write_text("select 3;\n")
    with pytest.raises(catalog.SchemaRefused, match="sql/gateway_functions.sql: a repeatable"):
        catalog.repeatable_files()
