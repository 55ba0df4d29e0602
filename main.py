"""The FastAPI application: the factory and the lifespan.

gunicorn serves the factory (`main:create_app()`, Procfile), uvicorn `--factory
main:create_app`; tests call `create_app(settings)`. Importing this module builds nothing.
What every request passes through is in edge.py, the background loops in background.py.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

import deps
import edge
import hotpath
import openapi_docs
import shadow
from background import (
    bootstrap_until_done,
    materialize_recurring_periodically,
    prune_audit_periodically,
)
from config import ConfigError, Settings, get_settings
from deps import AppState
from errors import JsonResponse
from logs import configure_logging
from routers import (
    accounts,
    admin,
    budgets,
    categories,
    dashboard,
    expense_import,
    expense_xlsx,
    expenses,
    health,
    recurring,
)
from routers import auth as auth_routes
from routers import metrics as metrics_routes

log = logging.getLogger("ffb")


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    if settings.is_prod and settings.registration_mode == "open":
        log.warning(
            "REGISTRATION_MODE=open in prod: anyone who can reach the API can register "
            "and read every member's expenses; use invite or closed for a family"
        )
    if settings.is_prod and settings.metrics_token is None:
        log.warning(
            "METRICS_PUBLIC=true in prod: /metrics answers anyone who can reach the API "
            "(per-route and per-status counts, failed logins, 429s); set METRICS_TOKEN"
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
    # Prove that a refused session is refused before serving a logged-in user (after the
    # bootstrap's first attempt, which creates the probe's function); re-proven in the
    # background, authenticated routes answer 503 while it does not hold (readiness.py).
    await state.revocation.probe(state.db)
    watch = asyncio.create_task(state.revocation.watch(state.db))
    # after the bootstrap's first attempt, which creates audit_log on a new database
    prune = asyncio.create_task(prune_audit_periodically(settings))
    recurring = (
        asyncio.create_task(materialize_recurring_periodically(settings))
        if settings.recurring_scheduler
        else None
    )
    try:
        yield
    finally:
        prune.cancel()
        watch.cancel()
        if recurring is not None:
            recurring.cancel()
        if bootstrap is not None:
            bootstrap.cancel()
        deps.attach(app, None)
        await state.close()


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
        # One spelling per path: `/api/expenses/1/` is 404, not a 307 whose Location is
        # built from the request's Host header (edge.py refuses percent-escapes).
        redirect_slashes=False,
        # FastAPI's native OpenTelemetry, off: the service's telemetry is its Prometheus
        # metrics and JSON logs (no OTel provider is configured), and with it on FastAPI
        # asks the global providers on every request (~2-3 % of an uncached list's CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    openapi_docs.install(app)
    edge.install_error_handlers(app)
    if settings.hot_routes:  # innermost: everything below applies to the hot reads too
        app.add_middleware(hotpath.HotRoutes)
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
    app.add_middleware(edge.GatewayMiddleware, settings=settings)
    for router in (
        health.router,
        auth_routes.router,
        accounts.router,
        admin.router,
        categories.router,
        expense_import.router,
        expense_xlsx.router,
        expenses.router,
        dashboard.router,
        budgets.router,
        recurring.router,
        metrics_routes.router,
    ):
        app.include_router(router)
    app.openapi = openapi_docs.custom_openapi(app)  # type: ignore[method-assign]
    return app
