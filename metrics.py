"""Prometheus metrics (`GET /metrics`) and the operator token that guards operator endpoints.

Under gunicorn every worker is its own process, so each keeps its values in files under
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode) and `/metrics`, served by
whichever worker gets the scrape, adds them all up. gunicorn.conf.py creates that directory
fresh for each server start, tells prometheus_client when a worker exits and removes the
directory when the server stops. Without it (uvicorn alone, tests in process) the values
live in this process only.

prometheus_client reads PROMETHEUS_MULTIPROC_DIR itself when it is imported; config.py
reads the same variable into `Settings.prometheus_multiproc_dir` so the app knows which
collector to serve.
"""

from __future__ import annotations

import hmac
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from starlette.requests import Request
from starlette.types import Scope

from config import Settings
from errors import ApiError

UNMATCHED = "unmatched"  # every path no route matched: one label value, not one per URL
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "ffb_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "ffb_http_request_duration_seconds",
    "Time from request start to the end of the response, by route",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
UNAVAILABLE = Counter(
    "ffb_unavailable_responses_total", "503 answers (database or PostgREST unreachable)", ["route"]
)
POSTGREST_SECONDS = Histogram(
    "ffb_postgrest_request_duration_seconds",
    "PostgREST calls by outcome (ok, refused: an error our SQL raised "
    "on purpose, error, unavailable)",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
POSTGREST_FAILURES = Counter(
    "ffb_postgrest_failures_total",
    "PostgREST calls that failed (unavailable or unexpected error)",
    ["kind"],
)
RATE_LIMITED = Counter("ffb_rate_limit_rejections_total", "Requests refused with 429", ["limit"])
BCRYPT_QUEUE = Gauge(
    "ffb_bcrypt_queue_length",
    "bcrypt hashes and checks waiting or running, all workers",
    multiprocess_mode="livesum",
)
REFERENCE_CACHE = Counter(
    "ffb_reference_cache_requests_total",
    "Reference data (categories, payment methods) served from the "
    "worker's cache (hit) or fetched from PostgREST (miss)",
    ["table", "result"],
)

OPERATOR_TOKEN_REQUIRED = "Operator token required"
OPERATOR_TOKEN_UNSET = "Set METRICS_TOKEN to read this endpoint"


def route_of(scope: Scope) -> str:
    """The matched route's template (`/api/dashboard/{user_id}/monthly`), never the raw path."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


# Labelled children per label values: `labels()` takes a lock and builds its key on
# every call; the children are the same objects for the life of the process.
_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_postgrest_children: dict[str, Any] = {}
MAX_CACHED_CHILDREN = 10_000  # routes x methods x statuses stays far below this


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    route, method = route_of(scope), scope["method"]
    key = (route, method, status)
    children = _request_children.get(key)
    if children is None:
        children = (
            REQUESTS.labels(route, method, str(status)),
            REQUEST_SECONDS.labels(route, method),
        )
        if len(_request_children) < MAX_CACHED_CHILDREN:
            _request_children[key] = children
    children[0].inc()
    children[1].observe(seconds)
    if status == 503:
        UNAVAILABLE.labels(route).inc()


def observe_postgrest(outcome: str, seconds: float) -> None:
    child = _postgrest_children.get(outcome)
    if child is None:
        child = _postgrest_children[outcome] = POSTGREST_SECONDS.labels(outcome)
    child.observe(seconds)


def render(settings: Settings) -> tuple[bytes, str]:
    if settings.prometheus_multiproc_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=settings.prometheus_multiproc_dir)
    else:
        registry = PROCESS_REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check_operator(settings: Settings, request: Request, *, required: bool) -> None:
    """METRICS_TOKEN as `Authorization: Bearer <token>`. When it is unset, an endpoint that
    is not `required` is open and one that is (`/health/shadow`) is refused to everyone:
    a member's login token never opens an operator endpoint."""
    if settings.metrics_token is None:
        if required:
            raise ApiError(403, OPERATOR_TOKEN_UNSET)
        return
    given = _bearer(request)
    expected = settings.metrics_token.get_secret_value()
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, OPERATOR_TOKEN_REQUIRED, headers={"WWW-Authenticate": "Bearer"})
