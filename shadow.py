"""Shadow compare (migration phase 1): replay our GET /api/* requests against the legacy API.

With SHADOW_COMPARE=true and LEGACY_BASE_URL set, every GET under /api is sent again to
the legacy API in the background, after our response has gone out, with the same path,
query, Authorization and Cookie headers. Our response is never changed or delayed: at most
SHADOW_CONCURRENCY replays run at once per worker (anything beyond is dropped and counted
as skipped, never queued), each bounded by SHADOW_TIMEOUT_SECONDS.

A difference in status or in the JSON body (after blanking volatile fields such as
`created_at` and `token`; type-strict, jsondiff.py) is one WARNING line on logger `ffb.shadow` naming the endpoint,
the request id, both statuses and the JSON paths that differ; bodies are never logged.
`GET /health/shadow` reports the counts per endpoint (per worker process).

Off by default: then no middleware is installed and no client or task is created.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import Settings
from jsondiff import diff_json

log = logging.getLogger("ffb.shadow")

# Values of these keys differ between two correct answers (timestamps, fresh tokens);
# only their presence is compared.
VOLATILE_KEYS = frozenset({"created_at", "updated_at", "token", "iat", "exp", "jti"})
FORWARDED_HEADERS = (b"authorization", b"cookie", b"accept")
MAX_CAPTURE_BYTES = 4 * 1024 * 1024  # larger bodies are skipped, not buffered
MAX_LOGGED_PATHS = 20
COUNTERS = ("compared", "matches", "differences", "errors", "timeouts", "skipped")
UNMATCHED = "(unmatched)"


class EndpointCounts(BaseModel):
    compared: int = 0
    matches: int = 0
    differences: int = 0
    errors: int = 0
    timeouts: int = 0
    skipped: int = 0


class ShadowReport(BaseModel):
    enabled: bool
    worker_pid: int
    concurrency: int
    in_flight: int
    totals: EndpointCounts
    endpoints: dict[str, EndpointCounts]


# --------------------------------------------------------------------------------------
# Comparing two JSON documents
# --------------------------------------------------------------------------------------
def normalise(value: Any) -> Any:
    """Blank the values of volatile keys, at any depth."""
    if isinstance(value, dict):
        return {k: ("<volatile>" if k in VOLATILE_KEYS else normalise(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def diff_paths(ours: Any, legacy: Any) -> list[str]:
    """JSON paths (`$.user.name`, `$[3].amount`) where our document differs from the
    legacy's, type-strict (jsondiff, shared with scripts/contract_diff.py); items only one
    list has are named one by one (`$[5]`)."""
    paths = []
    for d in diff_json(legacy, ours):
        if d.kind == "length":
            paths += [f"{d.path}[{i}]" for i in range(min(d.old, d.new), max(d.old, d.new))]
        else:
            paths.append(d.path)
    return paths


def body_diff(ours: bytes, legacy: bytes) -> list[str]:
    try:
        ours_json, legacy_json = orjson.loads(ours or b"null"), orjson.loads(legacy or b"null")
    except orjson.JSONDecodeError:
        return [] if ours == legacy else ["$ (not JSON)"]
    return diff_paths(normalise(ours_json), normalise(legacy_json))


# --------------------------------------------------------------------------------------
# The background sender
# --------------------------------------------------------------------------------------
class ShadowCompare:
    """One long-lived httpx client and at most `concurrency` replays in flight."""

    def __init__(self, settings: Settings):
        assert settings.legacy_base_url
        self.concurrency = settings.shadow_concurrency
        self.timeout = settings.shadow_timeout_seconds
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        self.client = httpx.AsyncClient(
            base_url=settings.legacy_base_url.rstrip("/"),
            timeout=self.timeout,
            limits=limits,
            trust_env=False,
            follow_redirects=False,
        )
        self.tasks: set[asyncio.Task] = set()
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))

    def count(self, endpoint: str, counter: str) -> None:
        self.counts[endpoint][counter] += 1

    def has_room(self) -> bool:
        return len(self.tasks) < self.concurrency

    def submit(self, endpoint: str, scope: Scope, status: int, body: bytes) -> None:
        """Called after our response is sent; never waits."""
        if not self.has_room():
            self.count(endpoint, "skipped")
            return
        task = asyncio.get_running_loop().create_task(self._compare(endpoint, scope, status, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _compare(self, endpoint: str, scope: Scope, status: int, body: bytes) -> None:
        request_id = scope.get("state", {}).get("request_id")
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k in FORWARDED_HEADERS
        ]
        if request_id:  # ours, so both sides' logs can be joined
            headers.append(("x-request-id", request_id))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        context = {"endpoint": endpoint, "path": scope["path"], "request_id": request_id}
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.get(target.decode("latin-1"), headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            self.count(endpoint, "timeouts")
            log.warning("shadow timeout", extra={**context, "timeout_s": self.timeout})
            return
        except httpx.HTTPError as exc:
            self.count(endpoint, "errors")
            log.warning("shadow error", extra={**context, "error": type(exc).__name__})
            return
        paths = body_diff(body, response.content)
        self.count(endpoint, "compared")
        if status == response.status_code and not paths:
            self.count(endpoint, "matches")
            return
        self.count(endpoint, "differences")
        log.warning(
            "shadow difference",
            extra={
                **context,
                "status": {"ours": status, "legacy": response.status_code},
                "paths": paths[:MAX_LOGGED_PATHS],
                "paths_total": len(paths),
            },
        )

    def report(self) -> ShadowReport:
        endpoints = {name: EndpointCounts(**c) for name, c in sorted(self.counts.items())}
        totals = EndpointCounts(**{k: sum(c[k] for c in self.counts.values()) for k in COUNTERS})
        return ShadowReport(
            enabled=True,
            worker_pid=os.getpid(),
            concurrency=self.concurrency,
            in_flight=len(self.tasks),
            totals=totals,
            endpoints=endpoints,
        )

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()


def disabled_report() -> ShadowReport:
    return ShadowReport(
        enabled=False,
        worker_pid=os.getpid(),
        concurrency=0,
        in_flight=0,
        totals=EndpointCounts(),
        endpoints={},
    )


# --------------------------------------------------------------------------------------
# Pure ASGI middleware: copy our GET /api/* response, hand it over once it is sent
# --------------------------------------------------------------------------------------
class ShadowMiddleware:
    def __init__(self, app: ASGIApp, compare: Callable[[], ShadowCompare | None]):
        self.app = app
        self.compare = compare  # the running app's ShadowCompare (built in its lifespan)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        replayable = (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith("/api/")
        )
        shadow = self.compare() if replayable else None
        if shadow is None:
            await self.app(scope, receive, send)
            return
        status = 0
        chunks: list[bytes] = []
        size = 0
        wanted = True

        async def capture(message: Message) -> None:
            nonlocal status, size, wanted
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
                # No copy when every slot is busy; 304s (If-None-Match) are not comparable.
                wanted = status != 304 and shadow.has_room()
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                size += len(body)
                wanted = wanted and size <= MAX_CAPTURE_BYTES
                if wanted:
                    chunks.append(body)
                if not message.get("more_body", False):
                    endpoint = getattr(scope.get("route"), "path", None) or UNMATCHED
                    if wanted:
                        shadow.submit(endpoint, scope, status, b"".join(chunks))
                    else:
                        shadow.count(endpoint, "skipped")

        await self.app(scope, receive, capture)


# --------------------------------------------------------------------------------------
# Wiring (main.py): install() in create_app, start()/stop() in the lifespan
# --------------------------------------------------------------------------------------
def enabled(settings: Settings) -> bool:
    return bool(settings.shadow_compare and settings.legacy_base_url)


def install(app: FastAPI, settings: Settings, compare: Callable[[], ShadowCompare | None]) -> None:
    """`compare` returns the running app's ShadowCompare (None until its lifespan starts)."""
    if settings.shadow_compare and not settings.legacy_base_url:
        log.warning("SHADOW_COMPARE is on but LEGACY_BASE_URL is empty: shadow compare is off")
    if enabled(settings):
        app.add_middleware(ShadowMiddleware, compare=compare)


def start(settings: Settings) -> ShadowCompare | None:
    return ShadowCompare(settings) if enabled(settings) else None


async def stop(shadow: ShadowCompare | None) -> None:
    if shadow is not None:
        await shadow.close()
