"""The stack as a whole: its services started in order (Postgres, PostgREST, nginx, the
API), the schema bootstrapped and (dev) seeded, and stopped in reverse order."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .install import ensure_installed
from .nginx import start_nginx, write_nginx_conf
from .output import StackError, note, rel, step, warn
from .paths import REPO, VENV, VENV_PY
from .pooler import POOLERS, start_pooler
from .postgres import init_postgres, retire_superuser_cluster, start_postgres, stop_postgres
from .postgrest import (
    reload_postgrest_schema,
    start_postgrest,
    wait_postgrest_reconnected,
    write_postgrest_conf,
)
from .proc import ensure_port_free, http_status, spawn, terminate, wait_ready
from .profiles import HOST
from .roles import ensure_roles
from .settings import app_env, app_settings, ensure_env_file, load_secrets
from .stack import SERVICES, Stack, find_pgdirs

DEMO_USERS = ["Alok", "Amol", "Atul", "Rashmi"]
DEMO_PASSWORD = "password123"


def api_command(stack: Stack) -> list[str]:
    # like the Procfile's worker (server.py): no Server header, X-Forwarded-For left to the
    # app (TRUSTED_PROXY_HOPS)
    return [
        str(VENV / "bin" / "uvicorn"),
        "--factory",
        os.environ.get("DEV_APP_MODULE", "main:create_app"),
        "--host",
        HOST,
        "--port",
        str(stack.profile.api_port),
        "--no-server-header",
        "--no-proxy-headers",
    ]


def api_url(stack: Stack) -> str:
    return f"http://{HOST}:{stack.profile.api_port}"


def start_api(stack: Stack, env: dict[str, str]) -> None:
    log = stack.log("api")
    step(f"starting the API on {api_url(stack)} (log: {rel(log)})")
    pid = spawn(api_command(stack), log, stack.pidfile("api"), env)
    ready = lambda: http_status(f"{api_url(stack)}/health/ready", timeout=5) == 200  # noqa: E731
    try:
        wait_ready(pid, ready, 60, "the API (GET /health/ready)", log)
    except StackError:
        stop_service(stack, "api")
        raise


def stop_service(stack: Stack, service: str) -> bool:
    """Stop one service if we started it and it still runs. True if something was stopped."""
    pid = stack.live_pid(service)
    if pid is None:
        if service != "postgres":
            stack.pidfile(service).unlink(missing_ok=True)
        return False
    step(f"stopping {service} (pid {pid})")
    if service == "postgres":
        stop_postgres(stack)
        return True
    terminate(pid, SERVICES[service], service)
    stack.pidfile(service).unlink(missing_ok=True)
    return True


def stop_all(stack: Stack) -> list[str]:
    return [s for s in reversed(stack.services()) if stop_service(stack, s)]


def shutdown(stack: Stack, services: list[str]) -> None:
    """Stop services in reverse start order, ignoring further Ctrl-C while doing so."""
    if not services:
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for service in reversed(services):
            try:
                stop_service(stack, service)
            except StackError as exc:
                warn(f"{exc} ({exc.hint})" if exc.hint else str(exc))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start_service(
    stack: Stack, service: str, secret: dict[str, str], started: list[str] | None = None
) -> None:
    """Start service unless it already runs; if it starts, it is appended to `started`
    first, so that an interrupt half-way through still gets it cleaned up."""
    pid = stack.live_pid(service)
    if pid is not None:
        note(f"{service} already running (pid {pid})")
        return
    port = stack.port(service)
    assert port is not None, f"profile {stack.profile.name} has no {service}"
    ensure_port_free(port, service)
    if started is not None:
        started.append(service)
    if service == "postgres":
        start_postgres(stack)
        ensure_roles(stack, secret)
        wait_postgrest_reconnected(stack)
    elif service in POOLERS:
        start_pooler(stack, service, secret)
    elif service == "postgrest":
        write_postgrest_conf(stack, secret)
        start_postgrest(stack)
    elif service == "nginx":
        write_nginx_conf(stack)
        start_nginx(stack)
    else:
        start_api(stack, app_env(stack, secret))


def run_app_script(name: str, env: dict[str, str]) -> bool:
    path = REPO / "scripts" / name
    if not path.exists():
        step(f"skipping scripts/{name} (not present)")
        return False
    step(f"running scripts/{name}")
    rc = subprocess.run([str(VENV_PY), str(path)], cwd=REPO, env=env).returncode
    if rc != 0:
        raise StackError(f"scripts/{name} failed (exit {rc})", "its output is above")
    return True


def bring_up_stack(stack: Stack, secret: dict[str, str], started: list[str]) -> bool:
    """Postgres, PostgREST, nginx, schema bootstrap and (dev) demo seed.

    Appends each service this call starts to `started` as it goes (so a caller can undo
    exactly that on failure or Ctrl-C). Returns True if demo data was seeded.
    """
    retire_superuser_cluster(stack)
    if find_pgdirs(stack) is None:
        if stack.live_pid("postgres") is None:
            init_postgres(stack, secret)
    for service in ("postgres", *POOLERS, "postgrest", "nginx"):
        start_service(stack, service, secret, started)
    env = app_env(stack, secret)
    if run_app_script("bootstrap_schema.py", env):
        reload_postgrest_schema(stack)
        time.sleep(0.5)  # the reload is asynchronous; give PostgREST a moment
    return stack.profile.seed_demo and run_app_script("seed_demo.py", env)


def prepare(stack: Stack, test_tools: bool = False) -> dict[str, str]:
    """Install what is missing, create the state dirs, secrets and (dev) .env."""
    ensure_installed(test_tools, majors=(stack.major,))
    stack.make_dirs()
    secret = load_secrets(stack)
    if stack.profile.write_env_file:
        ensure_env_file(app_settings(stack, secret))
    return secret


def print_summary(stack: Stack, seeded: bool) -> None:
    p = stack.profile
    where = (
        "DATABASE_URL in .env"
        if p.write_env_file
        else f"postgres_password in {rel(stack.secrets_file)}"
    )
    keys = (
        "SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY, JWT_SECRET in .env"
        if p.write_env_file
        else f"anon_key, service_role_key, jwt_secret in {rel(stack.secrets_file)}"
    )
    rows = []
    if p.api_port:
        rows += [("API", api_url(stack)), ("API docs", f"{api_url(stack)}/docs")]
    rows += [
        ("Supabase URL", f"{stack.supabase_url}  (REST at /rest/v1/)"),
        (
            f"PostgreSQL {stack.major}",
            f"postgresql://postgres@{HOST}:{p.pg_port}/postgres  (password: {where})",
        ),
        ("Poolers", f"session :{p.pooler_session_port}, transaction :{p.pooler_transaction_port}"),
        ("Keys", keys),
        ("Logs", f"{rel(stack.logs)}/"),
    ]
    if seeded:
        emails = ", ".join(f"{name.lower()}@example.com" for name in DEMO_USERS)
        rows.append(("Demo logins", f"{emails}  password: {DEMO_PASSWORD}"))
    print()
    for label, value in rows:
        print(f"  {label:<13} {value}")
    print(flush=True)
