"""The stack's Postgres cluster: initdb as an unprivileged OS user (initdb and pg_ctl refuse
root), in .stack/<profile>/pgdata or a /var/tmp fallback; start and stop with pg_ctl."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .install import pg_tool
from .output import StackError, log_tail, note, rel, step
from .proc import run
from .profiles import HOST
from .stack import PG_FALLBACK_ROOT, PgDirs, Stack, find_pgdirs, pg_candidates

PG_SYSTEM_USER = "ffbstack"  # created only when there is no `postgres` user
# Written into pgdata by init_postgres: the cluster's superuser is supabase_admin and
# `postgres` is shaped like hosted Supabase's (clusters without it predate that).
CLUSTER_MARKER = "ffb-supabase-roles"


def pg_os_user() -> str | None:
    """OS user to run Postgres as: None = ourselves (not root); else postgres / ffbstack."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", PG_SYSTEM_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    step(f"creating system user {PG_SYSTEM_USER} to run Postgres (initdb refuses root)")
    run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
        f"useradd {PG_SYSTEM_USER}",
    )
    return PG_SYSTEM_USER


def data_owner(pg: PgDirs) -> str | None:
    if os.geteuid() != 0:
        return None
    return pwd.getpwuid(pg.data.stat().st_uid).pw_name


def as_user(user: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def give_to(user: str | None, *paths: Path) -> None:
    if user:
        for path in paths:
            shutil.chown(path, user, user)


def user_can_write(user: str | None, path: Path) -> bool:
    if not user:
        return os.access(path, os.W_OK | os.X_OK)
    return (
        subprocess.run(
            as_user(user, ["test", "-w", str(path), "-a", "-x", str(path)]), cwd="/"
        ).returncode
        == 0
    )


def prepare_pgdirs(stack: Stack, user: str | None) -> PgDirs:
    """Choose where a new cluster goes: .stack/<profile>/pgdata if user can reach it."""
    local, fallback = pg_candidates(stack)
    for pg in (local, fallback):
        pg.data.mkdir(parents=True, exist_ok=True)
        pg.data.chmod(0o700)
        give_to(user, pg.data)
        if user_can_write(user, pg.data):
            if pg is fallback:
                note(
                    f"{user or 'this user'} cannot reach {rel(local.data)}; using {fallback.data} instead"
                )
            return pg
        if pg is local:
            shutil.rmtree(local.data, ignore_errors=True)
    raise StackError(
        f"OS user {user} cannot write {fallback.data}",
        f"check the permissions of {PG_FALLBACK_ROOT}",
    )


def wipe_pgdata(stack: Stack) -> None:
    for pg in pg_candidates(stack):
        if pg.data.exists():
            step(f"wiping {rel(pg.data)} (fresh database for this run)")
            shutil.rmtree(pg.data)


def init_postgres(stack: Stack, secret: dict[str, str]) -> PgDirs:
    user = pg_os_user()
    pg = prepare_pgdirs(stack, user)
    step(
        f"initialising a Postgres cluster in {rel(pg.data)} (as OS user {user or 'me'}, "
        f"superuser supabase_admin)"
    )
    with tempfile.NamedTemporaryFile("w", delete=False) as pwfile:
        pwfile.write(secret["supabase_admin_password"] + "\n")
    give_to(user, Path(pwfile.name))
    try:
        run(
            as_user(
                user,
                [
                    pg_tool("initdb", stack.major),
                    "-D",
                    str(pg.data),
                    "-U",
                    "supabase_admin",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    f"--pwfile={pwfile.name}",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
            ),
            "initdb",
            f"see the output above; delete {pg.data} and rerun",
            cwd="/",
            quiet=True,
        )
    finally:
        os.unlink(pwfile.name)
    marker = pg.data / CLUSTER_MARKER
    marker.write_text("initdb superuser supabase_admin; role postgres as on hosted Supabase\n")
    give_to(user, marker)
    return pg


def retire_superuser_cluster(stack: Stack) -> None:
    """A cluster from before CLUSTER_MARKER has `postgres` as its bootstrap superuser. Demoted
    in place it would still own the system catalogs and every database, which hosted
    Supabase's `postgres` does not: move the cluster aside, intact, and initialise a fresh
    one (the old data stays readable with pg_ctl; dev data is re-seeded anyway)."""
    pg = find_pgdirs(stack)
    if pg is None or (pg.data / CLUSTER_MARKER).exists():
        return
    pid = stack.live_pid("postgres")
    if pid is not None:
        step(f"stopping postgres (pid {pid})")
        stop_postgres(stack)
    aside = pg.data.with_name(f"pgdata.superuser-postgres-{time.strftime('%Y%m%d-%H%M%S')}")
    step(
        f"this cluster was made with `postgres` as its superuser; moving it to {rel(aside)} "
        f"and initialising one shaped like hosted Supabase"
    )
    note(
        f"the old data stays there: `pg_ctl -D {aside} -o '-p 5499' start`, then pg_dump "
        f"-p 5499 -U postgres --data-only ... to copy rows over"
    )
    pg.data.rename(aside)


def server_options(stack: Stack, pg: PgDirs) -> str:
    """pg_ctl's -o: the port and the `postgres -c` settings of this profile."""
    settings = [
        f"listen_addresses={HOST}",
        f"unix_socket_directories={pg.sock}",
        "max_connections=200",
        "shared_buffers=256MB",
        *stack.profile.pg_settings,
    ]
    return " ".join([f"-p {stack.profile.pg_port}"] + [f"-c {shlex.quote(s)}" for s in settings])


def start_postgres(stack: Stack) -> None:
    pg = find_pgdirs(stack)
    if pg is None:
        raise StackError(
            f"no Postgres cluster for profile {stack.profile.name}",
            f"run `scripts/dev --profile {stack.profile.name} start` first",
        )
    user = data_owner(pg)
    pg.sock.mkdir(parents=True, exist_ok=True)
    if pg.sock.parent == pg.base:
        give_to(user, pg.sock)
    if pg.log != stack.log("postgres"):
        stack.log("postgres").unlink(missing_ok=True)
        stack.log("postgres").symlink_to(pg.log)
    pg.log.touch()
    give_to(user, pg.log)
    step(f"starting PostgreSQL {stack.major} on {HOST}:{stack.profile.pg_port}")
    pg_ctl = [
        pg_tool("pg_ctl", stack.major),
        "-w",
        "-t",
        "60",
        "-D",
        str(pg.data),
        "-l",
        str(pg.log),
    ]
    try:
        run(
            as_user(user, [*pg_ctl, "-o", server_options(stack, pg), "start"]),
            "starting Postgres",
            quiet=True,
            cwd="/",
        )
    except StackError as exc:
        log_tail(pg.log)
        exc.hint = f"see {rel(stack.log('postgres'))} (tail above)"
        raise
    stack.major_file.write_text(f"{stack.major}\n")


def stop_postgres(stack: Stack) -> None:
    pg = find_pgdirs(stack)
    if pg is None:
        raise StackError(f"no Postgres cluster for profile {stack.profile.name}")
    run(
        as_user(
            data_owner(pg),
            [
                pg_tool("pg_ctl", stack.major),
                "-w",
                "-t",
                "60",
                "-D",
                str(pg.data),
                "-m",
                "fast",
                "stop",
            ],
        ),
        "pg_ctl stop",
        f"see {rel(stack.log('postgres'))}",
        cwd="/",
        quiet=True,
    )
