from __future__ import annotations

import os
import sys

import pytest

from scripts.devstack.output import StackError, rel
from scripts.devstack.paths import REPO
from scripts.devstack.proc import pid_alive, run, spawn, terminate, wait_until


def test_run_returns_captured_output_when_quiet():
    assert run([sys.executable, "-c", "print('hi')"], "saying hi", quiet=True) == "hi\n"


def test_run_turns_a_failure_into_one_line_with_the_hint(capsys):
    with pytest.raises(StackError) as failed:
        run([sys.executable, "-c", "print('why'); exit(3)"], "the step", "try again", quiet=True)
    assert str(failed.value) == "the step failed (exit 3)"
    assert failed.value.hint == "try again"
    assert "why" in capsys.readouterr().err  # quiet output is shown on failure


def test_run_names_a_missing_program():
    with pytest.raises(StackError, match="no-such-program-x not found"):
        run(["no-such-program-x"], "the step")


def test_pid_alive_checks_the_command_line_token():
    assert pid_alive(os.getpid())
    assert pid_alive(os.getpid(), "python")
    assert not pid_alive(os.getpid(), "postgrest-not-me")
    assert not pid_alive(2**22 + 12345)


# spawn leaves its child running on purpose (scripts/dev exits; the pid file remembers it)
@pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning")
def test_spawn_records_the_pid_and_terminate_stops_the_whole_session(tmp_path):
    log, pidfile = tmp_path / "sleep.log", tmp_path / "sleep.pid"
    pid = spawn(["sleep", "60"], log, pidfile)
    assert pidfile.read_text() == f"{pid}\n"
    assert os.getpgid(pid) == pid  # leads its own session
    assert wait_until(lambda: pid_alive(pid, "sleep"), 5)
    assert "scripts/dev: sleep 60" in log.read_text()
    terminate(pid, "sleep", "sleep")
    assert not pid_alive(pid)
    os.waitpid(pid, 0)  # reap it: this test process is its parent


def test_wait_until_gives_up_after_the_timeout():
    assert wait_until(lambda: True, 0)
    assert not wait_until(lambda: False, 0.1, interval=0.05)


def test_rel_shortens_paths_inside_the_repository():
    assert rel(REPO / "scripts" / "dev") == "scripts/dev"
    assert rel(REPO.parent / "elsewhere") == str(REPO.parent / "elsewhere")
