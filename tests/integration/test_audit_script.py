"""scripts/audit.py against the real stack: filters, table and JSON lines output, pruning."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, count_rows, sql

DAY = dt.date.today()
SCRIPT = [sys.executable, str(ROOT / "scripts" / "audit.py")]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def trail(fresh_db) -> str:
    """Three expense writes by members 1 and 2, a failed login, and one old row."""
    with sql(fresh_db) as cur:  # at 10:00 UTC, 10, 9, 8 and 7 days before DAY
        cur.execute(
            "insert into public.audit_log (occurred_at, actor_id, action, target_id, "
            "request_id, client_addr, before, after) values "
            "(%(day)s::timestamptz - interval '10 days', 1, 'expense.create', 7, 'r1', '10.0.0.1', null, "
            " '{\"amount\": 10}'), "
            "(%(day)s::timestamptz - interval '9 days', 1, 'expense.update', 7, 'r2', '10.0.0.1', "
            " '{\"amount\": 10}', '{\"amount\": 12.5}'), "
            "(%(day)s::timestamptz - interval '8 days', 2, 'expense.delete', 8, 'r3', '10.0.0.2', "
            " '{\"amount\": 3}', null), "
            "(%(day)s::timestamptz - interval '7 days', null, 'auth.login_failed', 1, 'r4', '10.0.0.9', "
            " null, null), "
            "(now() - interval '400 days', 1, 'auth.login', 1, 'r0', null, null, null)",
            {"day": f"{DAY} 10:00+00"},
        )
    return fresh_db


def ago(days: int) -> str:
    return (DAY - dt.timedelta(days=days)).isoformat()


def jsonl(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_help_shows_examples():
    result = run("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "--since 2025-01-01" in result.stdout


def test_filters_by_user_action_and_date_range(trail):
    assert [
        r["request_id"] for r in jsonl(run("--user", "1", "--format", "jsonl", "--since", ago(30)))
    ] == ["r2", "r1"]
    assert [
        r["request_id"]
        for r in jsonl(
            run("--action", "expense.delete", "--action", "auth.login_failed", "--format", "jsonl")
        )
    ] == ["r4", "r3"]
    assert [
        r["request_id"]
        for r in jsonl(run("--since", ago(9), "--until", f"{ago(8)} 10:00", "--format", "jsonl"))
    ] == ["r2"]
    assert [
        r["request_id"] for r in jsonl(run("--target", "7", "--limit", "1", "--format", "jsonl"))
    ] == ["r2"]


def test_jsonl_holds_before_and_after(trail):
    [row] = jsonl(run("--action", "expense.update", "--format", "jsonl"))
    assert row["before"] == {"amount": 10} and row["after"] == {"amount": 12.5}
    assert row["actor_id"] == 1 and row["client_addr"] == "10.0.0.1"


def test_table_shows_what_changed(trail):
    result = run("--action", "expense.update")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["when", "(UTC)", "actor"]
    assert "amount 10 -> 12.5" in lines[1] and "expense.update" in lines[1]


def test_prune_uses_the_retention_setting(trail):
    result = run("--prune", env={"AUDIT_RETENTION_DAYS": "365"})
    assert result.returncode == 0, result.stderr
    assert "deleted 1 rows" in result.stdout
    assert count_rows(trail, "audit_log") == 4


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "yesterday"],
        ["--action", "drop.table"],
        ["--limit", "-1"],
        ["--prune", "--days", "0"],
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(args):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("scripts/audit.py: error:")


def test_unreachable_database_is_one_line_and_exit_2():
    result = run("--database-url", "postgresql://nobody:x@127.0.0.1:9/none")
    assert result.returncode == 2
    assert result.stderr.startswith("audit: cannot connect to the database:")
    assert len(result.stderr.strip().splitlines()) == 1
