#!/usr/bin/env python3
"""Apply the schema in sql/ to a Postgres database (local stack or hosted Supabase).

  scripts/bootstrap_schema.py              apply: pending migrations, changed repeatable
                                           files, privileges, the pre-request hook; then
                                           check and print the report
  scripts/bootstrap_schema.py --dry-run    list what an apply would do; change nothing
  scripts/bootstrap_schema.py --check      change nothing; exit 1 naming every drift

examples:
  .venv/bin/python scripts/bootstrap_schema.py --check
  DATABASE_URL='postgresql://postgres:PASSWORD@db.REF.supabase.co:5432/postgres' \\
      .venv/bin/python scripts/bootstrap_schema.py --dry-run
  .venv/bin/python scripts/bootstrap_schema.py --database-url postgresql://...

What is applied: sql/migrations/NNNN_*.sql (each once, in order, in its own transaction,
recorded in public.schema_migrations), then the repeatable files sql/RNN_*.sql in file-name
order when they changed (functions sql/ no longer defines are dropped, privileges beyond
sql/privileges.txt revoked, ledger rows of removed files deleted; sql/README.md), then
`alter role authenticator set pgrst.db_pre_request`, then NOTIFY pgrst.
A database made by the release before migrations is recognised and baselined.
--check and the report after an apply build sql/ in a scratch database (needs CREATEDB,
which `postgres` has on hosted Supabase) and compare the catalogs with it.

The database comes from DATABASE_URL (environment or .env), or --database-url. On hosted
Supabase use the direct connection string (Connect -> Direct connection) or the session
pooler (port 5432), as `postgres`; the transaction pooler (6543) is refused (exit 4).

exit status:
  0  applied / schema matches sql/
  1  drift: --check found differences, or some remain after an apply (each is named)
  2  could not run: no connection, a SQL file failed (its transaction was rolled back,
     earlier migrations stay applied), or no scratch database could be created
  3  applied, except PostgREST's pre-request hook: permission denied to set it. Run the
     printed statement in Supabase's SQL editor, then --check again
  4  refused, nothing changed: an applied migration was edited or removed, two migrations
     share a number, a file in sql/ is not named RNN_short_name.sql, public holds only
     part of the tables of 0001, or the connection goes through a transaction pooler
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg2

import catalog
import migrate
import schema
from config import ConfigError, load_database_url

EXIT_OK, EXIT_DRIFT, EXIT_ERROR, EXIT_HOOK_REFUSED, EXIT_REFUSED = 0, 1, 2, 3, 4


def database_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    try:
        return load_database_url()
    except ConfigError as exc:
        sys.exit(f"bootstrap_schema: no database: set DATABASE_URL or pass --database-url ({exc})")


def where(dsn: str) -> str:
    """host:port/db of a DSN, never its password."""
    params = psycopg2.extensions.parse_dsn(dsn)
    return (
        f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
    )


def print_report(report: schema.SchemaReport) -> None:
    plural = {"index": "indexes", "policy": "policies", "rls": "RLS flags"}
    kinds = ", ".join(
        f"{n} {plural.get(k, k + 's') if n != 1 else k}" for k, n in report.counts.items() if n
    )
    print(f"  objects in public: {kinds}")
    for version, name, applied_at, applied_by in report.applied:
        label = "repeatable" if version == catalog.REPEATABLE_VERSION else f"migration {version}"
        print(f"  {label:<14} sql/{name}  applied {applied_at[:19]} by {applied_by}")
    print(f"  pre-request session check on authenticator: {'yes' if report.hook else 'NO'}")
    drift = "unknown" if report.totals_drift is None else report.totals_drift
    print(f"  dashboard totals drifting from expenses: {drift} groups")
    if report.row_counts:
        print("  rows: " + ", ".join(f"{t} {n}" for t, n in report.row_counts.items()))


def print_drift(problems: list[str]) -> None:
    print("DRIFT:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def hook_instructions() -> None:
    print(
        "bootstrap_schema: permission denied to set PostgREST's pre-request hook; everything "
        "else is applied. Run this one statement in Supabase's SQL editor, then --check:",
        file=sys.stderr,
    )
    print(f"  {catalog.PRE_REQUEST_SQL}", file=sys.stderr)


def run(args, dsn: str) -> int:
    progress = lambda message: print(f"  {message}", flush=True)  # noqa: E731
    if args.dry_run:
        print(f"==> dry run against {where(dsn)} (nothing is changed)")
        lines = schema.dry_run(dsn)
        for line in lines:
            print(
                f"  would {line}"
                if not line.startswith(("recognised", "NOT", "sql/"))
                else f"  {line}"
            )
        print("==> nothing to do" if not lines else f"==> {len(lines)} step(s)")
        return EXIT_OK
    if args.check:
        print(f"==> checking {where(dsn)} against sql/ (read only)")
        report = schema.inspect_schema(dsn)
        print_report(report)
        if report.problems:
            print_drift(report.problems)
            return EXIT_DRIFT
        print("==> schema matches sql/")
        return EXIT_OK
    print(f"==> bootstrapping {where(dsn)}")
    result = migrate.apply_schema(dsn, progress=progress)
    progress("checking the result against sql/ (scratch database)")
    report = schema.inspect_schema(dsn)
    repairable = [p for p in report.problems if not p.startswith("pre-request hook missing")]
    if repairable and not result.hook_refused:
        progress("the database drifted from the repeatable files: re-applying them")
        migrate.apply_schema(dsn, progress=progress, reapply=True)
        report = schema.inspect_schema(dsn)
    print_report(report)
    if not result.done:
        print("  nothing to apply")
    if result.hook_refused:
        others = [p for p in report.problems if not p.startswith("pre-request hook missing")]
        if others:
            print_drift(others)
        hook_instructions()
        return EXIT_DRIFT if others else EXIT_HOOK_REFUSED
    if report.problems:
        print_drift(report.problems)
        return EXIT_DRIFT
    print("==> schema matches sql/")
    return EXIT_OK


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="only report; exit 1 naming every difference from sql/"
    )
    mode.add_argument(
        "--dry-run", action="store_true", help="list what an apply would do, change nothing"
    )
    parser.add_argument("--database-url", help="overrides DATABASE_URL")
    parser.add_argument(
        "--sql-dir",
        type=Path,
        default=catalog.SQL_DIR,
        help="the sql/ directory to apply (default: this checkout's; tests use a copy)",
    )
    args = parser.parse_args()
    catalog.use_sql_dir(args.sql_dir)
    dsn = database_url(args.database_url)
    try:
        return run(args, dsn)
    except catalog.SchemaRefused as exc:
        print(f"bootstrap_schema: refused, nothing changed: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (migrate.MigrationFailed, schema.ReferenceUnavailable) as exc:
        print(f"bootstrap_schema: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"bootstrap_schema: cannot connect to {where(dsn)}: {first}", file=sys.stderr)
        return EXIT_ERROR
    except psycopg2.Error as exc:
        print(f"bootstrap_schema: SQL failed: {(exc.pgerror or str(exc)).strip()}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
