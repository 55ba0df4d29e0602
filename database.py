"""Every long-lived HTTP client, and `execute`.

`Database.connect()` runs in the app's lifespan: one supabase-py client with the anon key
(public reference data) and one with the service-role key (users, expenses, dashboards),
sharing one keep-alive HTTP pool. Importing this module performs no I/O.

The schema bootstrap (psycopg2 on DATABASE_URL) is `schema.py`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import orjson
from postgrest import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from yarl import URL

import metrics
from config import Settings
from models import ApiError

log = logging.getLogger("ffb.database")

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
    started, outcome = time.perf_counter(), "ok"
    try:
        fast = getattr(request.session, "fast", None)
        if fast is not None:
            return await _send_fast(fast, request)
        return (await query.execute()).data
    except APIError as exc:
        error = translate_api_error(exc)
        outcome = ("unavailable" if error.status == 503 else
                   "error" if error.status == 500 else "refused")
        raise error from None
    except (httpx.TransportError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        log.warning("PostgREST unreachable: %s", type(exc).__name__)
        outcome = "unavailable"
        raise ApiError(503, DB_UNAVAILABLE) from None
    finally:
        metrics.POSTGREST_SECONDS.labels(outcome).observe(time.perf_counter() - started)
        if outcome in ("unavailable", "error"):
            metrics.POSTGREST_FAILURES.labels(outcome).inc()


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
