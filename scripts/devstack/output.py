"""What the user sees: progress lines, warnings, one-line errors with a hint, log tails."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from .paths import REPO


class StackError(Exception):
    """A failure to report as one line plus a hint (no traceback)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def note(message: str) -> None:
    print(f"    {message}", flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def rel(path: Path) -> str:
    """Path relative to the repo when inside it (shorter messages)."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def log_tail(path: Path, lines: int = 20) -> None:
    if not path.exists():
        print(f"--- {rel(path)} does not exist", file=sys.stderr)
        return
    text = path.read_text(errors="replace").splitlines()[-lines:]
    print(f"--- last {len(text)} lines of {rel(path)}:", file=sys.stderr)
    for line in text:
        print(f"    {line}", file=sys.stderr)
    sys.stderr.flush()
