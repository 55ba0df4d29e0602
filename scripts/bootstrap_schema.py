#!/usr/bin/env python3
"""Apply the schema in sql/ to a Postgres database (local stack or hosted Supabase).

  scripts/bootstrap_schema.py            apply sql/ (idempotent), then print a report
  scripts/bootstrap_schema.py --check    change nothing; exit 1 naming every drift

The database comes from DATABASE_URL (environment or .env), or --database-url. On hosted
Supabase use the direct connection string of Project Settings -> Database. After applying,
PostgREST is told to reload its schema cache and configuration (NOTIFY pgrst).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run by path: the app's modules
import database
from config import ConfigError, load_database_url


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
    return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"


def print_report(report: database.SchemaReport) -> None:
    def line(kind: str, items: dict[str, bool]) -> None:
        ok = [n for n, present in items.items() if present]
        missing = [n for n, present in items.items() if not present]
        print(f"  {kind:<10} {len(ok)}/{len(items)} present"
              + (f"; missing: {', '.join(missing)}" if missing else ""))
    line("tables", report.tables)
    line("RLS", report.rls)
    line("indexes", report.indexes)
    line("functions", report.functions)
    line("policies", report.policies)
    print(f"  pre-request session check on authenticator: {'yes' if report.pre_request else 'NO'}")
    drift = "unknown" if report.totals_drift is None else report.totals_drift
    print(f"  dashboard totals drifting from expenses: {drift} groups")
    if report.row_counts:
        print("  rows: " + ", ".join(f"{t} {n}" for t, n in report.row_counts.items()))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="only report; exit 1 if anything differs from sql/")
    parser.add_argument("--database-url", help="overrides DATABASE_URL")
    args = parser.parse_args()
    dsn = database_url(args.database_url)
    try:
        if args.check:
            print(f"==> checking {where(dsn)} against sql/ (read only)")
            report = database.inspect_schema(dsn)
        else:
            print(f"==> bootstrapping {where(dsn)}")
            report = database.apply_schema(dsn, progress=lambda m: print(f"  {m}", flush=True))
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"bootstrap_schema: cannot connect to {where(dsn)}: {first}", file=sys.stderr)
        return 2
    except psycopg2.Error as exc:
        print(f"bootstrap_schema: SQL failed: {exc.pgerror or exc}".strip(), file=sys.stderr)
        return 2
    print_report(report)
    problems = report.drift()
    if problems:
        print("DRIFT:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("==> schema matches sql/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
