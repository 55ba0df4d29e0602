"""The schema bootstrap: versioned migrations and repeatable files applied to a database.

`sql/migrations/NNNN_short_name.sql` hold tables, columns, constraints and indexes. Each is
applied once, in order, in its own transaction, and recorded in the ledger
`public.schema_migrations (version, name, sha256, applied_at, applied_by)`. An applied
migration whose file changed (or vanished) is refused before anything runs.

The repeatable files (`sql/RNN_*.sql`, in file-name order: roles, grants, RLS, policies,
functions, triggers) are re-applied together, in one transaction, whenever one of them
changed, was added or was removed (a rename is both), a migration ran, or the database
drifted from them; in that same transaction their ledger rows are rewritten (the rows of
files sql/ no longer has are deleted), every function of `public` that they did not
(re)create is dropped (an old overload, a function sql/ no longer defines), and every
privilege of anon/authenticated/service_role/PUBLIC beyond the allow-list
`sql/privileges.txt` is revoked. PostgREST's pre-request hook is set last, on its own: when
the database refuses it (hosted Supabase without supautils' permission) everything else
stays applied and the caller gets the one statement an admin must run by hand.

`ensure_schema` is what a worker runs at start-up (background.py): apply only when the
ledger, privileges, hook or totals say so. Everything here is synchronous psycopg2: the
app calls it from a thread. Importing this module performs no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from catalog import (
    PRE_REQUEST_ROLE,
    PRE_REQUEST_SETTING,
    PRE_REQUEST_SQL,
    REPEATABLE_VERSION,
    Privilege,
    SchemaRefused,
    SqlFile,
    allowed_privileges,
    compare_privileges,
    hook_is_set,
    migration_files,
    public_tables,
    read_ledger,
    read_privileges,
    repeatable_files,
    totals_drift,
)
from database import connect

__all__ = ["MigrationFailed", "SchemaRefused", "apply_schema", "ensure_schema", "quick_status"]

log = logging.getLogger("ffb.schema")
APPLICATION_NAME = "ffb-bootstrap"  # in pg_stat_activity

# The tables of migration 0001: all of them present and no ledger = a database made by the
# release before versioned migrations (commit 73f7ccd), baselined instead of re-created.
BASELINE_TABLES = (
    "users",
    "categories",
    "payment_methods",
    "expenses",
    "expense_monthly_totals",
    "revoked_tokens",
    "idempotency_keys",
    "rate_limits",
    "schema_bootstrap",
)
ADVISORY_LOCK_ID = 4_242_001  # serialises concurrent bootstraps (several workers start at once)
TRANSACTION_POOLER = (
    "DATABASE_URL goes through a transaction pooler (one connection, several database "
    "sessions), where the bootstrap's session lock would outlive it on a pooled backend; "
    "bootstrap through the session pooler (Supabase: port 5432) or the direct connection"
)

LEDGER_DDL = """
create table if not exists public.schema_migrations (
  version    text not null,
  name       text not null,
  sha256     text not null,
  applied_at timestamptz not null default now(),
  applied_by text not null default current_user,
  primary key (version, name)
);
alter table public.schema_migrations enable row level security;
revoke all on public.schema_migrations from public, anon, authenticated, service_role;
"""


class MigrationFailed(Exception):
    """A SQL file failed; its transaction was rolled back (exit 2)."""

    def __init__(self, what: str, error: psycopg2.Error):
        first = (error.pgerror or str(error)).strip().splitlines()
        super().__init__(
            f"{what} failed, its transaction was rolled back: "
            f"{first[0] if first else type(error).__name__}"
        )
        self.what = what


# --------------------------------------------------------------------------------------
# The plan: what an apply would do, from the ledger and the files alone
# --------------------------------------------------------------------------------------
@dataclass
class Plan:
    baseline: list[SqlFile]  # recorded as applied without running (earlier release)
    pending: list[SqlFile]  # migrations to run, in order
    changed: list[SqlFile]  # repeatable files changed (or never applied) since last applied
    ledger_exists: bool
    notes: list[str] = field(default_factory=list)
    # repeatable files the ledger records that sql/ no longer has (removed or renamed): the
    # apply of the others deletes their rows
    removed: list[str] = field(default_factory=list)
    unrecorded: set[str] = field(default_factory=set)  # names of changed without a ledger row


def make_plan(cur) -> Plan:
    """Compare the ledger with sql/. Raises SchemaRefused before anything could run."""
    migrations = migration_files()
    repeatables = repeatable_files()
    ledger = read_ledger(cur)
    applied = {key: sha for key, sha in (ledger or {}).items() if key[0] != REPEATABLE_VERSION}
    by_version = {m.version: m for m in migrations}
    for (version, name), sha in sorted(applied.items()):
        current = by_version.get(version)
        if current is None or current.name != name:
            raise SchemaRefused(
                f"sql/{name} was applied (ledger sha256 {sha}) but is no longer "
                f"in sql/migrations/: restore it; applied migrations are never "
                f"removed or renamed"
            )
        if current.sha256 != sha:
            raise SchemaRefused(
                f"sql/{name} was edited after it was applied: ledger sha256 "
                f"{sha}, file sha256 {current.sha256}. Never edit an applied "
                f"migration: restore it (git checkout) and put the change in "
                f"a new sql/migrations/NNNN_short_name.sql"
            )
    plan = Plan(
        baseline=[],
        pending=[m for m in migrations if (m.version, m.name) not in applied],
        changed=[],
        ledger_exists=ledger is not None,
    )
    if not applied and plan.pending and plan.pending[0].version == "0001":
        present = public_tables(cur) & set(BASELINE_TABLES)
        if present == set(BASELINE_TABLES):
            plan.baseline = [plan.pending.pop(0)]
            plan.notes.append(
                "recognised a database made by the release before versioned migrations "
                "(all tables of 0001 present, no ledger): baselining "
                f"sql/{plan.baseline[0].name} (recorded as applied, not run; nothing rewritten)"
            )
        elif present:
            missing = sorted(set(BASELINE_TABLES) - present)
            raise SchemaRefused(
                f"public has {len(present)} of the {len(BASELINE_TABLES)} tables of "
                f"sql/migrations/0001 but not {', '.join(missing)}: neither an empty database "
                f"nor one made by an earlier release of this app; nothing was changed"
            )
    if applied:
        newest = max(v for v, _ in applied)
        for m in plan.pending:
            if m.version < newest:
                plan.notes.append(
                    f"sql/{m.name} is older than the newest applied migration "
                    f"({newest}); it runs now (migrations merged out of order)"
                )
    recorded = {n: s for (v, n), s in (ledger or {}).items() if v == REPEATABLE_VERSION}
    plan.changed = [r for r in repeatables if recorded.get(r.name) != r.sha256]
    plan.unrecorded = {r.name for r in plan.changed if r.name not in recorded}
    plan.removed = sorted(recorded.keys() - {r.name for r in repeatables})
    return plan


# --------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------
@dataclass
class ApplyResult:
    done: list[str] = field(default_factory=list)  # what was changed, one line each
    hook_refused: bool = False


def enforce_privileges(cur, allowed: set[Privilege]) -> list[Privilege]:
    """Revoke every privilege of PUBLIC/anon/authenticated/service_role beyond the allow-list
    (e.g. what hosted Supabase's default privileges granted on a new object)."""
    extra = sorted(read_privileges(cur) - allowed, key=str)
    for p in extra:
        # object names come from the catalogs (regclass/regprocedure output, already quoted)
        if p.kind == "column":
            table, _, column = p.object.rpartition(".")
            target = f"{p.privilege} ({column}) on table {table}"
        else:
            keyword = "table" if p.kind == "view" else p.kind
            target = f"{p.privilege} on {keyword} {p.object}"
        cur.execute(f"revoke {target} from {p.grantee}")
    return extra


def run_file(cur, sql_file: SqlFile) -> None:
    try:
        cur.execute(sql_file.text)
    except psycopg2.Error as exc:
        raise MigrationFailed(f"sql/{sql_file.name}", exc) from None


# which of two connections runs each probing transaction: irregular, so that no pool order
# (last-in-first-out as pgbouncer, first-in-first-out, round robin) can keep handing each
# connection the same backend by chance
SESSION_PROBE_ORDER = (0, 1, 1, 0, 0, 1, 0, 1)


def keeps_its_session(dsn: str) -> bool:
    """Whether a connection to dsn keeps one database session across its transactions.

    A transaction pooler (Supavisor on 6543, pgbouncer in transaction mode) gives each
    transaction whichever backend is free: two client connections, used in turn, then see
    the same backend, or one sees several. Directly or through a session pooler each
    keeps a backend of its own for as long as it is open. No session state is left behind."""
    with (
        connect(dsn, application_name=APPLICATION_NAME, autocommit=True) as one,
        connect(dsn, application_name=APPLICATION_NAME, autocommit=True) as two,
    ):
        seen: dict[int, set[int]] = {0: set(), 1: set()}
        for index in SESSION_PROBE_ORDER:
            with (one, two)[index].cursor() as cur:
                cur.execute("select pg_backend_pid()")
                seen[index].add(cur.fetchone()[0])
    return len(seen[0]) == 1 and len(seen[1]) == 1 and seen[0] != seen[1]


def apply_schema(
    dsn: str, progress: Callable[[str], None] = lambda message: None, reapply: bool = False
) -> ApplyResult:
    """Bring the database to what sql/ defines. Serialised by an advisory lock, so several
    workers starting at once apply it once. `reapply` forces the repeatable files even
    when unchanged (used when the check found the database drifted from them).

    The lock is a session lock held across several commits, so a connection that does
    not keep its session (a transaction pooler) is refused at once, before anything is
    locked or changed: SchemaRefused naming the session pooler."""
    if not keeps_its_session(dsn):
        raise SchemaRefused(TRANSACTION_POOLER)
    result = ApplyResult()
    allowed = allowed_privileges()

    def done(message: str) -> None:
        result.done.append(message)
        progress(message)

    with connect(dsn, application_name=APPLICATION_NAME) as conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
        conn.commit()
        try:
            plan = make_plan(cur)  # refuses (edited migration, ...) before anything runs
            cur.execute(LEDGER_DDL)
            conn.commit()
            for note in plan.notes:
                progress(note)
            for m in plan.baseline:
                cur.execute(
                    "insert into public.schema_migrations (version, name, sha256, "
                    "applied_by) values (%s, %s, %s, current_user || ' (baseline)')",
                    (m.version, m.name, m.sha256),
                )
                conn.commit()
                done(f"baselined sql/{m.name}")
            for m in plan.pending:
                progress(f"applying sql/{m.name}")
                try:
                    run_file(cur, m)
                    _refuse_functions(cur, m)
                    enforce_privileges(cur, allowed)
                    cur.execute(
                        "insert into public.schema_migrations (version, name, sha256) "
                        "values (%s, %s, %s)",
                        (m.version, m.name, m.sha256),
                    )
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
                done(f"applied sql/{m.name}")
            missing_privileges = allowed - read_privileges(cur)
            conn.commit()
            if (
                plan.pending
                or plan.baseline
                or plan.changed
                or plan.removed
                or reapply
                or missing_privileges
            ):
                _apply_repeatables(conn, cur, allowed, progress, done)
            else:
                extra = enforce_privileges(cur, allowed)
                conn.commit()
                for p in extra:
                    done(f"revoked {p} (not in sql/privileges.txt)")
            if not hook_is_set(cur):
                try:
                    cur.execute(PRE_REQUEST_SQL)
                    conn.commit()
                    done(f"set PostgREST's pre-request hook ({PRE_REQUEST_SETTING})")
                except psycopg2.errors.InsufficientPrivilege:
                    conn.rollback()
                    result.hook_refused = True
                    progress(
                        "setting the pre-request hook was refused (permission denied); "
                        "everything else is applied"
                    )
            conn.commit()
            drift = totals_drift(cur)
            if drift:
                progress("expense_monthly_totals drifted from expenses: rebuilding it")
                cur.execute("select public.rebuild_expense_monthly_totals()")
                done(f"rebuilt expense_monthly_totals ({drift} groups had drifted)")
            cur.execute("notify pgrst, 'reload schema'")
            cur.execute("notify pgrst, 'reload config'")
            conn.commit()
        finally:
            try:
                conn.rollback()
                cur.execute("select pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
                conn.commit()
            except psycopg2.Error:
                pass  # connection lost: the session lock went with it
    return result


def _apply_repeatables(conn, cur, allowed, progress, done) -> None:
    """Every repeatable file, stale functions dropped, privileges trimmed: one transaction."""
    try:
        for r in repeatable_files():
            progress(f"applying sql/{r.name}")
            run_file(cur, r)
        # A function of public that this transaction did not (re)create is one sql/ no longer
        # defines: CREATE OR REPLACE rewrites the catalog row, so its xmin is ours.
        cur.execute("set local search_path = pg_catalog")
        cur.execute("""
            select p.oid::regprocedure::text from pg_proc p
             where p.pronamespace = 'public'::regnamespace
               and p.xmin <> pg_current_xact_id()::xid
               and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass
                                  and d.objid = p.oid and d.deptype = 'e')
             order by 1""")
        stale = [r[0] for r in cur.fetchall()]
        for signature in stale:
            try:
                cur.execute(f"drop {_routine_keyword(cur, signature)} {signature}")
            except psycopg2.Error as exc:
                raise MigrationFailed(
                    f"dropping {signature} (sql/ no longer defines it)", exc
                ) from None
        extra = enforce_privileges(cur, allowed)
        for r in repeatable_files():
            cur.execute(
                "insert into public.schema_migrations (version, name, sha256) "
                "values (%s, %s, %s) on conflict (version, name) do update "
                "set sha256 = excluded.sha256, applied_at = now(), "
                "applied_by = current_user",
                (r.version, r.name, r.sha256),
            )
        # a repeatable file removed from sql/ (or renamed) is no longer applied: its row goes
        cur.execute(
            "delete from public.schema_migrations where version = %s and name <> all(%s)",
            (REPEATABLE_VERSION, [r.name for r in repeatable_files()]),
        )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    done(
        "applied the repeatable files ("
        + ", ".join(f"sql/{r.name}" for r in repeatable_files())
        + ")"
    )
    for signature in stale:
        done(f"dropped function {signature} (sql/ no longer defines it)")
    for p in extra:
        done(f"revoked {p} (not in sql/privileges.txt)")


def _touched_functions(cur) -> list[str]:
    """Functions of public created or changed by the current transaction."""
    cur.execute("set local search_path = pg_catalog")
    cur.execute("""
        select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace = 'public'::regnamespace
           and p.xmin = pg_current_xact_id()::xid order by 1""")
    return [r[0] for r in cur.fetchall()]


def _refuse_functions(cur, migration: SqlFile) -> None:
    """A migration runs once, and the repeatable files' apply drops every function they do
    not define: a function created in a migration would vanish at the next apply."""
    functions = _touched_functions(cur)
    if functions:
        raise MigrationFailed(
            f"sql/{migration.name}",
            psycopg2.ProgrammingError(
                f"it creates or changes {', '.join(functions)}: functions (and their grants, "
                f"triggers, policies) belong in the repeatable files sql/*.sql"
            ),
        )


def _routine_keyword(cur, signature: str) -> str:
    cur.execute("select prokind from pg_proc where oid = %s::regprocedure", (signature,))
    return {"p": "procedure", "a": "aggregate"}.get(cur.fetchone()[0], "function")


def ledger_problems(plan: Plan) -> list[str]:
    problems = [f"migration sql/{m.name} not applied yet" for m in plan.pending]
    problems += [
        f"migration sql/{m.name} not recorded in the ledger (earlier release: the "
        f"apply baselines it)"
        for m in plan.baseline
    ]
    problems += [
        f"sql/{r.name} not recorded as applied"
        if not plan.ledger_exists
        else f"sql/{r.name} not applied yet (a new or renamed repeatable file)"
        if r.name in plan.unrecorded
        else f"sql/{r.name} changed since it was last applied"
        for r in plan.changed
    ]
    problems += [
        f"sql/{name} is recorded as applied but no longer exists (removed or renamed; the "
        f"apply re-applies the repeatable files and deletes its ledger row)"
        for name in plan.removed
    ]
    return problems


def hook_problem() -> str:
    return (
        f"pre-request hook missing: {PRE_REQUEST_ROLE} lacks {PRE_REQUEST_SETTING} "
        f"(logged-out tokens stay valid); run in Supabase's SQL editor: {PRE_REQUEST_SQL}"
    )


# --------------------------------------------------------------------------------------
# Start-up
# --------------------------------------------------------------------------------------
def quick_status(dsn: str) -> list[str]:
    """What start-up looks at (no scratch database): the ledger, privileges against the
    allow-list, the hook and the totals. Empty when nothing has to be done."""
    with connect(dsn, application_name=APPLICATION_NAME) as conn, conn.cursor() as cur:
        plan = make_plan(cur)
        problems = ledger_problems(plan)
        if plan.ledger_exists:
            problems += compare_privileges(read_privileges(cur), allowed_privileges())
        if not hook_is_set(cur):
            problems.append(hook_problem())
        drift = totals_drift(cur)
        if drift:
            problems.append(f"expense_monthly_totals differs from expenses in {drift} groups")
        conn.rollback()
    return problems


def ensure_schema(dsn: str) -> list[str]:
    """Start-up: apply only when the ledger, privileges, hook or totals say so. Returns what
    was found (empty when nothing had to be done)."""
    problems = quick_status(dsn)
    if not problems:
        return []
    result = apply_schema(dsn)
    if result.hook_refused:
        log.warning(
            "PostgREST pre-request hook could not be set (permission denied); "
            "an admin must run in Supabase's SQL editor: %s",
            PRE_REQUEST_SQL,
        )
    return problems
