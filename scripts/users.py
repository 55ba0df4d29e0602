#!/usr/bin/env python3
"""Manage the family's accounts directly in the database (local stack or hosted Supabase).

Works on DATABASE_URL from the app's settings (environment or .env, the same ones the API
reads; --database-url overrides it). Passwords follow the register rules (8-128 characters
with an uppercase letter, a lowercase letter, a digit and a special character) and are
hashed with bcrypt at BCRYPT_ROUNDS, exactly like POST /api/auth/register. A password is
asked twice without echo, or read from the first line of standard input with
--password-stdin; it never appears on the command line. Every change writes one row to
the audit trail (action admin.*, read it with scripts/audit.py) in the same transaction.

examples:
  scripts/users.py list
  scripts/users.py add Rashmi --email rashmi@example.com
  printf '%s\\n' "$NEW_PASSWORD" | scripts/users.py add Kabir --password-stdin
  scripts/users.py reset-password rashmi@example.com
  scripts/users.py set-email Rashmi rashmi@family.example
  scripts/users.py set-email Rashmi --clear
  scripts/users.py rename Kabir Kabir_K
  scripts/users.py revoke-sessions Amol
  scripts/users.py set-role Rashmi admin      # the first admin; then /api/admin/* works
  scripts/users.py set-role Kabir viewer      # reads everything, changes nothing
  scripts/users.py delete Kabir             # shows what goes, then asks for the name
  scripts/users.py delete 7 --yes           # no question (for scripts)
  scripts/users.py invite --hours 48 --note "for Kabir"

USER is an id, a username or an email (case-insensitive).

exit codes:
  0  done
  1  refused or failed (unknown user, invalid input, name or email taken, database
     unreachable or configuration missing); one line on stderr says why
  2  wrong usage (unknown command or option)
  3  delete not confirmed (nothing was changed)
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import secrets
import sys

import psycopg2
from psycopg2.extras import Json

from config import ConfigError, load_settings
from database import Unreachable, connect
from models import check_email, check_password, check_username
from passwords import hash_password

EXIT_FAILED, EXIT_NOT_CONFIRMED = 1, 3


class Refused(Exception):
    """A one-line reason; exit 1."""


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def audit(cur, action: str, user_id: int | None, before: dict | None, after: dict | None) -> None:
    """One audit_log row for an admin action, in the action's own transaction (actor: none,
    the database role was the admin). Never a password or its hash."""
    cur.execute(
        "select public.audit_write(%s, %s, %s, %s, null)",
        (action, user_id, Json(before) if before else None, Json(after) if after else None),
    )


def find_user(cur, who: str) -> tuple[int, str, str | None]:
    if who.isdigit():
        cur.execute("select id, name, email from public.users where id = %s", (int(who),))
    else:
        cur.execute(
            "select id, name, email from public.users "
            "where lower(name) = lower(%s) or lower(email) = lower(%s)",
            (who, who),
        )
    rows = cur.fetchall()
    if len(rows) != 1:
        raise Refused(f"no user {who!r}" if not rows else f"{who!r} matches several users")
    return rows[0]


def checked(rule, value):
    try:
        return rule(value)
    except ValueError as exc:
        raise Refused(str(exc)) from None


def read_password(args) -> str:
    if args.password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise Refused("no password on standard input")
        return checked(check_password, line)
    if not sys.stdin.isatty():
        raise Refused("no terminal to ask for the password: pipe it with --password-stdin")
    first = getpass.getpass("New password: ")
    checked(check_password, first)
    if getpass.getpass("Repeat it: ") != first:
        raise Refused("the two passwords differ")
    return first


def database_message(exc: psycopg2.Error) -> str:
    """Our SQL's own messages (PT400 'Username already exists'), else the first line."""
    diag = getattr(exc, "diag", None)
    message = diag.message_primary if diag is not None and diag.message_primary else str(exc)
    return (message.strip().splitlines() or ["database error"])[0]


def unique_violation_message(exc: psycopg2.Error) -> str:
    constraint = getattr(getattr(exc, "diag", None), "constraint_name", "") or ""
    return (
        "Email already exists"
        if constraint.startswith("users_email")
        else "Username already exists"
    )


# --------------------------------------------------------------------------------------
# commands (each gets an open cursor inside one transaction)
# --------------------------------------------------------------------------------------
def cmd_list(args, settings, cur) -> None:
    cur.execute("""
        select u.id, u.name, coalesce(u.email, '-'), u.created_at::date,
               (select count(*) from public.expenses e where e.user_id = u.id),
               coalesce(to_char(u.sessions_revoked_at, 'YYYY-MM-DD HH24:MI'), '-'), u.role
        from public.users u order by u.id""")
    rows = cur.fetchall()
    header = ("id", "name", "email", "created", "expenses", "sessions revoked", "role")
    table = [header, *[tuple(str(c) for c in row) for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"{len(rows)} user(s)")


def cmd_add(args, settings, cur) -> None:
    name = checked(check_username, args.name)
    email = checked(check_email, args.email)
    password = read_password(args)
    print(f"hashing the password (bcrypt, cost {settings.bcrypt_rounds})...", file=sys.stderr)
    cur.execute(
        "select public.register_user(%s, %s, %s)",
        (name, email, hash_password(password, settings.bcrypt_rounds)),
    )
    user = cur.fetchone()[0]
    audit(cur, "admin.user_add", user["id"], None, user)
    print(f"added user {user['id']} {user['name']} ({user['email'] or 'no email'})")


def cmd_reset_password(args, settings, cur) -> None:
    user_id, name, _ = find_user(cur, args.user)
    password = read_password(args)
    print(f"hashing the password (bcrypt, cost {settings.bcrypt_rounds})...", file=sys.stderr)
    cur.execute(
        "update public.users set password_hash = %s where id = %s",
        (hash_password(password, settings.bcrypt_rounds), user_id),
    )
    # every session (rows and older tokens alike) ends, in this transaction
    cur.execute("select public.revoke_user_sessions(%s, null, 'admin_reset')", (user_id,))
    audit(cur, "admin.password_reset", user_id, None, None)
    print(f"new password set for {name} (id {user_id}); their open sessions are logged out")


def cmd_set_email(args, settings, cur) -> None:
    user_id, name, old = find_user(cur, args.user)
    if args.clear == (args.email is not None):
        raise Refused("give either a new EMAIL or --clear")
    email = None if args.clear else checked(check_email, args.email)
    cur.execute("update public.users set email = %s where id = %s", (email, user_id))
    audit(cur, "admin.email_set", user_id, {"email": old}, {"email": email})
    print(f"email of {name} (id {user_id}): {old or '-'} -> {email or '-'}")


def cmd_rename(args, settings, cur) -> None:
    user_id, old, _ = find_user(cur, args.user)
    new = checked(check_username, args.new_name)
    cur.execute("update public.users set name = %s where id = %s", (new, user_id))
    audit(cur, "admin.user_rename", user_id, {"name": old}, {"name": new})
    print(f"renamed user {user_id}: {old} -> {new} (logins with the old name stop working)")


def cmd_revoke_sessions(args, settings, cur) -> None:
    user_id, name, _ = find_user(cur, args.user)
    cur.execute("select public.revoke_user_sessions(%s, null, 'admin')", (user_id,))
    audit(cur, "admin.sessions_revoke", user_id, None, None)
    print(
        f"every token issued to {name} (id {user_id}) until now is refused; they can log in again"
    )


def cmd_set_role(args, settings, cur) -> None:
    user_id, name, _ = find_user(cur, args.user)
    # the last-admin rule and the audit row (user.role) are Postgres' (sql/R32_accounts.sql)
    cur.execute("select public.set_user_role(%s, %s) ->> 'role'", (user_id, args.role))
    print(f"role of {name} (id {user_id}): {cur.fetchone()[0]}")


def cmd_delete(args, settings, cur) -> None:
    user_id, name, email = find_user(cur, args.user)
    cur.execute("select public.lock_admins_keeping_one(%s)", (user_id,))  # the last admin stays
    cur.execute(
        "select count(*), coalesce(sum(amount), 0) from public.expenses where user_id = %s",
        (user_id,),
    )
    count, total = cur.fetchone()
    print(
        f"user {user_id} {name} ({email or 'no email'}) will be deleted with "
        f"{count} expense(s) totalling {total}; their tokens stop working at once."
    )
    if not args.yes:
        try:
            answer = input(f"Type the username ({name}) to delete, anything else keeps it: ")
        except EOFError:
            answer = ""
        if answer.strip() != name:
            print("not deleted", file=sys.stderr)
            raise SystemExit(EXIT_NOT_CONFIRMED)
    print("deleting...", file=sys.stderr)
    cur.execute("delete from public.users where id = %s", (user_id,))
    gone = {"id": user_id, "name": name, "email": email, "expenses": count}
    audit(cur, "admin.user_delete", user_id, gone, None)
    print(f"deleted user {user_id} {name} and {count} expense(s)")


def cmd_invite(args, settings, cur) -> None:
    hours = args.hours if args.hours is not None else settings.invite_ttl_hours
    if not 1 <= hours <= 24 * 90:
        raise Refused("--hours must be between 1 and 2160")
    code = secrets.token_urlsafe(16)  # 128 random bits; only its SHA-256 is stored
    cur.execute(
        "insert into public.invites (code_sha256, note, expires_at) "
        "values (%s, %s, now() + make_interval(hours => %s)) returning expires_at",
        (hashlib.sha256(code.encode()).hexdigest(), args.note, hours),
    )
    expires = cur.fetchone()[0].astimezone(dt.timezone.utc)
    audit(cur, "admin.invite_create", None, None, {"note": args.note, "expires_at": str(expires)})
    print(f"invite code: {code}")
    print(
        f"expires: {expires:%Y-%m-%d %H:%M} UTC (single use; register with "
        f'"invite_code" while REGISTRATION_MODE=invite)'
    )
    if settings.registration_mode != "invite":
        print(
            f"note: this configuration has REGISTRATION_MODE={settings.registration_mode}; "
            "the API takes invite codes only with REGISTRATION_MODE=invite",
            file=sys.stderr,
        )


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="scripts/users.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    main.add_argument("--database-url", help="instead of DATABASE_URL from the settings")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    command("list", cmd_list, "every user with email, creation date and expense count")
    add = command("add", cmd_add, "add a member (password asked without echo)")
    add.add_argument("name", help="username: 3-30 of letters, digits and underscore")
    add.add_argument("--email", help="optional email (unique)")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    reset = command(
        "reset-password", cmd_reset_password, "set a new password and log the user out everywhere"
    )
    reset.add_argument("user", help="id, username or email")
    reset.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    email = command("set-email", cmd_set_email, "change or clear a user's email")
    email.add_argument("user", help="id, username or email")
    email.add_argument("email", nargs="?", help="the new email")
    email.add_argument("--clear", action="store_true", help="remove the email")
    rename = command("rename", cmd_rename, "change a username")
    rename.add_argument("user", help="id, username or email")
    rename.add_argument("new_name", help="3-30 of letters, digits and underscore")
    revoke = command(
        "revoke-sessions", cmd_revoke_sessions, "refuse every token issued to the user so far"
    )
    revoke.add_argument("user", help="id, username or email")
    role = command(
        "set-role", cmd_set_role, "make a user admin, member or viewer (the last admin stays)"
    )
    role.add_argument("user", help="id, username or email")
    role.add_argument("role", choices=("admin", "member", "viewer"))
    delete = command("delete", cmd_delete, "delete a user and all their expenses (asks first)")
    delete.add_argument("user", help="id, username or email")
    delete.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    invite = command(
        "invite", cmd_invite, "print a new single-use invite code for REGISTRATION_MODE=invite"
    )
    invite.add_argument("--hours", type=int, help="validity (default INVITE_TTL_HOURS, 72)")
    invite.add_argument("--note", help="who it is for (stored with the invite)")
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        overrides = {"database_url": args.database_url} if args.database_url else {}
        settings = load_settings(**overrides)
        dsn = settings.database_url.get_secret_value()
        with connect(dsn, application_name="ffb-users", timeout=10) as conn:
            with conn, conn.cursor() as cur:
                args.handler(args, settings, cur)
    except Unreachable as exc:
        print(f"users.py: cannot connect to the database: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ConfigError as exc:
        print(f"users.py: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Refused as exc:
        print(f"users.py: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except psycopg2.errors.UniqueViolation as exc:
        print(f"users.py: {unique_violation_message(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except psycopg2.Error as exc:
        print(f"users.py: {database_message(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("users.py: interrupted, nothing changed", file=sys.stderr)
        return EXIT_NOT_CONFIRMED
    return 0


if __name__ == "__main__":
    sys.exit(main())
