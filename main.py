"""The FastAPI application: lifespan, middleware, error handlers and routers.

gunicorn serves the factory (`main:create_app()`, Procfile), uvicorn `--factory
main:create_app`; tests call `create_app(settings)`. Importing this module builds nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import deps
import metrics
import openapi_docs
import schema
import shadow
from config import ConfigError, Settings, get_settings
from deps import AppState
from models import ApiError, ErrorBody, JsonResponse
from routers import auth as auth_routes
from routers import categories, dashboard, expenses, health
from routers import metrics as metrics_routes

log = logging.getLogger("ffb")
access_log = logging.getLogger("ffb.access")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BOOTSTRAP_RETRY_SECONDS = 10


def configure_logging(level: str) -> None:
    """One JSON object per line on stderr, for our loggers and uvicorn's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        OrjsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time"},
            # uvicorn adds an ANSI-coloured copy of its message; the plain one is enough
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # ffb.access replaces it
    logging.getLogger("httpx").setLevel(logging.WARNING)


# --------------------------------------------------------------------------------------
# Pure ASGI middleware: request id, access log, security headers, body limit, last-resort 500
# --------------------------------------------------------------------------------------
class BodyTooLarge(StarletteHTTPException):
    """An HTTPException so FastAPI re-raises it while reading a (chunked) body instead of
    turning it into 400 "There was an error parsing the body"."""

    def __init__(self) -> None:
        super().__init__(413, "Request body too large")


def forwarded_client(scope: Scope, hops: int) -> tuple[str, int] | None:
    """The client address behind `hops` trusted proxies: each appends the address it saw
    to X-Forwarded-For, so the client is the `hops`-th entry from the right (the one the
    outermost trusted proxy appended). Everything left of it is whatever the client sent.
    None when there are fewer entries or the entry is no IP address: the caller then keeps
    the TCP peer (the proxy), which a client cannot choose."""
    values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
    entries = [e.strip() for e in ",".join(values).split(",")] if values else []
    if len(entries) < hops:
        return None
    try:
        return str(ipaddress.ip_address(entries[-hops])), 0
    except ValueError:
        return None


def forget_cached_reads(scope: Scope) -> None:
    """A write went through this worker: its dashboard cache is emptied before the client
    sees the response, so the client's next read here is never older than its write, for
    every write route there is or will be (the other workers empty theirs when the write's
    NOTIFY arrives, dashboard_cache.py)."""
    state = getattr(scope["app"].state, "app_state", None)
    if state is not None:
        state.dashboard_cache.invalidate()


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.proxy_hops = settings.trusted_proxy_hops
        self.max_body = settings.max_body_bytes
        self.security_headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        if settings.is_prod:
            self.security_headers.append(
                (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if self.proxy_hops:
            # Decided once, here: rate limits and the access log read scope["client"].
            scope["client"] = forwarded_client(scope, self.proxy_hops) or scope.get("client")
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        extra_headers = [(b"x-request-id", request_id.encode()), *self.security_headers]
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), *extra_headers]
                if scope["method"] not in SAFE_METHODS:
                    forget_cached_reads(scope)
            await send(message)

        try:
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                raise BodyTooLarge
            await self.app(scope, self._limited(receive), send_wrapper)
        except BodyTooLarge:
            if not response_started:
                await self._error(send_wrapper, 413, "Request body too large")
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if not response_started:
                await self._error(send_wrapper, 500, "Internal server error")
        finally:
            elapsed = time.perf_counter() - started
            metrics.observe_request(scope, status, elapsed)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                    "user_id": scope["state"].get("user_id"),
                    "client": scope["client"][0] if scope.get("client") else None,
                },
            )

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge
            return message

        return wrapped

    @staticmethod
    async def _error(send: Send, status: int, message: str) -> None:
        response = JsonResponse({"error": message}, status_code=status)
        await send(
            {"type": "http.response.start", "status": status, "headers": response.raw_headers}
        )
        await send({"type": "http.response.body", "body": response.body})


# --------------------------------------------------------------------------------------
# Error handlers: every error is {"error": "..."}
# --------------------------------------------------------------------------------------
def validation_message(exc: RequestValidationError) -> str:
    first = exc.errors()[0]
    where = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    message = str(first.get("msg", "Invalid input")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return "Malformed JSON body"
    if first.get("type") == "missing" and where:
        return f"{where[-1]} is required"
    return f"{'.'.join(where)}: {message}" if where else message


async def api_error_handler(request: Request, exc: ApiError) -> JsonResponse:
    return JsonResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JsonResponse:
    return JsonResponse({"error": validation_message(exc)}, status_code=400)


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> JsonResponse:
    messages = {404: "Not found", 405: "Method not allowed"}
    message = messages.get(exc.status_code) or str(exc.detail)
    return JsonResponse(
        {"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


# --------------------------------------------------------------------------------------
# Lifespan
# --------------------------------------------------------------------------------------
async def bootstrap_until_done(settings: Settings) -> None:
    """Verify the schema and create what is missing; if Postgres is not up yet, keep
    trying in the background (the API answers 503 until it is)."""
    dsn = settings.database_url.get_secret_value()
    while True:
        try:
            applied = await asyncio.to_thread(schema.ensure_schema, dsn)
            if applied:
                log.info("schema bootstrapped", extra={"changes": applied})
            return
        except (schema.SchemaRefused, schema.MigrationFailed) as exc:
            # names a file and checksums or the first line of a SQL error, never data
            log.error(
                "schema bootstrap refused, retrying in %ss: %s (run "
                "scripts/bootstrap_schema.py --check)",
                BOOTSTRAP_RETRY_SECONDS,
                exc,
            )
            await asyncio.sleep(BOOTSTRAP_RETRY_SECONDS)
        except Exception as exc:  # noqa: BLE001 - logged, retried
            log.warning(
                "schema bootstrap failed, retrying in %ss: %s",
                BOOTSTRAP_RETRY_SECONDS,
                type(exc).__name__,
            )
            await asyncio.sleep(BOOTSTRAP_RETRY_SECONDS)


AUDIT_PRUNE_INTERVAL_SECONDS = 6 * 3600


async def prune_audit_periodically(settings: Settings) -> None:
    """AUDIT_RETENTION_DAYS: drop older audit rows now and every few hours (over
    DATABASE_URL, as the owner; several workers doing it at once is harmless)."""
    dsn = settings.database_url.get_secret_value()
    while True:
        try:
            deleted = await asyncio.to_thread(
                schema.prune_audit_log, dsn, settings.audit_retention_days
            )
            if deleted:
                log.info(
                    "audit log pruned",
                    extra={"deleted": deleted, "retention_days": settings.audit_retention_days},
                )
        except Exception as exc:  # noqa: BLE001 - logged, retried at the next interval
            log.warning("audit log pruning failed: %s", type(exc).__name__)
        await asyncio.sleep(AUDIT_PRUNE_INTERVAL_SECONDS)


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    if settings.is_prod and settings.registration_mode == "open":
        log.warning(
            "REGISTRATION_MODE=open in prod: anyone who can reach the API can register "
            "and read every member's expenses; use invite or closed for a family"
        )
    state = await AppState.start(settings)
    deps.attach(app, state)
    # Start the bcrypt process now: spawned on first use, it added 1-3 s to each worker's
    # first login or register (past the 5 s in which an outage must answer 503).
    warm_up = asyncio.create_task(state.passwords.warm_up())
    bootstrap = None
    if settings.bootstrap_on_startup:
        # A first attempt inline, so a healthy start serves with the schema in place.
        bootstrap = asyncio.create_task(bootstrap_until_done(settings))
        await asyncio.wait({bootstrap}, timeout=15)
    await warm_up
    # after the bootstrap's first attempt, which creates audit_log on a new database
    prune = asyncio.create_task(prune_audit_periodically(settings))
    try:
        yield
    finally:
        prune.cancel()
        if bootstrap is not None:
            bootstrap.cancel()
        deps.attach(app, None)
        await state.close()


def custom_openapi(app: FastAPI):
    """FastAPI documents validation errors as 422; we answer them as 400 {"error"}."""

    def build():
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        error_ref = {"$ref": "#/components/schemas/ErrorBody"}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault(
                        "400",
                        {
                            "description": "Invalid input",
                            "content": {"application/json": {"schema": error_ref}},
                        },
                    )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        app.openapi_schema = openapi_docs.document(app, schema)
        return schema

    return build


# Exit status 4 is gunicorn's "App failed to load": the arbiter halts instead of respawning
# workers that can never start (uvicorn just exits non-zero with it).
CONFIG_ERROR_EXIT = 4


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app. Without `settings` (how gunicorn and uvicorn call it) they come from the
    environment, and a missing or unsafe one ends the process with one line naming it."""
    if settings is None:
        try:
            settings = get_settings()
        except ConfigError as exc:
            print(exc, file=sys.stderr, flush=True)
            raise SystemExit(CONFIG_ERROR_EXIT) from None
    configure_logging(settings.log_level)
    app = FastAPI(
        title="Family Financial Backend",
        version="1.0.0",
        description="Drop-in replacement for the legacy serverless API of the family "
        'expense tracker. Every error is `{"error": "..."}`.',
        lifespan=partial(lifespan, settings=settings),
        default_response_class=JsonResponse,
        docs_url=None,
        redoc_url=None,  # openapi_docs serves both without a CDN
    )
    openapi_docs.install(app)
    # Starlette types every handler as taking Exception; each of ours takes its own type.
    app.add_exception_handler(ApiError, api_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error_handler)  # type: ignore[arg-type]
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=[
            "Content-Type",
            "Authorization",
            "Idempotency-Key",
            "X-Request-ID",
            "If-Match",
        ],
        expose_headers=["X-Request-ID", "Retry-After", "ETag"],
    )
    # inside GatewayMiddleware: sees the request id
    shadow.install(app, settings, lambda: deps.app_state(app).shadow)
    app.add_middleware(GatewayMiddleware, settings=settings)
    for router in (
        health.router,
        auth_routes.router,
        categories.router,
        expenses.router,
        dashboard.router,
        metrics_routes.router,
    ):
        app.include_router(router)
    app.openapi = custom_openapi(app)  # type: ignore[method-assign]
    return app
