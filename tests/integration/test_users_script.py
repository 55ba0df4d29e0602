"""scripts/users.py against the real database, checked through the real API.

Each command runs as an admin would run it (a subprocess with the stack's settings in the
environment); what it did is then checked through the in-process app: logins, tokens, the
members list.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, app_client, cookie, count_rows, sql, stack_settings

STRONG = "Str0ng!pass"
NEWER = "N3wer!pass"


def users(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "users.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BCRYPT_ROUNDS": "5", **env},
    )


def assert_one_line_failure(result: subprocess.CompletedProcess, text: str, code: int = 1):
    assert result.returncode == code, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("users.py: ")]
    assert len(errors) == 1 and text in errors[0], result.stderr  # progress lines aside
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in result.stderr


async def login(client, who: str, password: str):
    response = await client.post("/api/auth/login", json={"email": who, "password": password})
    client.cookies.clear()
    return response


def test_help_documents_every_command_examples_and_exit_codes():
    result = users("--help")
    assert result.returncode == 0
    for word in (
        "list",
        "add",
        "reset-password",
        "set-email",
        "rename",
        "revoke-sessions",
        "delete",
        "invite",
        "examples:",
        "exit codes:",
        "--password-stdin",
        "--yes",
    ):
        assert word in result.stdout, word


async def test_add_with_the_register_rules_and_bcrypt_cost(fresh_db):
    result = users(
        "add", "Kabir", "--email", "kabir@example.com", "--password-stdin", stdin=STRONG + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert "added user 5 Kabir (kabir@example.com)" in result.stdout
    assert STRONG not in result.stdout + result.stderr
    with sql(fresh_db) as cur:
        cur.execute("select password_hash from public.users where name = 'Kabir'")
        assert cur.fetchone()[0].startswith("$2b$05$")  # BCRYPT_ROUNDS of the settings
    async with app_client(stack_settings()) as client:
        assert (await login(client, "kabir@example.com", STRONG)).status_code == 200


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["add", "Kabir"], "weakpass\n", "Password must contain an uppercase letter"),
        (["add", "Kabir"], "Sh0rt!\n", "Password must be 8-128 characters long"),
        (["add", "ab"], STRONG + "\n", "Username must be 3-30 characters"),
        (["add", "Kabir", "--email", "not-an-email"], STRONG + "\n", "Invalid email address"),
        (["add", "alok"], STRONG + "\n", "Username already exists"),
        (["add", "Kabir", "--email", "ALOK@example.com"], STRONG + "\n", "Email already exists"),
        (["add", "Kabir"], "\n", "no password on standard input"),
    ],
)
def test_add_refuses_what_register_refuses(fresh_db, args, password, message):
    result = users(*args, "--password-stdin", stdin=password)
    assert_one_line_failure(result, message)
    assert count_rows(fresh_db, "users") == 4


def test_password_is_never_taken_from_a_pipe_without_the_flag(fresh_db):
    result = users("add", "Kabir", stdin=STRONG + "\n")
    assert_one_line_failure(result, "--password-stdin")
    assert count_rows(fresh_db, "users") == 4


async def test_reset_password_changes_it_and_logs_the_user_out(fresh_db):
    async with app_client(stack_settings()) as client:
        old = (await login(client, "amol", "password123")).json()["token"]
        result = users("reset-password", "AMOL@example.com", "--password-stdin", stdin=NEWER + "\n")
        assert result.returncode == 0, result.stderr
        assert "new password set for Amol (id 2)" in result.stdout
        assert (await login(client, "amol", "password123")).status_code == 401
        me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {old}"})
        assert me.status_code == 401
        time.sleep(1.1)  # tokens carry whole seconds: a new one is issued after the cut-off
        assert (await login(client, "amol", NEWER)).status_code == 200


async def test_revoke_sessions_refuses_every_earlier_token_of_that_user_only(fresh_db):
    async with app_client(stack_settings()) as client:
        amol = [(await login(client, "amol", "password123")).json()["token"] for _ in range(2)]
        alok = (await login(client, "alok", "password123")).json()["token"]
        result = users("revoke-sessions", "2")
        assert result.returncode == 0, result.stderr
        for token in amol:
            response = await client.get(
                "/api/expenses", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401
            assert response.json() == {"error": "Invalid or expired token"}
        by_cookie = await client.get("/api/auth/me", headers=cookie(amol[0]))
        assert by_cookie.status_code == 401
        assert (
            await client.get("/api/auth/me", headers={"Authorization": f"Bearer {alok}"})
        ).status_code == 200
        time.sleep(1.1)
        fresh = (await login(client, "amol", "password123")).json()["token"]
        assert (
            await client.get("/api/auth/me", headers={"Authorization": f"Bearer {fresh}"})
        ).status_code == 200


async def test_set_email_and_rename_show_in_the_members_list(fresh_db, auth_headers):
    assert users("set-email", "Rashmi", "rashmi@family.example").returncode == 0
    assert users("rename", "amol", "Amol_K").returncode == 0
    assert users("set-email", "atul", "--clear").returncode == 0
    async with app_client(stack_settings()) as client:
        members = (await client.get("/api/dashboard/users", headers=auth_headers)).json()
        assert (await login(client, "Amol_K", "password123")).status_code == 200
    assert members[1:] == [
        {"id": 2, "name": "Amol_K", "email": "amol@example.com"},
        {"id": 3, "name": "Atul", "email": None},
        {"id": 4, "name": "Rashmi", "email": "rashmi@family.example"},
    ]
    assert_one_line_failure(users("rename", "Rashmi", "alok"), "Username already exists")
    assert_one_line_failure(
        users("set-email", "Rashmi", "alok@example.com"), "Email already exists"
    )
    assert_one_line_failure(users("rename", "nobody", "Someone"), "no user 'nobody'")


def add_expenses(dsn: str, user_id: int, count: int) -> None:
    with sql(dsn) as cur:
        cur.executemany(
            "insert into public.expenses (user_id, category_id, amount, date) "
            "values (%s, 1, 10, '2025-01-10')",
            [(user_id,)] * count,
        )


def test_delete_shows_what_goes_and_asks_for_the_name(fresh_db):
    add_expenses(fresh_db, 4, 3)
    refused = users("delete", "Rashmi", stdin="yes\n")
    assert refused.returncode == 3
    assert "will be deleted with 3 expense(s)" in refused.stdout
    assert count_rows(fresh_db, "users") == 4 and count_rows(fresh_db, "expenses") == 3
    no_input = users("delete", "Rashmi", stdin="")
    assert no_input.returncode == 3 and count_rows(fresh_db, "users") == 4
    confirmed = users("delete", "Rashmi", stdin="Rashmi\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "deleted user 4 Rashmi and 3 expense(s)" in confirmed.stdout
    assert count_rows(fresh_db, "users") == 3 and count_rows(fresh_db, "expenses") == 0


async def test_delete_yes_removes_the_user_and_their_tokens_stop_working(fresh_db):
    add_expenses(fresh_db, 3, 2)
    async with app_client(stack_settings()) as client:
        token = (await login(client, "atul", "password123")).json()["token"]
        result = users("delete", "atul@example.com", "--yes")
        assert result.returncode == 0, result.stderr
        me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    assert count_rows(fresh_db, "expenses") == 0


async def test_invite_prints_a_single_use_code_that_register_accepts(fresh_db):
    result = users("invite", "--hours", "2", "--note", "for Kabir", REGISTRATION_MODE="invite")
    assert result.returncode == 0, result.stderr
    code = result.stdout.split("invite code: ", 1)[1].split()[0]
    assert "expires:" in result.stdout and "UTC" in result.stdout
    with sql(fresh_db) as cur:
        cur.execute(
            "select note, expires_at between now() + interval '119 minutes' "
            "and now() + interval '121 minutes', code_sha256 <> %s from public.invites",
            (code,),
        )
        assert cur.fetchall() == [("for Kabir", True, True)]
    body = {"username": "Kabir", "password": STRONG, "invite_code": code}
    async with app_client(stack_settings(registration_mode="invite")) as client:
        first = await client.post("/api/auth/register", json=body)
        second = await client.post("/api/auth/register", json={**body, "username": "Kabir2"})
    assert first.status_code == 200 and second.status_code == 400


def test_list_shows_every_user_with_expense_counts(fresh_db):
    add_expenses(fresh_db, 1, 2)
    result = users("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "id",
        "name",
        "email",
        "created",
        "expenses",
        "sessions",
        "revoked",
        "role",
    ]
    assert lines[1].split()[:3] == ["1", "Alok", "alok@example.com"]
    assert lines[1].split()[4] == "2"
    assert lines[-1] == "4 user(s)"
    assert "password" not in result.stdout and "$2b$" not in result.stdout


def test_unreachable_database_is_one_line(fresh_db):
    result = users("--database-url", "postgresql://nobody@127.0.0.1:9/none", "list")
    assert_one_line_failure(result, "cannot connect to the database")


def test_wrong_usage_is_exit_2():
    assert users("promote", "alok").returncode == 2


def test_every_changing_command_leaves_one_audit_row_without_secrets(fresh_db):
    steps = [
        (("add", "Kabir", "--email", "kabir@example.com", "--password-stdin"), STRONG + "\n"),
        (("set-email", "Kabir", "kabir@family.example"), None),
        (("rename", "Kabir", "Kabir_S"), None),
        (("reset-password", "Kabir_S", "--password-stdin"), NEWER + "\n"),
        (("revoke-sessions", "Kabir_S"), None),
        (("invite", "--note", "for grandma"), None),
        (("delete", "Kabir_S", "--yes"), None),
    ]
    for args, stdin in steps:
        result = users(*args, stdin=stdin)
        assert result.returncode == 0, (args, result.stderr)
    with sql(fresh_db) as cur:
        cur.execute(
            "select action, target_id, actor_id, before::text, after::text from public.audit_log "
            "where action like 'admin.%' order by id"
        )
        rows = cur.fetchall()
    assert [r[0] for r in rows] == [
        "admin.user_add",
        "admin.email_set",
        "admin.user_rename",
        "admin.password_reset",
        "admin.sessions_revoke",
        "admin.invite_create",
        "admin.user_delete",
    ]
    assert {r[1] for r in rows if r[0] != "admin.invite_create"} == {5}  # the new member
    assert all(r[2] is None for r in rows)  # no API caller: the admin worked on the database
    assert '"kabir@family.example"' in rows[1][4] and '"Kabir_S"' in rows[2][4]
    trail = repr(rows)
    assert STRONG not in trail and NEWER not in trail and "$2b$" not in trail
