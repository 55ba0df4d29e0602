"""The schema bootstrap: versioned migrations, repeatable files and the drift check.

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

`inspect_schema` (the admins' `--check`) compares the catalogs with what sql/ defines. To
know that exactly, it builds sql/ in a scratch database (CREATE DATABASE from template0,
which the role `postgres` may do on hosted Supabase), reads it with the same catalog
queries, and drops it: no hand-kept list of expected objects can fall behind the SQL.

Everything here is synchronous psycopg2: the app calls it from a thread. Importing this
module performs no I/O.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

log = logging.getLogger("ffb.schema")

# sql/ of this checkout; `use_sql_dir` points the bootstrap at another (tests, --sql-dir)
SQL_DIR = Path(__file__).resolve().parent / "sql"
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Repeatable files run in file-name order, which their number prefix sets (sql/README.md).
REPEATABLE_FILE = re.compile(r"^R(\d{2})_([a-z0-9_]+)\.sql$")
REPEATABLE_VERSION = "R"  # ledger rows of repeatable files carry this version

PRE_REQUEST_ROLE = "authenticator"
PRE_REQUEST_FUNCTION = "public.check_gateway_session"
PRE_REQUEST_SETTING = f"pgrst.db_pre_request={PRE_REQUEST_FUNCTION}"
PRE_REQUEST_SQL = (
    f"alter role {PRE_REQUEST_ROLE} set pgrst.db_pre_request to '{PRE_REQUEST_FUNCTION}';"
)

API_ROLES = ("anon", "authenticated", "service_role")
GRANTEES = ("public",) + API_ROLES  # PUBLIC counts: every role inherits it
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


class SchemaRefused(Exception):
    """The bootstrap will not touch this database (exit 4): an applied migration was
    edited or removed, two migrations share a number, or public is half-populated."""


class MigrationFailed(Exception):
    """A SQL file failed; its transaction was rolled back (exit 2)."""

    def __init__(self, what: str, error: psycopg2.Error):
        first = (error.pgerror or str(error)).strip().splitlines()
        super().__init__(
            f"{what} failed, its transaction was rolled back: "
            f"{first[0] if first else type(error).__name__}"
        )
        self.what = what


class ReferenceUnavailable(Exception):
    """The scratch database for `--check` could not be created (exit 2)."""


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SqlFile:
    name: str  # path relative to sql/, e.g. "migrations/0001_baseline.sql"
    version: str  # "0001"… for migrations, "R" for repeatable files
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def use_sql_dir(path: Path) -> None:
    global SQL_DIR
    SQL_DIR = Path(path).resolve()


def migration_files() -> list[SqlFile]:
    files: dict[str, SqlFile] = {}
    for path in sorted((SQL_DIR / "migrations").glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise SchemaRefused(
                f"sql/migrations/{path.name}: a migration is named "
                f"NNNN_short_name.sql (4 digits, lower-case words)"
            )
        version = match.group(1)
        if version in files:
            raise SchemaRefused(
                f"two migrations numbered {version}: "
                f"sql/{files[version].name} and sql/migrations/{path.name}"
            )
        files[version] = SqlFile(f"migrations/{path.name}", version, path.read_text())
    return [files[v] for v in sorted(files)]


def repeatable_files() -> list[SqlFile]:
    """sql/RNN_name.sql in file-name order: a file runs after those it depends on."""
    names = sorted(p.name for p in SQL_DIR.glob("*.sql"))
    for name in names:
        if not REPEATABLE_FILE.match(name):
            raise SchemaRefused(
                f"sql/{name}: a repeatable file is named RNN_short_name.sql (R, 2 digits "
                f"that set its place in the apply order, lower-case words)"
            )
    return [SqlFile(n, REPEATABLE_VERSION, (SQL_DIR / n).read_text()) for n in names]


@dataclass(frozen=True)
class Privilege:
    grantee: str  # public, anon, authenticated, service_role
    kind: str  # table, view, sequence, function, column
    object: str  # as Postgres prints it with search_path=pg_catalog
    privilege: str  # SELECT, INSERT, ..., EXECUTE

    def __str__(self) -> str:
        return f"{self.grantee} {self.privilege} on {self.kind} {self.object}"


def allowed_privileges() -> set[Privilege]:
    """sql/privileges.txt: `grantee kind object PRIV[,PRIV...]` per line, # comments."""
    allowed: set[Privilege] = set()
    for number, raw in enumerate((SQL_DIR / "privileges.txt").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if (
            len(parts) < 4
            or parts[0] not in GRANTEES
            or parts[1] not in ("table", "view", "sequence", "function", "column")
        ):
            raise SchemaRefused(
                f"sql/privileges.txt line {number}: expected "
                f"`grantee kind object PRIVILEGES`, got {raw.strip()!r}"
            )
        obj = " ".join(parts[2:-1])
        for priv in parts[-1].split(","):
            allowed.add(Privilege(parts[0], parts[1], obj, priv.strip().upper()))
    return allowed


# --------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------
@contextmanager
def connect(dsn: str, timeout: int = 5, autocommit: bool = False) -> Iterator[Any]:
    """A psycopg2 connection that is always closed (transactions are the caller's)."""
    conn = psycopg2.connect(dsn, connect_timeout=timeout, application_name="ffb-bootstrap")
    conn.autocommit = autocommit
    try:
        yield conn
    finally:
        conn.close()


def check_postgres(dsn: str) -> None:
    """Readiness: Postgres answers a query."""
    with connect(dsn, timeout=2) as conn, conn.cursor() as cur:
        cur.execute("select 1")


# --------------------------------------------------------------------------------------
# Catalog reads (the same queries on the target and on the scratch reference)
# --------------------------------------------------------------------------------------
# Every name comes out schema-qualified: the queries run with search_path = pg_catalog.
_SNAPSHOT_QUERIES = {
    "table": """
        select c.oid::regclass::text, case c.relkind when 'p' then 'partitioned table'
               when 'f' then 'foreign table' else 'table' end
          from pg_class c where c.relnamespace = 'public'::regnamespace
           and c.relkind in ('r', 'p', 'f')""",
    "view": """
        select c.oid::regclass::text, md5(pg_get_viewdef(c.oid))
          from pg_class c where c.relnamespace = 'public'::regnamespace
           and c.relkind in ('v', 'm')""",
    "column": """
        select c.oid::regclass::text || '.' || quote_ident(a.attname),
               format_type(a.atttypid, a.atttypmod)
               || case when a.attnotnull then ' not null' else '' end
               || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
               || case a.attidentity when 'a' then ' generated always as identity'
                                     when 'd' then ' generated by default as identity'
                                     else '' end
               || case when a.attgenerated = 's' then ' (generated)' else '' end
          from pg_class c
          join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
          left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
         where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'f', 'v', 'm')""",
    "constraint": """
        select conrelid::regclass::text || '.' || quote_ident(conname),
               pg_get_constraintdef(oid)
          from pg_constraint
         where connamespace = 'public'::regnamespace and conrelid <> 0""",
    "index": """
        select quote_ident(ic.relname), pg_get_indexdef(i.indexrelid)
          from pg_index i
          join pg_class ic on ic.oid = i.indexrelid
         where ic.relnamespace = 'public'::regnamespace
           and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid
                                                           and k.conrelid = i.indrelid)""",
    "function": """
        select p.oid::regprocedure::text,
               case when p.prokind in ('f', 'p') then md5(pg_get_functiondef(p.oid))
                    else p.prokind::text end
          from pg_proc p
         where p.pronamespace = 'public'::regnamespace
           and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass
                              and d.objid = p.oid and d.deptype = 'e')""",
    "trigger": """
        select quote_ident(t.tgname) || ' on ' || t.tgrelid::regclass::text,
               pg_get_triggerdef(t.oid)
               || case t.tgenabled when 'D' then ' (disabled)' else '' end
          from pg_trigger t join pg_class c on c.oid = t.tgrelid
         where c.relnamespace = 'public'::regnamespace and not t.tgisinternal""",
    "rls": """
        select c.oid::regclass::text,
               case when c.relrowsecurity then 'enabled' else 'disabled' end
               || case when c.relforcerowsecurity then ', forced' else '' end
          from pg_class c where c.relnamespace = 'public'::regnamespace
           and c.relkind in ('r', 'p')""",
    "policy": """
        select quote_ident(p.polname) || ' on ' || p.polrelid::regclass::text,
               concat_ws(' ', case when p.polpermissive then 'permissive' else 'restrictive' end,
                 'for', case p.polcmd when 'r' then 'select' when 'a' then 'insert'
                   when 'w' then 'update' when 'd' then 'delete' else 'all' end,
                 'to', (select string_agg(case when r = 0 then 'public'
                                           else pg_get_userbyid(r)::text end, ', ' order by 1)
                          from unnest(p.polroles) r),
                 'using (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                 'with check (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')')
          from pg_policy p join pg_class c on c.oid = p.polrelid
         where c.relnamespace = 'public'::regnamespace""",
    "sequence": """
        select s.seqrelid::regclass::text,
               format('%s increment %s start %s', format_type(s.seqtypid, null),
                      s.seqincrement, s.seqstart)
          from pg_sequence s join pg_class c on c.oid = s.seqrelid
         where c.relnamespace = 'public'::regnamespace""",
    "type": """
        select t.oid::regtype::text,
               case t.typtype when 'e' then 'enum ' || (select string_agg(quote_literal(e.enumlabel),
                                                       ', ' order by e.enumsortorder)
                                                       from pg_enum e where e.enumtypid = t.oid)
                    when 'd' then 'domain ' || format_type(t.typbasetype, t.typtypmod)
                    else 'type ' || t.typtype::text end
          from pg_type t
         where t.typnamespace = 'public'::regnamespace and t.typtype in ('e', 'd')""",
}

_PRIVILEGES_QUERY = """
    with objects as (
      select case when c.relkind in ('v', 'm') then 'view' when c.relkind = 'S' then 'sequence'
                  else 'table' end as kind,
             c.oid::regclass::text as object,
             coalesce(c.relacl, acldefault((case when c.relkind = 'S' then 's' else 'r' end)::"char",
                                           c.relowner)) as acl
        from pg_class c
       where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'f', 'v', 'm', 'S')
      union all
      select 'column', c.oid::regclass::text || '.' || quote_ident(a.attname), a.attacl
        from pg_class c join pg_attribute a on a.attrelid = c.oid
       where c.relnamespace = 'public'::regnamespace and a.attacl is not null
         and a.attnum > 0 and not a.attisdropped
      union all
      select 'function', p.oid::regprocedure::text, coalesce(p.proacl, acldefault('f'::"char", p.proowner))
        from pg_proc p
       where p.pronamespace = 'public'::regnamespace
         and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass
                            and d.objid = p.oid and d.deptype = 'e')
    )
    select case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee)::text end,
           o.kind, o.object, a.privilege_type
      from objects o, aclexplode(o.acl) a
     where a.grantee = 0 or pg_get_userbyid(a.grantee) in ('anon', 'authenticated', 'service_role')
"""

Snapshot = dict[str, dict[str, str]]


def read_snapshot(cur) -> Snapshot:
    cur.execute("set local search_path = pg_catalog")
    snapshot: Snapshot = {}
    for kind, query in _SNAPSHOT_QUERIES.items():
        cur.execute(query)
        snapshot[kind] = dict(cur.fetchall())
    return snapshot


def read_privileges(cur) -> set[Privilege]:
    cur.execute("set local search_path = pg_catalog")
    cur.execute(_PRIVILEGES_QUERY)
    return {Privilege(*row) for row in cur.fetchall()}


def hook_is_set(cur) -> bool:
    cur.execute(
        """
        select exists (select 1 from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                        where r.rolname = %s and %s = any(s.setconfig)
                          and s.setdatabase in (0, (select oid from pg_database
                                                     where datname = current_database())))""",
        (PRE_REQUEST_ROLE, PRE_REQUEST_SETTING),
    )
    return bool(cur.fetchone()[0])


def public_tables(cur) -> set[str]:
    cur.execute(
        "select relname from pg_class where relnamespace = 'public'::regnamespace "
        "and relkind in ('r', 'p')"
    )
    return {r[0] for r in cur.fetchall()}


def read_ledger(cur) -> dict[tuple[str, str], str] | None:
    """(version, name) -> sha256 of everything applied; None when there is no ledger."""
    if "schema_migrations" not in public_tables(cur):
        return None
    cur.execute("select version, name, sha256 from public.schema_migrations")
    return {(v, n): s for v, n, s in cur.fetchall()}


def totals_drift(cur) -> int | None:
    cur.execute("select to_regprocedure('public.expense_totals_drift()') is not null")
    if not cur.fetchone()[0]:
        return None
    cur.execute("select count(*) from public.expense_totals_drift()")
    return cur.fetchone()[0]


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


def _run_file(cur, sql_file: SqlFile) -> None:
    try:
        cur.execute(sql_file.text)
    except psycopg2.Error as exc:
        raise MigrationFailed(f"sql/{sql_file.name}", exc) from None


def apply_schema(
    dsn: str, progress: Callable[[str], None] = lambda message: None, reapply: bool = False
) -> ApplyResult:
    """Bring the database to what sql/ defines. Serialised by an advisory lock, so several
    workers starting at once apply it once. `reapply` forces the repeatable files even
    when unchanged (used when the check found the database drifted from them)."""
    result = ApplyResult()
    allowed = allowed_privileges()

    def done(message: str) -> None:
        result.done.append(message)
        progress(message)

    with connect(dsn) as conn, conn.cursor() as cur:
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
                    _run_file(cur, m)
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
            _run_file(cur, r)
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


# --------------------------------------------------------------------------------------
# Check
# --------------------------------------------------------------------------------------
@dataclass
class SchemaReport:
    problems: list[str]  # every drift, one readable line each
    applied: list[tuple[str, str, str, str]]  # ledger: version, name, applied_at, applied_by
    counts: dict[str, int]  # objects of each kind found
    hook: bool
    totals_drift: int | None
    row_counts: dict[str, int] = field(default_factory=dict)
    plan: Plan | None = None

    def drift(self) -> list[str]:
        return self.problems

    @property
    def only_hook_missing(self) -> bool:
        return bool(self.problems) and all(
            p.startswith("pre-request hook missing") for p in self.problems
        )


def build_reference(dsn: str) -> Snapshot:
    """What sql/ defines: every migration and repeatable file applied to an empty scratch
    database (from template0), read with the same queries, rolled back and dropped."""
    name = f"ffb_schema_ref_{secrets.token_hex(6)}"
    try:
        with connect(dsn, autocommit=True) as admin, admin.cursor() as cur:
            cur.execute(f"create database {name} template template0")
    except psycopg2.OperationalError:
        raise
    except psycopg2.Error as exc:
        raise ReferenceUnavailable(
            f"cannot create the scratch database the check compares with "
            f"({(exc.pgerror or str(exc)).strip()}); the role needs CREATEDB, as `postgres` "
            f"has on hosted Supabase"
        ) from None
    try:
        ref_dsn = psycopg2.extensions.make_dsn(dsn, dbname=name)
        with connect(ref_dsn) as conn, conn.cursor() as cur:
            cur.execute(LEDGER_DDL)
            for f in migration_files() + repeatable_files():
                _run_file(cur, f)
            snapshot = read_snapshot(cur)
            conn.rollback()  # role-level side effects of the files (roles, memberships) too
        return snapshot
    finally:
        with connect(dsn, autocommit=True) as admin, admin.cursor() as cur:
            cur.execute(f"drop database if exists {name}")


LEDGER_PREFIX = "public.schema_migrations"  # the runner's own table, not sql/'s


def compare(actual: Snapshot, expected: Snapshot) -> list[str]:
    problems: list[str] = []
    for kind, wanted in expected.items():
        wanted = {k: v for k, v in wanted.items() if not k.startswith(LEDGER_PREFIX)}
        found = {k: v for k, v in actual.get(kind, {}).items() if not k.startswith(LEDGER_PREFIX)}
        for key in sorted(wanted.keys() - found.keys()):
            if kind == "rls":
                continue  # the table itself is reported missing
            hint = f": {wanted[key]}" if kind in ("index", "constraint", "column") else ""
            problems.append(f"missing {kind} {key}{hint}")
        for key in sorted(found.keys() - wanted.keys()):
            if kind == "rls":
                continue
            what = {
                "function": " (an overload or a function sql/ does not define; the apply drops it)"
            }.get(kind, " (sql/ does not define it)")
            problems.append(f"extra {kind} {key}{what}")
        for key in sorted(wanted.keys() & found.keys()):
            if wanted[key] == found[key]:
                continue
            if kind == "rls":
                problems.append(
                    f"RLS {found[key]} on {key} (sql/ has it {wanted[key]})"
                    if not found[key].startswith("disabled")
                    else f"RLS disabled on {key}"
                )
            elif kind in ("function", "view"):
                problems.append(f"{kind} {key} differs from its definition in sql/")
            else:
                problems.append(f"{kind} {key} is `{found[key]}`, sql/ defines `{wanted[key]}`")
    return problems


def compare_privileges(actual: set[Privilege], allowed: set[Privilege]) -> list[str]:
    problems = [
        f"extra privilege: {p} (not in sql/privileges.txt)"
        for p in sorted(actual - allowed, key=str)
    ]
    problems += [
        f"missing privilege: {p} (listed in sql/privileges.txt)"
        for p in sorted(allowed - actual, key=str)
    ]
    return problems


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


def inspect_schema(dsn: str, reference: Snapshot | None = None) -> SchemaReport:
    """Change nothing; report every difference from what sql/ defines."""
    expected = reference if reference is not None else build_reference(dsn)
    with connect(dsn) as conn, conn.cursor() as cur:
        plan = make_plan(cur)
        actual = read_snapshot(cur)
        privileges = read_privileges(cur)
        hook = hook_is_set(cur)
        drift = totals_drift(cur)
        applied: list[tuple[str, str, str, str]] = []
        if plan.ledger_exists:
            cur.execute(
                "select version, name, applied_at::text, applied_by "
                "from public.schema_migrations order by version, name"
            )
            applied = cur.fetchall()
        counts: dict[str, int] = {}
        tables = public_tables(cur)
        for table in ("users", "categories", "payment_methods", "expenses"):
            if table in tables:
                cur.execute(f"select count(*) from public.{table}")  # names from a constant
                counts[table] = cur.fetchone()[0]
        conn.rollback()
    problems = ledger_problems(plan) + compare(actual, expected)
    problems += compare_privileges(privileges, allowed_privileges())
    if not hook:
        problems.append(hook_problem())
    if drift:
        problems.append(
            f"expense_monthly_totals differs from expenses in {drift} "
            f"(user, month, category) groups"
        )
    return SchemaReport(
        problems=problems,
        applied=applied,
        counts={k: len(v) for k, v in actual.items()},
        hook=hook,
        totals_drift=drift,
        row_counts=counts,
        plan=plan,
    )


# --------------------------------------------------------------------------------------
# Start-up
# --------------------------------------------------------------------------------------
def quick_status(dsn: str) -> list[str]:
    """What start-up looks at (no scratch database): the ledger, privileges against the
    allow-list, the hook and the totals. Empty when nothing has to be done."""
    with connect(dsn) as conn, conn.cursor() as cur:
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


def dry_run(dsn: str) -> list[str]:
    """What an apply would do, one line each; changes nothing."""
    with connect(dsn) as conn, conn.cursor() as cur:
        plan = make_plan(cur)
        hook = hook_is_set(cur)
        drift = totals_drift(cur)
        conn.rollback()
    lines = list(plan.notes)
    lines += [f"baseline sql/{m.name} (record as applied, do not run)" for m in plan.baseline]
    lines += [f"apply sql/{m.name}" for m in plan.pending]
    report = inspect_schema(dsn)
    repeatable_drift = [
        p
        for p in report.problems
        if p.startswith(
            (
                "missing function",
                "extra function",
                "function ",
                "missing trigger",
                "trigger ",
                "missing policy",
                "extra policy",
                "policy ",
                "RLS ",
                "missing privilege",
                "missing view",
                "view ",
            )
        )
    ]
    if plan.pending or plan.baseline or plan.changed or plan.removed or repeatable_drift:
        why = (
            [
                f"sql/{r.name} {'is new' if r.name in plan.unrecorded else 'changed'}"
                for r in plan.changed
            ]
            + [f"sql/{name} no longer exists (its ledger row goes)" for name in plan.removed]
            + (["a migration runs"] if plan.pending or plan.baseline else [])
            + (["the database drifted from them"] if repeatable_drift else [])
        )
        lines.append(
            "re-apply the repeatable files ("
            + ", ".join(f"sql/{r.name}" for r in repeatable_files())
            + f"): {'; '.join(why)}"
        )
    lines += [
        f"drop {p.split()[2]} (sql/ does not define it)"
        for p in report.problems
        if p.startswith("extra function")
    ]
    lines += [
        f"revoke {p.split(': ', 1)[1].split(' (not in')[0]}"
        for p in report.problems
        if p.startswith("extra privilege")
    ]
    if not hook:
        lines.append(f"set the pre-request hook: {PRE_REQUEST_SQL}")
    if drift:
        lines.append(f"rebuild expense_monthly_totals ({drift} groups drifted)")
    structural = [
        p
        for p in report.problems
        if p.startswith(
            (
                "missing table",
                "extra table",
                "missing column",
                "extra column",
                "column ",
                "missing constraint",
                "extra constraint",
                "constraint ",
                "missing index",
                "extra index",
                "index ",
                "missing sequence",
                "sequence ",
                "missing type",
                "type ",
            )
        )
    ]
    if not plan.pending:
        lines += [
            f"NOT repaired by an apply (fix by hand or with a new migration): {p}"
            for p in structural
        ]
    return lines


def prune_audit_log(dsn: str, retention_days: int) -> int:
    """AUDIT_RETENTION_DAYS: delete audit rows older than `retention_days`, as the table's
    owner (no API role may delete audit rows); returns how many."""
    with connect(dsn) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("select public.prune_audit_log(%s)", (retention_days,))
            return cur.fetchone()[0]
