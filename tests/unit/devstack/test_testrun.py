from __future__ import annotations

import pytest

from scripts.devstack.testrun import TEST_RUN_VAR, processes_of_run, split_pytest_args


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["test", "-x", "-k", "auth"], (["test"], ["-x", "-k", "auth"])),
        (["test", "--", "tests/unit", "-q"], (["test"], ["tests/unit", "-q"])),
        (["test", "--", "--help"], (["test"], ["--help"])),
        (["--profile", "dev", "test", "-x"], (["--profile", "dev", "test"], ["-x"])),
        (["test", "--help"], (["test", "--help"], [])),
        (["test", "-h"], (["test", "-h"], [])),
        (["test"], (["test"], [])),
        (["status"], (["status"], [])),
        (
            ["--profile", "test", "stop-service", "nginx"],
            (["--profile", "test", "stop-service", "nginx"], []),
        ),
    ],
)
def test_everything_after_test_goes_to_pytest_untouched(argv, expected):
    assert split_pytest_args(argv) == expected


def test_processes_of_run_finds_them_by_the_run_variable(tmp_path):
    def fake(pid, environ, cmdline=b"python\0-m\0pytest\0"):
        entry = tmp_path / pid
        entry.mkdir()
        (entry / "environ").write_bytes(environ)
        (entry / "cmdline").write_bytes(cmdline)

    fake("101", f"HOME=/root\0{TEST_RUN_VAR}=abc\0".encode(), b"chromium\0--headless\0")
    fake("102", f"{TEST_RUN_VAR}=other\0".encode())
    fake("103", f"X={TEST_RUN_VAR}=abc\0".encode())  # only a value that mentions it
    (tmp_path / "104").mkdir()  # gone meanwhile: no files left to read
    (tmp_path / "self").mkdir()
    assert processes_of_run("abc", tmp_path) == [(101, "chromium --headless")]
