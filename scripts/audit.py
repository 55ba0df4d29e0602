#!/usr/bin/env python3
"""Read the audit trail: who created, changed or deleted which expense, and every login,
failed login, logout and registration. Newest first.

examples:
  scripts/audit.py                                   the last 50 rows as a table
  scripts/audit.py --user 2 --since 2025-01-01       what member 2 did since New Year
  scripts/audit.py --action expense.update --action expense.delete --until 2025-02-01
  scripts/audit.py --action auth.login_failed --since "2025-01-15 08:00" --format jsonl
  scripts/audit.py --target 42 --limit 0             the whole history of expense 42
  scripts/audit.py --prune                           delete rows older than AUDIT_RETENTION_DAYS
  scripts/audit.py --prune --days 90                 ... or older than 90 days

actions: expense.create, expense.update, expense.delete, auth.login, auth.login_failed,
auth.logout, auth.register. Values that came from users (descriptions, names, request
ids) are shown with their control characters escaped (ESC as \\x1b, a newline as \\n), so
a stored value can neither forge a row nor reach the terminal as an escape sequence; in
--format jsonl they are \\uXXXX escapes. --format jsonl prints one JSON object per line, with the row
before and after the change for updates and deletes (pipe it to jq).

The database is the app's DATABASE_URL (environment or .env, read through the app's
Settings), or --database-url. It needs the table owner's rights (the API roles cannot read or
prune the audit log).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import psycopg2
import psycopg2.extras

from database import Unreachable, connect
from scripts.terminal import json_line, shown

ACTIONS = (
    "expense.create",
    "expense.update",
    "expense.delete",
    "auth.login",
    "auth.login_failed",
    "auth.logout",
    "auth.register",
)
COLUMNS = (
    "id",
    "occurred_at",
    "actor_id",
    "action",
    "target_id",
    "request_id",
    "client_addr",
    "before",
    "after",
)


def when(value: str) -> dt.datetime:
    """YYYY-MM-DD or an ISO date-time; without a zone it is UTC."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DD HH:MM)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/audit.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--user", type=int, metavar="ID", help="rows whose actor is this member")
    parser.add_argument(
        "--target", type=int, metavar="ID", help="rows about this expense or user id"
    )
    parser.add_argument(
        "--action", action="append", choices=ACTIONS, help="only this action (repeat for several)"
    )
    parser.add_argument("--since", type=when, help="from this date/time (inclusive)")
    parser.add_argument("--until", type=when, help="before this date/time (exclusive)")
    parser.add_argument(
        "--limit",
        type=int,
        default=50,
        help="at most this many rows, newest first (0: all; default 50)",
    )
    parser.add_argument("--format", choices=("table", "jsonl"), default="table")
    parser.add_argument(
        "--prune",
        action="store_true",
        help="delete rows older than the retention instead of listing",
    )
    parser.add_argument(
        "--days", type=int, help="retention for --prune (default: AUDIT_RETENTION_DAYS, 365)"
    )
    parser.add_argument("--database-url", help="overrides DATABASE_URL")
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error("--limit must be 0 (all) or more")
    if args.days is not None and args.days < 1:
        parser.error("--days must be at least 1")
    return args


def settings_value(args: argparse.Namespace) -> tuple[str, int]:
    """(DATABASE_URL, AUDIT_RETENTION_DAYS) from the flags or the app's Settings."""
    from config import ConfigError, load_settings

    if args.database_url and args.days:
        return args.database_url, args.days
    try:
        settings = load_settings()
    except ConfigError as exc:
        if args.database_url:
            return args.database_url, args.days or 365
        raise SystemExit(f"audit: {exc}") from None
    return (
        args.database_url or settings.database_url.get_secret_value(),
        args.days or settings.audit_retention_days,
    )


def query(args: argparse.Namespace) -> tuple[str, list]:
    where, params = [], []
    if args.user is not None:
        where.append("actor_id = %s")
        params.append(args.user)
    if args.target is not None:
        where.append("target_id = %s")
        params.append(args.target)
    if args.action:
        where.append("action = any(%s)")
        params.append(list(args.action))
    if args.since:
        where.append("occurred_at >= %s")
        params.append(args.since)
    if args.until:
        where.append("occurred_at < %s")
        params.append(args.until)
    sql = (
        f"select {', '.join(COLUMNS)} from public.audit_log"
        + (" where " + " and ".join(where) if where else "")
        + " order by occurred_at desc, id desc"
    )
    if args.limit:
        sql += " limit %s"
        params.append(args.limit)
    return sql, params


def changed_fields(before: dict | None, after: dict | None) -> str:
    """What an update changed, e.g. `amount 10 -> 12.5`; deletes and creates say so."""
    if before and after:
        diffs = [
            f"{k} {before.get(k)} -> {after.get(k)}" for k in after if before.get(k) != after.get(k)
        ]
        return "; ".join(diffs) or "no change"
    if after:
        return ", ".join(f"{k}={v}" for k, v in after.items() if k not in ("created_at",))
    if before:
        return (
            f"was: amount={before.get('amount')} user_id={before.get('user_id')} "
            f"date={before.get('date')}"
        )
    return ""


def print_table(rows: list[dict]) -> None:
    header = ("when (UTC)", "actor", "action", "target", "client", "request", "details")
    lines = [header] + [
        (
            r["occurred_at"].astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            shown(r["actor_id"]),
            shown(r["action"]),
            shown(r["target_id"]),
            shown(r["client_addr"] or None),
            shown(r["request_id"] or None),
            # every value that came from a user, escaped: one row is one line
            shown(changed_fields(r["before"], r["after"])),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1])
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", file=sys.stderr)


def print_jsonl(rows: list[dict]) -> None:
    for row in rows:
        print(json_line({**row, "occurred_at": row["occurred_at"].isoformat()}))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dsn, days = settings_value(args)
    try:
        with connect(dsn, application_name="ffb-audit") as conn, conn:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                if args.prune:
                    print(f"==> deleting audit rows older than {days} days", file=sys.stderr)
                    cur.execute("select public.prune_audit_log(%s) as deleted", (days,))
                    print(f"deleted {cur.fetchone()['deleted']} rows")
                    return 0
                cur.execute(*query(args))
                rows = cur.fetchall()
    except Unreachable as exc:
        print(f"audit: cannot connect to the database: {exc}", file=sys.stderr)
        return 2
    except psycopg2.Error as exc:
        message = (exc.pgerror or str(exc)).strip().splitlines()[0]
        print(f"audit: query failed: {message}", file=sys.stderr)
        return 2
    (print_jsonl if args.format == "jsonl" else print_table)(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
