"""The drift check (`scripts/bootstrap_schema.py --check` and `--dry-run`): the database
compared with what sql/ defines.

To know what sql/ defines exactly, `build_reference` builds it in a scratch database
(CREATE DATABASE from template0, which the role `postgres` may do on hosted Supabase), reads
it with the same catalog queries (catalog.py), and drops it: no hand-kept list of expected
objects can fall behind the SQL. Importing this module performs no I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import psycopg2

from catalog import (
    PRE_REQUEST_SQL,
    Snapshot,
    allowed_privileges,
    compare_privileges,
    hook_is_set,
    migration_files,
    public_tables,
    read_privileges,
    read_snapshot,
    repeatable_files,
    totals_drift,
)
from database import connect
from migrate import (
    APPLICATION_NAME,
    LEDGER_DDL,
    Plan,
    hook_problem,
    ledger_problems,
    make_plan,
    run_file,
)


class ReferenceUnavailable(Exception):
    """The scratch database for `--check` could not be created (exit 2)."""


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
        with (
            connect(dsn, application_name=APPLICATION_NAME, autocommit=True) as admin,
            admin.cursor() as cur,
        ):
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
        with connect(ref_dsn, application_name=APPLICATION_NAME) as conn, conn.cursor() as cur:
            cur.execute(LEDGER_DDL)
            for f in migration_files() + repeatable_files():
                run_file(cur, f)
            snapshot = read_snapshot(cur)
            conn.rollback()  # role-level side effects of the files (roles, memberships) too
        return snapshot
    finally:
        with (
            connect(dsn, application_name=APPLICATION_NAME, autocommit=True) as admin,
            admin.cursor() as cur,
        ):
            # (force): through a pooler the scratch database's server connection outlives
            # ours in the pool; force ends it (it is `postgres`'s own session)
            cur.execute(f"drop database if exists {name} with (force)")


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


def inspect_schema(dsn: str, reference: Snapshot | None = None) -> SchemaReport:
    """Change nothing; report every difference from what sql/ defines."""
    expected = reference if reference is not None else build_reference(dsn)
    with connect(dsn, application_name=APPLICATION_NAME) as conn, conn.cursor() as cur:
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


def dry_run(dsn: str) -> list[str]:
    """What an apply would do, one line each; changes nothing."""
    with connect(dsn, application_name=APPLICATION_NAME) as conn, conn.cursor() as cur:
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
