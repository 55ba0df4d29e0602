"""Regression tests for the second outside probe's findings on the admin tools (issue 24,
findings 1, 2 and 6): scripts/users.py never guesses between ids and names, admin output
escapes control characters, the API refuses them in usernames and emails, and an invite
code is printed only once it is stored.

Each replays the probe's reproduction against the real database.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import count_rows, sql
from tests.integration.test_audit_script import run as audit
from tests.integration.test_users_script import assert_one_line_failure, users

FORGED = (
    "ok\n2026-12-06 09:00:00  4  auth.login  -  10.0.0.1  forged"
    "\u001b[1A\u001b[2K\rX\u009b31m\u202e\u2028"
)
EVIL_EMAIL = "evil\u001b[2J\u001b]0;pwned\u0007@e.co"
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e", "\u2028")


@pytest.fixture
def user_named_004(fresh_db) -> str:
    """A fifth member whose name is all digits: 004 (user id 5), beside Rashmi (id 4)."""
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.users (id, name, email, password_hash) values (5, '004', null, 'x')"
        )
    return fresh_db


def revoked(dsn: str) -> list[int]:
    with sql(dsn) as cur:
        cur.execute("select id from public.users where sessions_revoked_at is not null order by id")
        return [row[0] for row in cur.fetchall()]


@pytest.mark.parametrize(
    "args",
    [("revoke-sessions", "004"), ("rename", "004", "x_y"), ("delete", "004", "--yes")],
)
def test_a_user_argument_that_is_both_an_id_and_a_username_is_refused(user_named_004, args):
    result = users(*args)
    assert_one_line_failure(result, "say --id 4 or --name 004")
    assert revoked(user_named_004) == [] and count_rows(user_named_004, "users") == 5
    with sql(user_named_004) as cur:
        cur.execute("select name from public.users where id in (4, 5) order by id")
        assert [r[0] for r in cur.fetchall()] == ["Rashmi", "004"]


def test_id_and_name_options_say_which_user(user_named_004):
    assert users("revoke-sessions", "--name", "004").returncode == 0
    assert revoked(user_named_004) == [5]
    renamed = users("rename", "--id", "4", "Rashmi_K")
    assert renamed.returncode == 0, renamed.stderr
    assert "renamed user 4: Rashmi -> Rashmi_K" in renamed.stdout
    assert users("revoke-sessions", "3").returncode == 0  # digits, no such username: the id
    assert revoked(user_named_004) == [3, 5]


@pytest.mark.parametrize(
    "spelling", ["\u0661", "\uff11", "\u0967"]
)  # Arabic-Indic, fullwidth, Devanagari one
def test_unicode_digits_are_never_an_id(fresh_db, spelling):
    result = users("delete", spelling, "--yes")
    assert_one_line_failure(result, "no user")
    assert count_rows(fresh_db, "users") == 4
    by_option = users("delete", "--id", spelling, "--yes")
    assert by_option.returncode == 2 and "ASCII digits" in by_option.stderr
    assert count_rows(fresh_db, "users") == 4


def test_audit_table_and_jsonl_escape_what_members_wrote(fresh_db):
    with sql(fresh_db) as cur:
        cur.execute(
            "insert into public.expenses (user_id, category_id, amount, date, description) "
            "values (1, 1, 10, '2025-01-10', %s) returning id",
            (FORGED,),
        )
        expense_id = cur.fetchone()[0]
    table = audit("--target", str(expense_id), "--action", "expense.create")
    assert table.returncode == 0, table.stderr
    assert len(table.stdout.splitlines()) == 2  # the header and the one row, nothing forged
    assert not any(c in table.stdout for c in RAW_CONTROLS), repr(table.stdout)
    assert (
        "ok\\n2026-12-06" in table.stdout and "\\x1b[1A\\x1b[2K\\rX\\x9b31m\\u202e" in table.stdout
    )
    lines = audit("--target", str(expense_id), "--action", "expense.create", "--format", "jsonl")
    assert lines.returncode == 0, lines.stderr
    assert not any(c in lines.stdout for c in RAW_CONTROLS), repr(lines.stdout)
    assert len(lines.stdout.splitlines()) == 1
    assert json.loads(lines.stdout)["after"]["description"] == FORGED


def test_users_list_escapes_stored_names_and_emails(fresh_db):
    with sql(fresh_db) as cur:  # as an older release or the SQL editor may have stored it
        cur.execute("update public.users set email = %s where id = 4", (EVIL_EMAIL,))
    result = users("list")
    assert result.returncode == 0, result.stderr
    assert not any(c in result.stdout for c in RAW_CONTROLS), repr(result.stdout)
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07@e.co" in result.stdout
    assert len(result.stdout.splitlines()) == 6


@pytest.mark.parametrize(
    "body",
    [
        {"username": "Kabir", "email": EVIL_EMAIL},
        {"username": "Kabir", "email": "kabir\u202e@example.com"},
        {"username": "Kabir\u001b[2J"},
        {"username": "Kabir\u0085"},
    ],
)
async def test_register_refuses_control_characters(api, fresh_db, body):
    response = await api.post("/api/auth/register", json={**body, "password": "Str0ng!pass"})
    assert response.status_code == 400
    assert response.json()["error"] in (
        "email: Email must not contain control characters",
        "username: Username must be 3-30 characters: letters, digits or underscore",
    )
    assert count_rows(fresh_db, "users") == 4


def test_users_add_refuses_control_characters(fresh_db):
    result = users("add", "Kabir", "--email", EVIL_EMAIL, "--password-stdin", stdin="Str0ng!pass\n")
    assert_one_line_failure(result, "Email must not contain control characters")
    assert "\x1b" not in result.stderr
    assert count_rows(fresh_db, "users") == 4


def test_invite_code_is_printed_only_once_it_is_committed(fresh_db):
    # A commit that fails (a deferred check that runs at COMMIT): nothing stored, no code shown.
    with sql(fresh_db) as cur:
        cur.execute("""
            create function pg_temp_fail_commit() returns trigger language plpgsql as $$
            begin raise exception 'commit refused for the test'; end $$;
            create constraint trigger fail_commit after insert on public.invites
              deferrable initially deferred for each row execute function pg_temp_fail_commit();
        """)
    try:
        result = users("invite", "--note", "lost")
    finally:
        with sql(fresh_db) as cur:
            cur.execute("drop trigger fail_commit on public.invites")
            cur.execute("drop function pg_temp_fail_commit()")
    assert_one_line_failure(result, "commit refused for the test")
    assert "invite code" not in result.stdout
    assert count_rows(fresh_db, "invites") == 0
