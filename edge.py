"""The HTTP edge: what every request passes through before and after its route.

`GatewayMiddleware` (pure ASGI, one layer) gives each request its id, decides the client
address behind trusted proxies, enforces the body limit, adds the security headers, empties
this worker's dashboard cache on writes, writes the access log and the metrics, and turns an
unhandled exception into the last-resort 500. The error handlers render every error as
`{"error": "..."}`; `install_error_handlers` registers them on an app.
"""

from __future__ import annotations

import email.message
import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import metrics
from config import Settings
from errors import ApiError, JsonResponse

log = logging.getLogger("ffb")
access_log = logging.getLogger("ffb.access")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IMPORT_PATH = "/api/expenses/import"  # its body limit is IMPORT_MAX_BYTES, not MAX_BODY_BYTES


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
        self.import_max_body = settings.import_max_bytes
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
            if b"%" in (scope.get("raw_path") or scope["path"].encode()):
                # One spelling per path: no route has a character that needs escaping, so an
                # escape is another spelling - `%2f` would make `/1%2fmonthly` another path,
                # `%31` make `/1%31` the id 11. Decided here, before any route matches.
                await self._error(send_wrapper, 404, "Not found")
                return
            limit = self.import_max_body if scope["path"] == IMPORT_PATH else self.max_body
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                raise BodyTooLarge
            await self.app(scope, self._limited(receive, limit), send_wrapper)
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

    def _limited(self, receive: Receive, limit: int) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
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


# JSON request bodies: one rule for every route that takes one
JSON_CONTENT_TYPE_MESSAGE = "Content-Type must be application/json"


def is_json_content_type(value: str | None) -> bool:
    if not value:
        return False
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def parse_json_body(body: bytes) -> Any:
    """JSON numbers with a fraction or exponent as exact Decimals, never through a binary
    float: `99.999999999999999999` stays what was sent (and fails the two-decimal rule)
    instead of becoming 100. Integers stay int; NaN and Infinity stay the floats they were."""
    return json.loads(body, parse_float=Decimal)


class JsonRoute(APIRoute):
    """The route class of every router (APIRouter(route_class=JsonRoute); a unit test checks
    each one). A route that takes a body refuses one that is not declared JSON with 415
    `Content-Type must be application/json` (instead of pydantic's "Input should be a valid
    dictionary"; it also keeps a cross-site form post from being a "simple" request), and
    reads JSON numbers exactly (parse_json_body)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def json_body_handler(request: Request) -> Response:
            body = await request.body()
            if body:
                if not is_json_content_type(request.headers.get("content-type")):
                    raise ApiError(415, JSON_CONTENT_TYPE_MESSAGE)
                try:
                    # Starlette's Request.json() returns `_json` when it is set; FastAPI then
                    # validates these values. Malformed JSON is left to FastAPI (400).
                    request._json = parse_json_body(body)
                except (ValueError, RecursionError):  # FastAPI's own parse answers 400
                    pass
            return await handler(request)

        return json_body_handler


# Error handlers: every error is {"error": "..."}
def validation_message(errors: Sequence[Any]) -> str:
    """The answer to invalid input: the first of pydantic's errors (FastAPI's, whose `loc`
    starts with where the value was, or a model's own), in one line."""
    first = errors[0]
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
    return JsonResponse({"error": validation_message(exc.errors())}, status_code=400)


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> JsonResponse:
    messages = {404: "Not found", 405: "Method not allowed"}
    message = messages.get(exc.status_code) or str(exc.detail)
    return JsonResponse(
        {"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


def install_error_handlers(app: FastAPI) -> None:
    # Starlette types every handler as taking Exception; each of ours takes its own type.
    app.add_exception_handler(ApiError, api_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error_handler)  # type: ignore[arg-type]
