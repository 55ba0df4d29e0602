"""Every long-lived HTTP client, `execute`, and the one way to open a Postgres connection.

`Database.connect()` runs in the app's lifespan: one supabase-py client with the anon key
(public reference data) and one with the service-role key (users, expenses, dashboards),
sharing one keep-alive HTTP pool. Importing this module performs no I/O.

`connect()` is the psycopg2 connection (DATABASE_URL, as the schema owner) that the
bootstrap (migrate.py), the drift check (schema.py), the dashboard cache's listener, the
readiness probe and every script in scripts/ open: a bounded connect time, an
`application_name` that says who it is in `pg_stat_activity`, always closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import aiohttp
import httpx
import orjson
import psycopg2
import psycopg2.extensions
from postgrest import APIError
from postgrest.base_request_builder import RequestConfig
from starlette.responses import Response, StreamingResponse
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from yarl import URL

import metrics
from config import Settings
from errors import ApiError

log = logging.getLogger("ffb.database")
JSON_MEDIA_TYPE = "application/json"

DB_UNAVAILABLE = "Database unavailable"
# PostgREST answers these when it cannot reach Postgres; nginx answers 502/504 without it.
_UNAVAILABLE_CODES = {"PGRST000", "PGRST001", "PGRST002", "PGRST003", "502", "503", "504"}
# Postgres rolled the request's transaction back (serialization failure, deadlock); PostgREST
# up to 14.x retried these itself, 16.0 no longer does: the gateway retries once (issue 21).
RETRY_CODES = frozenset({"40001", "40P01"})
# Every request names the schema instead of relying on `public` being first in db-schemas:
# Accept-Profile on reads, Content-Profile on writes and RPC POSTs (postgrest-py sends both
# on everything its clients build; rpc_passthrough sends them itself).
SCHEMA = "public"
_HTTP_STATUS_CODE = {
    "PT400": 400,
    "PT401": 401,
    "PT403": 403,
    "PT404": 404,
    "PT409": 409,
    "PT412": 412,
}


# --------------------------------------------------------------------------------------
# Postgres (psycopg2), for everything that is not a request's data call
# --------------------------------------------------------------------------------------
class Unreachable(psycopg2.OperationalError):
    """Postgres could not be connected to; the message is one line without the password."""


@contextmanager
def connect(
    dsn: str,
    *,
    application_name: str = "ffb",
    timeout: int = 5,
    autocommit: bool = False,
    **options: Any,
) -> Iterator[psycopg2.extensions.connection]:
    """A psycopg2 connection that is always closed when the block ends (transactions are
    the caller's: `with conn:` commits or rolls back). `options` go to libpq (keepalives).
    A connection that cannot be made raises `Unreachable` with libpq's first line."""
    try:
        conn = psycopg2.connect(
            dsn, connect_timeout=timeout, application_name=application_name, **options
        )
    except psycopg2.ProgrammingError as exc:  # libpq could not parse the DSN
        raise Unreachable(f"not a valid connection string: {connect_error(exc)}") from None
    except psycopg2.OperationalError as exc:
        raise Unreachable(connect_error(exc)) from None
    try:
        conn.autocommit = autocommit
        yield conn
    finally:
        conn.close()


def connect_error(exc: psycopg2.Error) -> str:
    """The first line of why a connection failed (libpq never puts the password in it)."""
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)


# --------------------------------------------------------------------------------------
# HTTP clients
# --------------------------------------------------------------------------------------
class Query(Protocol):
    """What postgrest-py's request builders have in common: the prepared request, and
    postgrest-py's own way of sending it."""

    request: RequestConfig[httpx.AsyncClient]

    async def execute(self) -> Any: ...


class Sender(Protocol):
    """How a worker's queries reach PostgREST, chosen once in `Database.connect` from
    HTTP_TRANSPORT. `send` returns the response's JSON (None for an empty body) or raises
    postgrest's APIError (PostgREST's error JSON; `{"code": "<status>"}` when the body is
    not JSON, e.g. nginx's 502 page) or a transport error (aiohttp/httpx, timeout, OS)."""

    async def send(self, query: Query) -> Any: ...

    async def close(self) -> None: ...


class HttpxSender:
    """postgrest-py's own path (HTTP_TRANSPORT=httpx): its request and response models
    over the shared httpx client. The unit tests fake it with respx."""

    async def send(self, query: Query) -> Any:
        return (await query.execute()).data

    async def close(self) -> None:
        pass  # the httpx client is closed by Database.close


class AiohttpSender:
    """The default (HTTP_TRANSPORT=aiohttp): sends the request postgrest-py prepared (URL,
    query string, headers, JSON body) over one keep-alive aiohttp session and parses the
    answer with orjson, skipping httpx's request/response objects and postgrest-py's
    response models. Measured by scripts/bench.py: about 0.15 ms of CPU per PostgREST
    call instead of 0.48 ms, the difference between ~30 % and ~60 % of direct PostgREST
    (docs/performance.md)."""

    def __init__(self, settings: Settings):
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.http_pool_size, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=settings.http_timeout_seconds),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            trust_env=False,
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def send(self, query: Query) -> Any:
        request = query.request
        headers = httpx.Headers(request.session.headers)
        headers.update(request.headers)
        body = None
        if request.json is not None:
            body = orjson.dumps(request.json)
            headers["Content-Type"] = "application/json"
        url = str(request.path)
        if request.params:
            url = f"{url}?{request.params}"
        async with self.session.request(
            request.http_method, URL(url, encoded=True), data=body, headers=dict(headers.items())
        ) as response:
            payload = await response.read()
            status = response.status
        if 200 <= status < 300:
            return orjson.loads(payload) if payload else None
        raise _postgrest_error(status, payload)

    async def close(self) -> None:
        await self.session.close()


class PostgrestHttpClient(httpx.AsyncClient):
    """The httpx client supabase-py/postgrest-py are built with. It carries the worker's
    Sender, so `execute` reaches it from any query either client builds."""

    sender: Sender


def build_http_client(settings: Settings) -> PostgrestHttpClient:
    """One keep-alive pool per worker, with a total time limit per PostgREST call."""
    client = PostgrestHttpClient(
        timeout=httpx.Timeout(settings.http_timeout_seconds),
        trust_env=False,
        limits=httpx.Limits(
            max_connections=settings.http_pool_size,
            max_keepalive_connections=settings.http_pool_size,
        ),
    )
    client.sender = (
        AiohttpSender(settings) if settings.http_transport == "aiohttp" else HttpxSender()
    )
    return client


async def _supabase_client(settings: Settings, key: str, http: PostgrestHttpClient) -> AsyncClient:
    options = AsyncClientOptions(
        httpx_client=http,
        postgrest_client_retry=False,
        auto_refresh_token=False,
        persist_session=False,
    )
    return await acreate_client(settings.supabase_url, key, options=options)


@dataclass
class Database:
    """The two supabase-py clients (anon key, service-role key), created once per worker."""

    settings: Settings
    http: PostgrestHttpClient
    anon: AsyncClient
    service: AsyncClient

    @classmethod
    async def connect(cls, settings: Settings) -> Database:
        http = build_http_client(settings)
        anon = await _supabase_client(settings, settings.supabase_anon_key.get_secret_value(), http)
        service = await _supabase_client(
            settings, settings.supabase_service_role_key.get_secret_value(), http
        )
        return cls(settings=settings, http=http, anon=anon, service=service)

    async def close(self) -> None:
        await self.http.sender.close()
        await self.http.aclose()


async def execute(query: Query, headers: dict[str, str] | None = None) -> Any:
    """Run a postgrest-py query, turning every failure into an ApiError.

    `headers` are added to this request only (e.g. auth.session_headers(user)).
    Unreachable PostgREST/Postgres → 503 `Database unavailable`; errors our SQL raises on
    purpose (`PT4xx`) keep their status and message; anything else is logged with its
    details and answered with a generic 500.
    """
    if headers:
        query.request.headers.update(headers)
    sender = cast(PostgrestHttpClient, query.request.session).sender
    started, outcome = time.perf_counter(), "ok"
    try:
        try:
            return await sender.send(query)
        except APIError as exc:
            if not is_retryable(exc):
                raise
            _note_retry(exc)
            return await sender.send(query)
    except APIError as exc:
        error = translate_api_error(exc)
        outcome = _outcome(error)
        raise error from None
    except (TimeoutError, httpx.TransportError, aiohttp.ClientError, OSError) as exc:
        log.warning("PostgREST unreachable: %s", type(exc).__name__)
        outcome = "unavailable"
        raise ApiError(503, DB_UNAVAILABLE) from None
    finally:
        _observe(outcome, started)


def is_retryable(exc: APIError) -> bool:
    """A serialization failure or deadlock: Postgres rolled the whole transaction of that
    PostgREST request back (one request is one transaction), so sending it again is safe."""
    return str(exc.code or "") in RETRY_CODES


def _outcome(error: ApiError) -> str:
    """The metrics' outcome of a failed PostgREST call (`ok` when it succeeded)."""
    return "unavailable" if error.status == 503 else "error" if error.status == 500 else "refused"


def _observe(outcome: str, started: float) -> None:
    metrics.observe_postgrest(outcome, time.perf_counter() - started)
    if outcome in ("unavailable", "error"):
        metrics.POSTGREST_FAILURES.labels(outcome).inc()


# --------------------------------------------------------------------------------------
# Pass-through: bodies Postgres already built reach the client as PostgREST sent them
# --------------------------------------------------------------------------------------
SMALL_BODY_BYTES = 256 * 1024  # answered in one piece (with Content-Length) up to this size
STREAM_CHUNK_BYTES = 64 * 1024  # larger bodies are streamed on in pieces of this size


async def rpc_passthrough(
    db: Database,
    function: str,
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
    status_code: int = 200,
    stream: bool = True,
    content: bytes | None = None,
    read_seconds: float | None = None,
) -> Response:
    """Call a function that returns the response body (sql/: type "application/json")
    and hand PostgREST's bytes to the client without parsing them: in one piece when
    small, otherwise streamed as they arrive (the worker holds ~one chunk per request,
    not the body; aiohttp and uvicorn both apply back-pressure). `content`: the
    arguments already serialised as a JSON object (instead of `params`); `read_seconds`:
    how long the function may work before answering (default HTTP_TIMEOUT_SECONDS)."""
    url = f"{db.service.rest_url}/rpc/{function}"
    key = db.settings.supabase_service_role_key.get_secret_value()
    sent = {
        "apikey": key,
        "Authorization": f"Bearer {key}",
        # PostgREST's JSON media type handler (sql/migrations/0005) is chosen by this Accept
        # and by sending no `select=`; Content-Profile names the schema of the function.
        "Accept": JSON_MEDIA_TYPE,
        "Content-Type": JSON_MEDIA_TYPE,
        "Content-Profile": SCHEMA,
        **(headers or {}),
    }
    body = content if content is not None else orjson.dumps(params)
    started, outcome = time.perf_counter(), "ok"  # metrics: until the body starts arriving
    try:
        sender = db.http.sender
        if not isinstance(sender, AiohttpSender):  # HTTP_TRANSPORT=httpx: one piece, no streaming
            for attempt in (1, 2):
                answer = await db.http.post(url, content=body, headers=sent)
                try:
                    _check_answer(
                        answer.status_code, answer.headers.get("content-type"), answer.content
                    )
                    break
                except APIError as exc:
                    if attempt == 2 or not is_retryable(exc):
                        raise
                    _note_retry(exc)
            return Response(answer.content, status_code, media_type=JSON_MEDIA_TYPE)
        seconds = db.settings.http_timeout_seconds
        for attempt in (1, 2):
            response = await sender.session.post(
                URL(url),
                data=body,
                headers=sent,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=seconds, sock_read=read_seconds or seconds
                ),
            )
            if 200 <= response.status < 300 and _is_json(response.content_type):
                break
            try:  # an error answer: nothing of it has reached the client yet
                _check_answer(response.status, response.content_type, await response.read())
            except APIError as exc:
                if attempt == 2 or not is_retryable(exc):
                    raise
                _note_retry(exc)
            finally:
                response.release()
        try:
            first = bytearray()
            while len(first) < SMALL_BODY_BYTES or not stream:
                chunk = await response.content.readany()
                if not chunk:
                    break
                first += chunk
        except BaseException:
            response.close()
            raise
        if response.content.at_eof():
            response.release()
            return Response(bytes(first), status_code, media_type=JSON_MEDIA_TYPE)
    except APIError as exc:
        error = translate_api_error(exc)
        outcome = _outcome(error)
        raise error from None
    except ApiError as error:  # _check_answer: a 2xx that is not PostgREST's JSON
        outcome = _outcome(error)
        raise
    except (httpx.TransportError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("PostgREST unreachable: %s", type(exc).__name__)
        outcome = "unavailable"
        raise ApiError(503, DB_UNAVAILABLE) from None
    finally:
        _observe(outcome, started)
    return StreamingResponse(
        _rest_of(response, bytes(first)), status_code, media_type=JSON_MEDIA_TYPE
    )


async def postgrest_version(db: Database) -> str:
    """PostgREST's version, for GET /health/versions: its `Server` header when nothing in
    front of it replaced that (nginx does), else `info.version` of its OpenAPI root (the
    service-role key may read it); "unknown" when neither says."""
    key = db.settings.supabase_service_role_key.get_secret_value()
    try:
        answer = await db.http.get(
            f"{db.service.rest_url}/",
            headers={
                "apikey": key,
                "Authorization": f"Bearer {key}",
                "Accept": "application/openapi+json",
                "Accept-Profile": SCHEMA,
            },
        )
    except (httpx.TransportError, OSError):
        raise ApiError(503, DB_UNAVAILABLE) from None
    server = answer.headers.get("server", "")
    if server.lower().startswith("postgrest/"):
        return server.partition("/")[2]
    try:
        version = answer.json()["info"]["version"]
    except (ValueError, KeyError, TypeError):
        return "unknown"
    return str(version) if isinstance(version, str | int | float) else "unknown"


def _note_retry(exc: APIError) -> None:
    log.warning("PostgREST code %s (transaction rolled back): retrying once", exc.code)


async def _rest_of(response: aiohttp.ClientResponse, first: bytes) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in response.content.iter_chunked(STREAM_CHUNK_BYTES):
            yield chunk
    finally:
        response.close()  # also when the client went away mid-body


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").startswith(JSON_MEDIA_TYPE)


def _check_answer(status: int, content_type: str | None, payload: bytes) -> None:
    """PostgREST errors as `execute` reports them; a 2xx that is not PostgREST's JSON (a
    proxy's page) is a generic 500 too, never passed on."""
    if not 200 <= status < 300:
        raise _postgrest_error(status, payload)
    if not _is_json(content_type):
        log.error("PostgREST answered %s with Content-Type %r, not JSON", status, content_type)
        raise ApiError(500, "Internal server error")


def _postgrest_error(status: int, payload: bytes) -> APIError:
    try:
        error = orjson.loads(payload)
        if not isinstance(error, dict):
            raise ValueError
    except ValueError:  # not PostgREST's JSON: a proxy's error page (nginx 502/504)
        error = {
            "code": str(status),
            "message": f"HTTP {status}",
            "details": payload[:300].decode("utf-8", "replace"),
        }  # for the log only
    return APIError(error)


def translate_api_error(exc: APIError) -> ApiError:
    code = str(exc.code or "")
    if code in _UNAVAILABLE_CODES:
        log.warning("database unavailable (PostgREST code %s)", code)
        return ApiError(503, DB_UNAVAILABLE)
    if code in _HTTP_STATUS_CODE:
        return ApiError(_HTTP_STATUS_CODE[code], exc.message or "Request failed")
    log.error(
        "PostgREST error code=%s message=%s details=%s hint=%s",
        code,
        exc.message,
        exc.details,
        exc.hint,
    )
    return ApiError(500, "Internal server error")


def json_bytes(data: Any) -> bytes:
    return orjson.dumps(data)
