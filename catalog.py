"""What sql/ defines and what a database holds: the SQL files, the privilege allow-list and
the catalog reads that both the bootstrap (migrate.py) and the drift check (schema.py) use.

Every name comes out schema-qualified. Synchronous psycopg2 on a cursor the caller owns;
importing this module performs no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

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


class SchemaRefused(Exception):
    """The bootstrap will not touch this database (exit 4): an applied migration was
    edited or removed, two migrations share a number, or public is half-populated."""


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
