"""The bare-ASGI floor that scripts/bench.py measures the gateway against.

A minimal ASGI app with no framework: for the uncached cases of the benchmark it makes the
same aiohttp call to PostgREST the gateway makes (same session settings, same RPC, same
headers: service key, JSON, the caller's X-Gateway-Session for the pre-request check) and
sends the same bytes back. No validation, no error bodies, no request ids, no logs, no
metrics, no security headers. Served the same way as the gateway (the Procfile's gunicorn,
gunicorn.conf.py, the same worker class and number of workers):

    gunicorn -c gunicorn.conf.py scripts.bench_floor:app

What the gateway's worker spends per request beyond this app's is the cost of our layer
(FastAPI, the middleware, the access log, the metrics); bench.py prints both as CPU per
request. Routes (GET only; anything else is 404):

    /api/expenses?user_id=&date_from=&date_to=      -> rpc/list_expenses
    /api/dashboard/<user_id>/monthly?year=&month=   -> rpc/get_monthly_dashboard
    /api/dashboard/<user_id>/yearly?year=           -> rpc/get_yearly_dashboard

Settings come from the environment or .env, as the app reads them.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import orjson
from yarl import URL

from config import Settings, load_settings

JSON = b"application/json"
NOT_FOUND = b'{"error":"Not found"}'


class Floor:
    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.session: aiohttp.ClientSession | None = None
        self.rest = ""
        self.base_headers: dict[str, str] = {}
        self.sessions: dict[bytes, str] = {}  # token -> X-Gateway-Session (like auth's cache)

    async def start(self) -> None:
        settings = self.settings = load_settings()
        # database.AiohttpSender's session, setting for setting
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.http_pool_size, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=settings.http_timeout_seconds),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            trust_env=False,
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.rest = f"{settings.supabase_url.rstrip('/')}/rest/v1"
        key = settings.supabase_service_role_key.get_secret_value()
        self.base_headers = {
            "apikey": key,
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    def gateway_session(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """X-Gateway-Session from the bearer token's claims (not verified: the floor)."""
        token = next((v[7:] for k, v in headers if k == b"authorization"), b"")
        found = self.sessions.get(token)
        if found is None and token.count(b".") == 2:
            segment = token.split(b".")[1]
            claims = orjson.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
            found = self.sessions[token] = f"{claims['userId']}:{claims['jti']}:{claims['iat']}"
        return found

    @staticmethod
    def call(path: str, query: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
        parts = path.strip("/").split("/")
        if parts == ["api", "expenses"]:
            return "list_expenses", {
                "p_user_id": int(query["user_id"]) if "user_id" in query else None,
                "p_category_id": None,
                "p_date_from": query.get("date_from"),
                "p_date_to": query.get("date_to"),
                "p_limit": None,
                "p_offset": 0,
            }
        if len(parts) == 4 and parts[:2] == ["api", "dashboard"]:
            if parts[3] == "monthly":
                return "get_monthly_dashboard", {
                    "p_user_id": int(parts[2]),
                    "p_year": int(query["year"]),
                    "p_month": int(query["month"]),
                }
            if parts[3] == "yearly":
                return "get_yearly_dashboard", {
                    "p_user_id": int(parts[2]),
                    "p_year": int(query["year"]),
                }
        return None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"] == "/health/ready":  # bench.py waits for it, as for the gateway's
            await respond(send, 200, b"{}")
            return
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        target = self.call(scope["path"], query) if scope["method"] == "GET" else None
        if target is None:
            await respond(send, 404, NOT_FOUND)
            return
        function, params = target
        headers = dict(self.base_headers)
        session = self.gateway_session(scope["headers"])
        if session is not None:
            headers["X-Gateway-Session"] = session
        assert self.session is not None
        async with self.session.post(
            URL(f"{self.rest}/rpc/{function}"), data=orjson.dumps(params), headers=headers
        ) as response:
            body = await response.read()
            status = response.status
        await respond(send, status, body)


async def respond(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", JSON)],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = Floor()
