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
  scripts/users.py rename --id 4 Kabir_K    # --id / --name: no doubt which user
  scripts/users.py invite --hours 48 --note "for Kabir"

USER is an id (ASCII digits), a username or an email (case-insensitive); a USER that is
both an id and a username (a user named 004) is refused: say --id 4 or --name 004. Every
value shown that a user chose (names, emails) has its control characters escaped (\x1b).

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
import re
import secrets
import sys

import psycopg2
from psycopg2.extras import Json

from config import ConfigError, load_settings
from database import Unreachable, connect
from models import check_email, check_password, check_username
from passwords import hash_password
from scripts.terminal import shown

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


ASCII_ID_RE = re.compile(r"[0-9]{1,18}")  # never int() on input: it takes any Unicode digit


def ascii_id(value: str) -> int:
    """--id: ASCII digits only (`١`, the Arabic-Indic one, is no id)."""
    if not ASCII_ID_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{shown(value)} is not an id (ASCII digits 0-9)")
    return int(value)


def find_user(cur, args) -> tuple[int, str, str | None]:
    """The one user USER, --id or --name names; never a guess. USER of ASCII digits is an id
    unless it is also a username or email, which is refused (say --id or --name)."""
    columns = "select id, name, email from public.users"
    by_name = f"{columns} where lower(name) = lower(%s) or lower(email) = lower(%s)"
    if args.id is not None:
        cur.execute(f"{columns} where id = %s", (args.id,))
        who = f"id {args.id}"
    elif args.name is not None:
        cur.execute(by_name, (args.name, args.name))
        who = f"'{shown(args.name)}'"
    else:
        who = f"'{shown(args.user)}'"
        cur.execute(by_name, (args.user, args.user))
        rows = cur.fetchall()
        if ASCII_ID_RE.fullmatch(args.user):
            cur.execute(f"{columns} where id = %s", (int(args.user),))
            by_id = cur.fetchall()
            if by_id and rows:
                raise Refused(
                    f"{who} is both the id of user {shown(by_id[0][1])} and the name or email "
                    f"of user {rows[0][0]}: say --id {int(args.user)} or --name {shown(args.user)}"
                )
            rows = rows or by_id
        return one_user(rows, who)
    return one_user(cur.fetchall(), who)


def one_user(rows: list, who: str) -> tuple[int, str, str | None]:
    if len(rows) != 1:
        raise Refused(f"no user {who}" if not rows else f"{who} matches several users")
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
# commands (each gets an open cursor inside one transaction and returns the lines that say
# what it did: main prints them only once the transaction is committed, so nothing is
# reported done - least of all an invite code - that was not stored)
# --------------------------------------------------------------------------------------
Done = list[str]


def cmd_list(args, settings, cur) -> Done:
    cur.execute("""
        select u.id, u.name, coalesce(u.email, '-'), u.created_at::date,
               (select count(*) from public.expenses e where e.user_id = u.id),
               coalesce(to_char(u.sessions_revoked_at, 'YYYY-MM-DD HH24:MI'), '-'), u.role
        from public.users u order by u.id""")
    rows = cur.fetchall()
    header = ("id", "name", "email", "created", "expenses", "sessions revoked", "role")
    table = [header, *[tuple(shown(c) for c in row) for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    return [*lines, f"{len(rows)} user(s)"]


def cmd_add(args, settings, cur) -> Done:
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
    return [f"added user {user['id']} {shown(user['name'])} ({shown(user['email'] or 'no email')})"]


def cmd_reset_password(args, settings, cur) -> Done:
    user_id, name, _ = find_user(cur, args)
    password = read_password(args)
    print(f"hashing the password (bcrypt, cost {settings.bcrypt_rounds})...", file=sys.stderr)
    cur.execute(
        "update public.users set password_hash = %s where id = %s",
        (hash_password(password, settings.bcrypt_rounds), user_id),
    )
    # every session (rows and older tokens alike) ends, in this transaction
    cur.execute("select public.revoke_user_sessions(%s, null, 'admin_reset')", (user_id,))
    audit(cur, "admin.password_reset", user_id, None, None)
    return [
        f"new password set for {shown(name)} (id {user_id}); their open sessions are logged out"
    ]


def cmd_set_email(args, settings, cur) -> Done:
    user_id, name, old = find_user(cur, args)
    if args.clear == (args.email is not None):
        raise Refused("give either a new EMAIL or --clear")
    email = None if args.clear else checked(check_email, args.email)
    cur.execute("update public.users set email = %s where id = %s", (email, user_id))
    audit(cur, "admin.email_set", user_id, {"email": old}, {"email": email})
    return [f"email of {shown(name)} (id {user_id}): {shown(old)} -> {shown(email)}"]


def cmd_rename(args, settings, cur) -> Done:
    user_id, old, _ = find_user(cur, args)
    new = checked(check_username, args.new_name)
    cur.execute("update public.users set name = %s where id = %s", (new, user_id))
    audit(cur, "admin.user_rename", user_id, {"name": old}, {"name": new})
    return [
        f"renamed user {user_id}: {shown(old)} -> {new} (logins with the old name stop working)"
    ]


def cmd_revoke_sessions(args, settings, cur) -> Done:
    user_id, name, _ = find_user(cur, args)
    cur.execute("select public.revoke_user_sessions(%s, null, 'admin')", (user_id,))
    audit(cur, "admin.sessions_revoke", user_id, None, None)
    return [
        f"every token issued to {shown(name)} (id {user_id}) until now is refused; "
        "they can log in again"
    ]


def cmd_set_role(args, settings, cur) -> Done:
    user_id, name, _ = find_user(cur, args)
    # the last-admin rule and the audit row (user.role) are Postgres' (sql/R32_accounts.sql)
    cur.execute("select public.set_user_role(%s, %s) ->> 'role'", (user_id, args.role))
    return [f"role of {shown(name)} (id {user_id}): {cur.fetchone()[0]}"]


def cmd_delete(args, settings, cur) -> Done:
    user_id, name, email = find_user(cur, args)
    cur.execute("select public.lock_admins_keeping_one(%s)", (user_id,))  # the last admin stays
    cur.execute(
        "select count(*), coalesce(sum(amount), 0) from public.expenses where user_id = %s",
        (user_id,),
    )
    count, total = cur.fetchone()
    print(
        f"user {user_id} {shown(name)} ({shown(email or 'no email')}) will be deleted with "
        f"{count} expense(s) totalling {total}; their tokens stop working at once."
    )
    if not args.yes:
        try:
            answer = input(f"Type the username ({shown(name)}) to delete, anything else keeps it: ")
        except EOFError:
            answer = ""
        if answer.strip() != name:
            print("not deleted", file=sys.stderr)
            raise SystemExit(EXIT_NOT_CONFIRMED)
    print("deleting...", file=sys.stderr)
    cur.execute("delete from public.users where id = %s", (user_id,))
    gone = {"id": user_id, "name": name, "email": email, "expenses": count}
    audit(cur, "admin.user_delete", user_id, gone, None)
    return [f"deleted user {user_id} {shown(name)} and {count} expense(s)"]


def cmd_invite(args, settings, cur) -> Done:
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
    if settings.registration_mode != "invite":
        print(
            f"note: this configuration has REGISTRATION_MODE={settings.registration_mode}; "
            "the API takes invite codes only with REGISTRATION_MODE=invite",
            file=sys.stderr,
        )
    return [
        f"invite code: {code}",
        f"expires: {expires:%Y-%m-%d %H:%M} UTC (single use; register with "
        f'"invite_code" while REGISTRATION_MODE=invite)',
    ]


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
        sub.set_defaults(handler=handler, user_parser=None)
        return sub

    def user_command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        """USER, or --id / --name to say which one it is (a USER of digits that is both an
        id and a username is refused until one of them is given)."""
        sub = command(name, handler, help_text)
        sub.set_defaults(user_parser=sub)
        sub.add_argument("user", metavar="USER", nargs="?", help="id, username or email")
        sub.add_argument("--id", type=ascii_id, help="the user with this id (ASCII digits)")
        sub.add_argument("--name", metavar="NAME", help="the user with this username or email")
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
    reset = user_command(
        "reset-password", cmd_reset_password, "set a new password and log the user out everywhere"
    )
    reset.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    email = user_command("set-email", cmd_set_email, "change or clear a user's email")
    email.add_argument("email", nargs="?", help="the new email")
    email.add_argument("--clear", action="store_true", help="remove the email")
    rename = user_command("rename", cmd_rename, "change a username")
    rename.add_argument("new_name", nargs="?", help="3-30 of letters, digits and underscore")
    user_command(
        "revoke-sessions", cmd_revoke_sessions, "refuse every token issued to the user so far"
    )
    role = user_command(
        "set-role", cmd_set_role, "make a user admin, member or viewer (the last admin stays)"
    )
    role.add_argument("role", nargs="?", metavar="ROLE", help="admin, member or viewer")
    delete = user_command("delete", cmd_delete, "delete a user and all their expenses (asks first)")
    delete.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    invite = command(
        "invite", cmd_invite, "print a new single-use invite code for REGISTRATION_MODE=invite"
    )
    invite.add_argument("--hours", type=int, help="validity (default INVITE_TTL_HOURS, 72)")
    invite.add_argument("--note", help="who it is for (stored with the invite)")
    return main


ROLES = ("admin", "member", "viewer")


def chosen_user(command: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exactly one of USER, --id, --name. With --id or --name the first positional is the
    next argument (`rename --id 4 NEW_NAME`, `set-email --name 004 EMAIL`)."""
    given = sum(x is not None for x in (args.id, args.name))
    if given == 0 and args.user is None:
        command.error("give the USER (an id, username or email), --id ID or --name NAME")
    if given == 2:
        command.error("give --id or --name, not both")
    if given and args.user is not None:
        following = {"rename": "new_name", "set-email": "email", "set-role": "role"}.get(
            args.command
        )
        if following is None or getattr(args, following) is not None:
            command.error("give the USER or --id/--name, not both")
        setattr(args, following, args.user)
        args.user = None
    if args.command == "rename" and args.new_name is None:
        command.error("the NEW_NAME is required")
    if args.command == "set-role" and args.role not in ROLES:
        command.error(f"the ROLE is required: one of {', '.join(ROLES)}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.user_parser is not None:
        chosen_user(args.user_parser, args)
    try:
        overrides = {"database_url": args.database_url} if args.database_url else {}
        settings = load_settings(**overrides)
        dsn = settings.database_url.get_secret_value()
        with connect(dsn, application_name="ffb-users", timeout=10) as conn:
            with conn, conn.cursor() as cur:
                done = args.handler(args, settings, cur)
        # committed (leaving `with conn` commits; a failed commit raised instead)
        for line in done:
            print(line)
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
