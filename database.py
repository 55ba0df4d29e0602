"""Every long-lived client, and the schema bootstrap.

`Database.connect()` runs in the app's lifespan: one supabase-py client with the anon key
(public reference data) and one with the service-role key (users, expenses, dashboards),
sharing one keep-alive HTTP pool. Importing this module performs no I/O.

The bootstrap (`apply_schema`, `inspect_schema`) applies `sql/*.sql` through psycopg2 on
`DATABASE_URL`; the app runs it at start-up and admins run it as
`scripts/bootstrap_schema.py`.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import httpx
import orjson
import psycopg2
from fastapi import Depends, Request
from postgrest import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from yarl import URL

from config import Settings
from models import ApiError

log = logging.getLogger("ffb.database")

SQL_DIR = Path(__file__).resolve().parent / "sql"
# Applied in this order: tables and policies first, then the functions that use them.
SQL_FILES = ("supabase_schema.sql",
             "migrations/0002_expense_authorship_audit.sql",  # TEMP: until the migration runner lands
             "supabase_functions.sql", "expense_changes.sql", "gateway_functions.sql")

DB_UNAVAILABLE = "Database unavailable"
# PostgREST answers these when it cannot reach Postgres; nginx answers 502/504 without it.
_UNAVAILABLE_CODES = {"PGRST000", "PGRST001", "PGRST002", "PGRST003", "502", "503", "504"}
_HTTP_STATUS_CODE = {"PT400": 400, "PT401": 401, "PT403": 403, "PT404": 404, "PT409": 409,
                     "PT412": 412}


# --------------------------------------------------------------------------------------
# HTTP clients
# --------------------------------------------------------------------------------------
class PostgrestHttpClient(httpx.AsyncClient):
    """The httpx client supabase-py/postgrest-py are built with.

    With HTTP_TRANSPORT=aiohttp (the default) it also holds `fast`, a keep-alive aiohttp
    session: `execute` then sends the request postgrest-py prepared (URL, query string,
    headers, JSON body) over it and parses the answer with orjson, skipping httpx's
    request/response objects and postgrest-py's response models. Measured by
    scripts/bench.py: about 0.15 ms of CPU per PostgREST call instead of 0.48 ms, the
    difference between ~30 % and ~60 % of direct PostgREST (README, Performance).
    With HTTP_TRANSPORT=httpx, `fast` is None and postgrest-py sends through httpx itself
    (what the unit tests fake with respx).
    """

    fast: aiohttp.ClientSession | None = None


def build_http_client(settings: Settings) -> PostgrestHttpClient:
    """One keep-alive pool per worker, with a total time limit per PostgREST call."""
    client = PostgrestHttpClient(
        timeout=httpx.Timeout(settings.http_timeout_seconds), trust_env=False,
        limits=httpx.Limits(max_connections=settings.http_pool_size,
                            max_keepalive_connections=settings.http_pool_size))
    if settings.http_transport == "aiohttp":
        client.fast = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.http_pool_size, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=settings.http_timeout_seconds),
            json_serialize=lambda obj: orjson.dumps(obj).decode(), trust_env=False,
            auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar())
    return client


async def _supabase_client(settings: Settings, key: str, http: PostgrestHttpClient) -> AsyncClient:
    options = AsyncClientOptions(httpx_client=http, postgrest_client_retry=False,
                                 auto_refresh_token=False, persist_session=False)
    return await acreate_client(settings.supabase_url, key, options=options)


@dataclass
class Database:
    """The two supabase-py clients of the card, created once per worker."""
    settings: Settings
    http: PostgrestHttpClient
    anon: AsyncClient
    service: AsyncClient
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def connect(cls, settings: Settings) -> Database:
        http = build_http_client(settings)
        anon = await _supabase_client(settings, settings.supabase_anon_key.get_secret_value(), http)
        service = await _supabase_client(
            settings, settings.supabase_service_role_key.get_secret_value(), http)
        return cls(settings=settings, http=http, anon=anon, service=service)

    async def close(self) -> None:
        if self.http.fast is not None:
            await self.http.fast.close()
        await self.http.aclose()


async def get_db(request: Request) -> Database:
    # async on purpose: FastAPI runs a sync dependency in a worker thread, a thread hop on
    # every request (README, Performance)
    return request.app.state.db


Db = Annotated[Database, Depends(get_db)]


async def execute(query: Any, headers: dict[str, str] | None = None) -> Any:
    """Run a postgrest-py query, turning every failure into an ApiError.

    `headers` are added to this request only (e.g. auth.session_headers(user)).
    Unreachable PostgREST/Postgres → 503 `Database unavailable`; errors our SQL raises on
    purpose (`PT4xx`) keep their status and message; anything else is logged with its
    details and answered with a generic 500.
    """
    request = query.request
    if headers:
        request.headers.update(headers)
    try:
        fast = getattr(request.session, "fast", None)
        if fast is not None:
            return await _send_fast(fast, request)
        return (await query.execute()).data
    except APIError as exc:
        raise translate_api_error(exc) from None
    except (httpx.TransportError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        log.warning("PostgREST unreachable: %s", type(exc).__name__)
        raise ApiError(503, DB_UNAVAILABLE) from None


async def _send_fast(session: aiohttp.ClientSession, request: Any) -> Any:
    """Send postgrest-py's prepared request over aiohttp; same data as `.execute().data`."""
    headers = httpx.Headers(request.session.headers)
    headers.update(request.headers)
    body = None
    if request.json is not None:
        body = orjson.dumps(request.json)
        headers["Content-Type"] = "application/json"
    url = str(request.path)
    if request.params:
        url = f"{url}?{request.params}"
    async with session.request(request.http_method, URL(url, encoded=True), data=body,
                               headers=dict(headers.items())) as response:
        payload = await response.read()
        status = response.status
    if 200 <= status < 300:
        return orjson.loads(payload) if payload else None
    try:
        error = orjson.loads(payload)
        if not isinstance(error, dict):
            raise ValueError
    except ValueError:  # not PostgREST's JSON: a proxy's error page (nginx 502/504)
        error = {"code": str(status), "message": f"HTTP {status}"}
    raise APIError(error)


def translate_api_error(exc: APIError) -> ApiError:
    code = str(exc.code or "")
    if code in _UNAVAILABLE_CODES:
        log.warning("database unavailable (PostgREST code %s)", code)
        return ApiError(503, DB_UNAVAILABLE)
    if code in _HTTP_STATUS_CODE:
        return ApiError(_HTTP_STATUS_CODE[code], exc.message or "Request failed")
    log.error("PostgREST error code=%s message=%s details=%s hint=%s",
              code, exc.message, exc.details, exc.hint)
    return ApiError(500, "Internal server error")


def json_bytes(data: Any) -> bytes:
    return orjson.dumps(data)


# --------------------------------------------------------------------------------------
# Schema bootstrap (psycopg2, sync: call it from a thread inside the app)
# --------------------------------------------------------------------------------------
EXPECTED_TABLES = ("users", "categories", "payment_methods", "expenses",
                   "expense_monthly_totals", "revoked_tokens", "idempotency_keys",
                   "rate_limits", "schema_bootstrap", "audit_log")
EXPECTED_INDEXES = ("users_name_lower_key", "users_email_lower_key", "expenses_user_date_idx",
                    "expenses_date_idx", "expenses_category_idx",
                    "expenses_payment_method_idx", "revoked_tokens_expires_idx",
                    "idempotency_keys_expires_idx", "rate_limits_expires_idx",
                    "expenses_created_by_idx", "audit_log_occurred_at_idx",
                    "audit_log_actor_idx", "audit_log_action_idx", "audit_log_target_idx")
EXPECTED_FUNCTIONS = ("get_monthly_dashboard", "get_yearly_dashboard", "dashboard_categories",
                      "expense_totals_sync", "expense_totals_truncate",
                      "rebuild_expense_monthly_totals", "expense_totals_drift",
                      "request_user_id", "find_login_user", "register_user",
                      "session_is_valid", "check_gateway_session", "revoke_token",
                      "create_expense", "expense_json", "rate_limit_incr", "rate_limit_get",
                      "rate_limit_clear", "request_header", "request_actor_id",
                      "audit_write", "expenses_default_created_by", "expenses_audit",
                      "expense_etag", "check_expense_references", "get_expense",
                      "lock_expense_for_change", "update_expense", "delete_expense",
                      "csv_cell", "export_expenses_csv", "record_login", "prune_audit_log")
EXPECTED_POLICIES = ("categories_read", "payment_methods_read", "expenses_owner_read",
                     "expenses_owner_insert", "expenses_recorder_read",
                     "expenses_owner_or_recorder_update", "expenses_owner_or_recorder_delete",
                     "expenses_recorded_by_caller")
PRE_REQUEST_SETTING = "pgrst.db_pre_request=public.check_gateway_session"
ADVISORY_LOCK_ID = 4_242_001  # serialises concurrent bootstraps (several workers start at once)


def sql_sources() -> list[tuple[str, str]]:
    return [(name, (SQL_DIR / name).read_text()) for name in SQL_FILES]


def sql_checksum() -> str:
    digest = hashlib.sha256()
    for name, text in sql_sources():
        digest.update(name.encode() + b"\0" + text.encode())
    return digest.hexdigest()


@dataclass
class SchemaReport:
    tables: dict[str, bool]
    rls: dict[str, bool]
    indexes: dict[str, bool]
    functions: dict[str, bool]
    policies: dict[str, bool]
    pre_request: bool
    totals_drift: int | None          # None: cannot tell (tables missing)
    applied_checksum: str | None
    row_counts: dict[str, int] = field(default_factory=dict)

    def drift(self) -> list[str]:
        """Every difference from what sql/ defines, one readable item each."""
        problems = [f"missing table public.{t}" for t, ok in self.tables.items() if not ok]
        problems += [f"RLS disabled on public.{t}" for t, ok in self.rls.items()
                     if self.tables.get(t) and not ok]
        problems += [f"missing index {i}" for i, ok in self.indexes.items() if not ok]
        problems += [f"missing function public.{f}()" for f, ok in self.functions.items() if not ok]
        problems += [f"missing policy {p}" for p, ok in self.policies.items() if not ok]
        if not self.pre_request:
            problems.append("authenticator lacks " + PRE_REQUEST_SETTING)
        if self.totals_drift:
            problems.append(f"expense_monthly_totals differs from expenses in "
                            f"{self.totals_drift} (user, month, category) groups")
        if self.applied_checksum not in (None, sql_checksum()) and not problems:
            problems.append("sql/ changed since it was last applied")
        return problems


@contextmanager
def connect(dsn: str, timeout: int = 5) -> Iterator[Any]:
    """A psycopg2 connection that commits (or rolls back) and is always closed."""
    conn = psycopg2.connect(dsn, connect_timeout=timeout, application_name="ffb-bootstrap")
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def inspect_schema(dsn: str) -> SchemaReport:
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select c.relname, c.relrowsecurity from pg_class c "
                    "join pg_namespace n on n.oid = c.relnamespace "
                    "where n.nspname = 'public' and c.relkind = 'r'")
        found = dict(cur.fetchall())
        cur.execute("select indexname from pg_indexes where schemaname = 'public'")
        indexes = {r[0] for r in cur.fetchall()}
        cur.execute("select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
                    "where n.nspname = 'public'")
        functions = {r[0] for r in cur.fetchall()}
        cur.execute("select policyname from pg_policies where schemaname = 'public'")
        policies = {r[0] for r in cur.fetchall()}
        cur.execute("select coalesce(bool_or(%s = any(s.setconfig)), false) from pg_db_role_setting s "
                    "join pg_roles r on r.oid = s.setrole where r.rolname = 'authenticator'",
                    (PRE_REQUEST_SETTING,))
        pre_request = bool(cur.fetchone()[0])
        drift = checksum = None
        counts: dict[str, int] = {}
        if {"expenses", "expense_monthly_totals"} <= found.keys() and "expense_totals_drift" in functions:
            cur.execute("select count(*) from public.expense_totals_drift()")
            drift = cur.fetchone()[0]
        if "schema_bootstrap" in found:
            cur.execute("select sql_sha256 from public.schema_bootstrap where id = 1")
            row = cur.fetchone()
            checksum = row[0] if row else None
        for table in ("users", "categories", "payment_methods", "expenses"):
            if table in found:
                cur.execute(f"select count(*) from public.{table}")  # names from a constant
                counts[table] = cur.fetchone()[0]
    return SchemaReport(
        tables={t: t in found for t in EXPECTED_TABLES},
        rls={t: bool(found.get(t)) for t in EXPECTED_TABLES},
        indexes={i: i in indexes for i in EXPECTED_INDEXES},
        functions={f: f in functions for f in EXPECTED_FUNCTIONS},
        policies={p: p in policies for p in EXPECTED_POLICIES},
        pre_request=pre_request, totals_drift=drift, applied_checksum=checksum,
        row_counts=counts)


def apply_schema(dsn: str, progress=lambda message: None) -> SchemaReport:
    """Apply every sql/ file in one transaction, repair the totals table if it drifted,
    record the checksum, and ask PostgREST to reload its schema cache and config."""
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
        for name, text in sql_sources():
            progress(f"applying sql/{name}")
            cur.execute(text)
        cur.execute("select count(*) from public.expense_totals_drift()")
        if cur.fetchone()[0]:
            progress("expense_monthly_totals drifted from expenses: rebuilding it")
            cur.execute("select public.rebuild_expense_monthly_totals()")
        cur.execute("insert into public.schema_bootstrap (id, sql_sha256) values (1, %s) "
                    "on conflict (id) do update set sql_sha256 = excluded.sql_sha256, "
                    "applied_at = now()", (sql_checksum(),))
        cur.execute("notify pgrst, 'reload schema'")
        cur.execute("notify pgrst, 'reload config'")
    return inspect_schema(dsn)


def ensure_schema(dsn: str) -> list[str]:
    """Start-up: verify, and apply only when something is missing or sql/ changed.
    Returns what was found missing (empty when nothing had to be done)."""
    report = inspect_schema(dsn)
    problems = report.drift()
    if problems or report.applied_checksum != sql_checksum():
        remaining = apply_schema(dsn).drift()
        if remaining:
            raise RuntimeError("schema still differs after bootstrap: " + "; ".join(remaining))
        return problems or ["sql/ changed since it was last applied"]
    return []


def prune_audit_log(dsn: str, retention_days: int) -> int:
    """Delete audit rows older than `retention_days` (as the table's owner: no API role may
    delete audit rows); returns how many."""
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select public.prune_audit_log(%s)", (retention_days,))
        return cur.fetchone()[0]


def check_postgres(dsn: str) -> None:
    with connect(dsn, timeout=2) as conn, conn.cursor() as cur:
        cur.execute("select 1")
