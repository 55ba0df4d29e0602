"""scripts/smoke.py, the check an admin runs right after deploying (docs/compatibility.md),
against a gunicorn server on the local stack: it passes and prints the versions; it fails
with exit 1 and one line naming the check on a wrong password and an unreachable URL."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def smoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/smoke.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_names_every_option():
    result = smoke("--help")
    assert result.returncode == 0
    for option in ("--base-url", "--email", "--password", "--password-stdin", "--timeout"):
        assert option in result.stdout


def test_smoke_passes_against_the_local_stack_and_prints_the_versions(start_server, fresh_db):
    base = start_server()
    result = smoke("--base-url", base, "--email", "alok@example.com", "--password", "password123")
    assert result.returncode == 0, result.stderr
    assert "PostgreSQL 1" in result.stdout and "PostgREST 12.0.2" in result.stdout
    assert "logout: the logged-out token is refused" in result.stdout
    assert result.stdout.rstrip().endswith("smoke test passed")
    assert result.stderr == ""


def test_smoke_fails_with_one_line_naming_the_check(start_server, fresh_db):
    base = start_server()
    wrong = smoke("--base-url", base, "--email", "alok@example.com", "--password", "nope")
    assert wrong.returncode == 1
    assert wrong.stderr == (
        "smoke test failed: POST /api/auth/login: HTTP 401 (Invalid email or password), "
        "expected 200\n"
    )
    down = smoke("--base-url", "http://127.0.0.1:9", "--email", "a", "--password", "b")
    assert down.returncode == 1 and down.stderr.count("\n") == 1
    assert down.stderr.startswith("smoke test failed: http://127.0.0.1:9: ConnectError")
