"""`scripts/dev test`: static checks, a fresh test stack, pytest on it, and the check that
the suite left no process running."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .install import ensure_installed
from .majors import MAJORS, other_major
from .output import Interrupted, note, step, warn
from .paths import REPO, VENV, VENV_PY
from .postgres import wipe_pgdata
from .proc import run_foreground, wait_until
from .services import bring_up_stack, shutdown, stop_all
from .settings import app_env, load_secrets
from .stack import Stack

# Every process the suite starts (servers, bcrypt pools, browsers) inherits this variable
# from pytest's environment, with a value of its own per run; whatever still carries it once
# pytest has exited and the stack is stopped was left behind.
TEST_RUN_VAR = "FFB_TEST_RUN"

STATIC_CHECKS = [  # (what, command, how to fix); settings in pyproject.toml
    ("ruff check", ["ruff", "check", "."], "run `.venv/bin/ruff check --fix .`, then fix the rest"),
    ("ruff format --check", ["ruff", "format", "--check", "."], "run `.venv/bin/ruff format .`"),
    ("mypy", ["mypy"], "fix the types it names"),
]


# `test`'s own options, taken only right after `test` (everything else goes to pytest)
OWN_OPTIONS = {"--postgres": 1, "--both": 0}
# what the second pass of `test --both` runs on the other major when no pytest args are given
SECOND_PASS = ["tests/integration", "tests/contract"]


def split_pytest_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split `[global options] test [--postgres N] [--both] ARGS...` so that ARGS go to
    pytest untouched."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--profile" else 1
    if i >= len(argv) or argv[i] != "test":
        return argv, []
    i += 1
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name not in OWN_OPTIONS:
            break
        i += 1 + (OWN_OPTIONS[name] if "=" not in argv[i] else 0)
    head, tail = argv[:i], argv[i:]
    if tail in (["-h"], ["--help"]):
        return argv, []
    return head, tail[1:] if tail[:1] == ["--"] else tail


def wants_both(
    flag: bool,
    pytest_args: list[str],
    major_named: bool,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Whether `test` adds the second pass on the other major: a plain `scripts/dev test`
    (no pytest args, no major named) runs what CI runs, both; so does --both, or $CI set
    to true/1/yes (GitHub Actions, GitLab CI and most others set it). Pytest args or a
    named major (--postgres, $DEV_POSTGRES) alone mean one targeted pass."""
    source = os.environ if env is None else env
    on_ci = source.get("CI", "").strip().lower() in ("true", "1", "yes")
    return flag or on_ci or (not pytest_args and not major_named)


def processes_of_run(run_id: str, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment has TEST_RUN_VAR=run_id."""
    marker = f"{TEST_RUN_VAR}={run_id}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or a zombie
            continue
        found.append((int(entry.name), cmdline.strip()[:200]))
    return found


def check_no_leftovers(run_id: str, grace: float = 10) -> bool:
    """True when the suite left no process; otherwise list them, stop them and say so."""
    if not wait_until(lambda: not processes_of_run(run_id), grace, interval=0.5):
        left = processes_of_run(run_id)
        if left:
            print(f"error: the test suite left {len(left)} process(es) running:", file=sys.stderr)
            for pid, cmdline in left:
                print(f"  pid {pid}: {cmdline}", file=sys.stderr)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid, _ in processes_of_run(run_id):
                    try:
                        os.kill(pid, sig)
                    except OSError:
                        pass
                if wait_until(lambda: not processes_of_run(run_id), 5):
                    break
            return False
    return True


def static_checks_pass() -> bool:
    """Lint, format and type checks, before any stack is started. DEV_TEST_CHECKS=0 skips
    them for a quick targeted run while iterating (CI and a final run never do)."""
    if os.environ.get("DEV_TEST_CHECKS", "1") == "0":
        warn("DEV_TEST_CHECKS=0: skipping ruff and mypy")
        return True
    for what, cmd, fix in STATIC_CHECKS:
        step(f"running {what}")
        if subprocess.run([str(VENV / "bin" / cmd[0]), *cmd[1:]], cwd=REPO).returncode != 0:
            print(f"error: {what} failed: {fix}", file=sys.stderr)
            return False
    return True


def run_tests(stack: Stack, pytest_args: list[str], both: bool = False) -> int:
    """The whole `test` command; returns its exit code. With `both`, a second pass runs on
    the other major: the same pytest args, or tests/integration and tests/contract when
    none were given."""
    other = Stack(stack.profile, other_major(stack.major))
    ensure_installed(test_tools=True, majors=(stack.major, other.major) if both else (stack.major,))
    if not static_checks_pass():
        return 1
    passes = [(stack, pytest_args)] + ([(other, pytest_args or SECOND_PASS)] if both else [])
    results = []
    for number, (pass_stack, args) in enumerate(passes, 1):
        if len(passes) > 1:
            step(
                f"pass {number}/2: PostgreSQL {pass_stack.major}, pytest {' '.join(args) or 'tests'}"
            )
        started = time.monotonic()
        rc = run_pass(pass_stack, args)
        results.append((pass_stack.major, args, rc, time.monotonic() - started))
        if rc == 130:
            break
    if len(passes) > 1:
        step("test passes:")
        for major, args, rc, seconds in results:
            what = " ".join(args) or "the whole suite"
            note(f"PostgreSQL {major}: {what}: exit {rc} in {seconds / 60:.1f} min")
    return next((rc for *_, rc, _ in results if rc != 0), 0)


def run_pass(stack: Stack, pytest_args: list[str]) -> int:
    """One pass: a fresh test stack on stack.major, pytest, the stack stopped, leftovers."""
    stack.make_dirs()
    for major in MAJORS:  # leftovers of an interrupted run, on either major
        stop_all(Stack(stack.profile, major))
    wipe_pgdata(stack)
    secret = load_secrets(stack)
    run_id = secrets.token_hex(8)
    try:
        bring_up_stack(stack, secret, [])
        # after the cluster exists: DEV_ADMIN_DSN names its socket
        env = {**app_env(stack, secret), TEST_RUN_VAR: run_id}
        step(f"running pytest tests {' '.join(pytest_args)}".rstrip())
        rc = run_foreground([str(VENV_PY), "-m", "pytest", *pytest_args], env)
    except Interrupted:
        rc = 130
    finally:
        step("stopping the test stack")
        shutdown(stack, stack.services())
    step("checking that the suite left no process running")
    if not check_no_leftovers(run_id) and rc == 0:
        rc = 1
    if rc == 5:
        print(
            "error: pytest collected no tests (exit 5); a test run that runs nothing fails",
            file=sys.stderr,
        )
        return 1
    return rc
