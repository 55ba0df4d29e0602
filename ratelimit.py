"""Login/register rate limits with the `limits` library, counters kept in Postgres.

The counters must be shared by every gunicorn worker (a per-worker counter would multiply
the limit by the worker count), so `PostgrestStorage` stores them in `public.rate_limits`
through PostgREST RPCs (sql/gateway_functions.sql); `limits` supplies the fixed-window
strategy and the "5/15minutes" notation of the settings.
"""
from __future__ import annotations

import math
import time

from limits import parse
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter

import database
import metrics
from config import Settings
from models import ApiError

TOO_MANY = "Too many attempts, please try again later"


class PostgrestStorage(Storage):
    STORAGE_SCHEME = ["ffb-postgrest"]

    def __init__(self, db: database.Database):
        super().__init__()
        self.rpc = db.service.rpc

    @property
    def base_exceptions(self) -> type[Exception]:
        return ApiError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return int(await database.execute(self.rpc(
            "rate_limit_incr", {"p_key": key, "p_expiry_seconds": int(expiry), "p_amount": amount})))

    async def _window(self, key: str) -> dict:
        return await database.execute(self.rpc("rate_limit_get", {"p_key": key}))

    async def get(self, key: str) -> int:
        return int((await self._window(key))["hits"])

    async def get_expiry(self, key: str) -> float:
        return float((await self._window(key))["expires_at"])

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        await database.execute(self.rpc("rate_limit_clear", {"p_key": None}))
        return None

    async def clear(self, key: str) -> None:
        await database.execute(self.rpc("rate_limit_clear", {"p_key": key}))


class AuthLimits:
    """Login: failed attempts per client and account. Register: attempts per client."""

    def __init__(self, settings: Settings, db: database.Database):
        self.enabled = settings.rate_limit_enabled
        self.login = parse(settings.login_rate_limit)
        self.register = parse(settings.register_rate_limit)
        self.limiter = FixedWindowRateLimiter(PostgrestStorage(db))

    async def _refuse(self, item, *identifiers: str) -> None:
        metrics.RATE_LIMITED.labels(identifiers[0]).inc()
        stats = await self.limiter.get_window_stats(item, *identifiers)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(429, TOO_MANY, headers={"Retry-After": str(retry_after)})

    async def before_login(self, client: str, account: str) -> None:
        """Count the attempt as a failure up front (one atomic increment in Postgres), so a
        burst of concurrent attempts cannot all pass a check made before any of them is
        counted; `login_succeeded` gives the attempt back."""
        if self.enabled and not await self.limiter.hit(self.login, "login", client, account.lower()):
            await self._refuse(self.login, "login", client, account.lower())

    async def login_succeeded(self, client: str, account: str) -> None:
        if self.enabled:
            await self.limiter.hit(self.login, "login", client, account.lower(), cost=-1)

    async def register_attempt(self, client: str) -> None:
        if self.enabled and not await self.limiter.hit(self.register, "register", client):
            await self._refuse(self.register, "register", client)
