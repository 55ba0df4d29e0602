"""Helpers shared by every suite: the database (psycopg2 on DATABASE_URL), the app in
process, tokens and headers, real servers in subprocesses. Import them from here; the
fixtures built on them live in tests/conftest.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import psycopg2
from asgi_lifespan import LifespanManager
from jose import jwt

from auth import create_token
from config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent

DEMO_PASSWORD = "password123"
CATEGORIES = [
    (1, "Food", "Groceries, restaurants and snacks"),
    (2, "Transportation", "Fuel, public transport and taxis"),
    (3, "Utilities", "Electricity, water, internet and phone bills"),
    (4, "Entertainment", "Movies, events, subscriptions and hobbies"),
]
PAYMENT_METHODS = [(1, "Cash"), (2, "Credit Card"), (3, "Debit Card"), (4, "UPI"), (5, "Other")]
FAMILY = [(1, "Alok"), (2, "Amol"), (3, "Atul"), (4, "Rashmi")]
TABLES = (
    "expenses",
    "expense_monthly_totals",
    "users",
    "categories",
    "payment_methods",
    "revoked_tokens",
    "idempotency_keys",
    "rate_limits",
    "invites",
    "audit_log",
    "budgets",
    "recurring_expenses",
    "recurring_occurrences",
    "sessions",
    "refresh_tokens",
    "password_reset_codes",
)


# --------------------------------------------------------------------------------------
# Database helpers (psycopg2 on DATABASE_URL)
# --------------------------------------------------------------------------------------
class Dsn(str):
    """DATABASE_URL whose repr hides the password (pytest prints fixture values on failure)."""

    def __repr__(self) -> str:
        return "<DATABASE_URL>"


@contextmanager
def sql(dsn: str):
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


_hash_cache: dict[str, str] = {}


def password_hash(password: str) -> str:
    """bcrypt with few rounds: test users only; the API verifies any cost."""
    if password not in _hash_cache:
        from passwords import hash_password

        _hash_cache[password] = hash_password(password, rounds=4)
    return _hash_cache[password]


def empty_and_load_reference(cur, categories=CATEGORIES, payment_methods=PAYMENT_METHODS) -> None:
    """Truncate every table, then insert the given categories and payment methods.

    The truncate locks every table at once, in list order; a reader that runs meanwhile in
    another order (a worker's readiness probe, a PostgREST request of a server still up)
    can deadlock with it, and Postgres then cancels one side. When it cancels the truncate,
    it is retried (under a savepoint: the caller's transaction stays usable)."""
    for attempt in range(5):
        cur.execute("savepoint before_truncate")
        try:
            cur.execute(
                "truncate " + ", ".join(f"public.{t}" for t in TABLES) + " restart identity cascade"
            )
            break
        except psycopg2.errors.DeadlockDetected:
            cur.execute("rollback to savepoint before_truncate")
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    cur.executemany(
        "insert into public.categories (id, name, description) values (%s,%s,%s)", categories
    )
    cur.executemany("insert into public.payment_methods (id, name) values (%s,%s)", payment_methods)


def sync_sequences(cur, tables=("categories", "payment_methods", "users", "expenses")) -> None:
    """Identity sequences continue after explicitly inserted ids."""
    for table in tables:
        cur.execute(
            f"select setval(pg_get_serial_sequence('public.{table}', 'id'), "
            f"coalesce((select max(id) from public.{table}), 0) + 1, false)"
        )


def reset_database(dsn: str, users=FAMILY) -> None:
    """Empty every table and load reference data plus the given users (password
    `password123`, email <name>@example.com)."""
    with sql(dsn) as cur:
        empty_and_load_reference(cur)
        cur.executemany(
            "insert into public.users (id, name, email, password_hash) values (%s,%s,%s,%s)",
            [
                (uid, name, f"{name.lower()}@example.com", password_hash(DEMO_PASSWORD))
                for uid, name in users
            ],
        )
        sync_sequences(cur)


def insert_expenses(
    dsn: str,
    rows,
    columns: str = "user_id, category_id, payment_method_id, amount, description, date",
) -> None:
    """Insert expense rows (tuples in the order of `columns`); the totals trigger counts them."""
    placeholders = ",".join(["%s"] * len(columns.split(",")))
    with sql(dsn) as cur:
        cur.executemany(f"insert into public.expenses ({columns}) values ({placeholders})", rows)


def count_rows(dsn: str, table: str) -> int:
    with sql(dsn) as cur:
        cur.execute(f"select count(*) from public.{table}")
        return cur.fetchone()[0]


def data_state(dsn: str) -> tuple:
    """Every expense, the dashboard totals, the audit log and the user count: what a
    refused request must leave exactly as it was."""
    with sql(dsn) as cur:
        cur.execute("select coalesce(json_agg(e order by e.id), '[]')::text from public.expenses e")
        expenses = cur.fetchone()[0]
        cur.execute(
            "select coalesce(json_agg(t order by t.user_id, t.month, t.category_id), "
            "'[]')::text from public.expense_monthly_totals t"
        )
        totals = cur.fetchone()[0]
        cur.execute(
            "select coalesce(json_agg(a order by a.id), '[]')::text from public.audit_log a"
        )
        audit = cur.fetchone()[0]
        cur.execute("select count(*) from public.users")
        users = cur.fetchone()[0]
    return expenses, totals, audit, users


# --------------------------------------------------------------------------------------
# The app, in process (real stack) — httpx over ASGI
# --------------------------------------------------------------------------------------
def stack_settings(**overrides) -> Settings:
    """Settings of the test stack; rate limits off unless a test turns them on. The
    dashboard cache too: many tests write straight in SQL and read at once, which the cache
    answers fresh only once the NOTIFY has arrived (milliseconds); it has its own tests
    (test_dashboard_cache.py) and the servers the suite starts with gunicorn keep it on."""
    base = {
        "rate_limit_enabled": False,
        "bcrypt_rounds": 4,
        "bcrypt_concurrency": 2,
        "dashboard_cache": False,
        # the leader loop would materialise rules while tests empty tables (test_recurring.py
        # runs materialize_recurring itself, and the loop's function directly)
        "recurring_scheduler": False,
    }
    return load_settings(**{**base, **overrides})


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from main import create_app

    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=30
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def forget_reference_data(client: httpx.AsyncClient) -> None:
    """Drop the app's cached categories and payment methods (a test replaced the data)."""
    from deps import app_state

    app_state(client.app).reference_cache.invalidate()  # type: ignore[attr-defined]


def load_contract_dataset(dsn: str, api: httpx.AsyncClient) -> str:
    """The fixed dataset of tests/contract/dataset.py (goldens, recordings, properties)."""
    from tests.contract import dataset

    dataset.load(dsn)
    forget_reference_data(api)
    return dsn


# --------------------------------------------------------------------------------------
# Tokens and headers
# --------------------------------------------------------------------------------------
def token_for(
    user_id: int = 1, user_name: str = "Alok", *, secret: str | None = None, **claims: object
) -> str:
    """A token for a demo user as login issues it, signed with this run's JWT_SECRET (the
    stack's; in unit tests the fake one of tests/unit/conftest.py). `claims` replace or add
    claims (e.g. exp=0 for an expired token); `secret` signs with another key."""
    settings = load_settings()
    token, _ = create_token(
        settings, {"id": user_id, "name": user_name, "email": f"{user_name.lower()}@example.com"}
    )
    if not claims and secret is None:
        return token
    return jwt.encode(
        {**jwt.get_unverified_claims(token), **claims},
        secret or settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )


def bearer(token: str | None = None) -> dict[str, str]:
    """`Authorization: Bearer` with `token` (default: a fresh token of Alok)."""
    return {"Authorization": f"Bearer {token or token_for()}"}


def cookie(token: str) -> dict[str, str]:
    """The legacy `jwt` cookie instead of the Authorization header."""
    return {"Cookie": f"jwt={token}"}


# --------------------------------------------------------------------------------------
# Real servers in subprocesses (gunicorn/uvicorn), for multi-worker and browser tests
# --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


PROCFILE_CMD = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "main:create_app()"]


@contextmanager
def gunicorn_server(
    env: dict[str, str] | None = None,
    workers: int = 2,
    log_path: Path | None = None,
    cmd: list[str] | None = None,
) -> Iterator[str]:
    """The Procfile's gunicorn (or `cmd`) on a free loopback port; yields its base URL.
    Rate limits off and bcrypt cheap unless `env` says otherwise; output to `log_path`."""
    port = free_port()
    full_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "RATE_LIMIT_ENABLED": "false",
        "RECURRING_SCHEDULER": "false",
        "BCRYPT_ROUNDS": "4",
        **(env or {}),
    }
    out = open(log_path, "wb") if log_path else None
    try:
        proc = subprocess.Popen(
            cmd or PROCFILE_CMD,
            cwd=ROOT,
            env=full_env,
            stdout=out or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if out:
            out.close()  # the child holds its own copy
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", proc=proc)
        yield base
    finally:
        proc.terminate()  # gunicorn stops its workers within graceful_timeout (30 s)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            # its own session: the whole group goes, workers and bcrypt pools included
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def dev_script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run scripts/dev against the test profile (e.g. stop-service postgrest)."""
    script = os.environ.get("DEV_SCRIPT", str(ROOT / "scripts" / "dev"))
    return subprocess.run(
        [sys.executable, script, "--profile", os.environ.get("DEV_PROFILE", "test"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
