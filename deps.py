"""The application's state and the typed dependencies routes declare.

`AppState` holds every long-lived object of a worker; the lifespan (main.py) builds it
once with `AppState.start(settings)` and closes it on shutdown. Routes never reach into
`app.state`: they name what they need as parameters, e.g.

    async def login(body: LoginRequest, db: Db, passwords: Passwords) -> JsonResponse:

The dependency functions are `async` on purpose: FastAPI runs a sync dependency in a
worker thread, a thread hop on every request (docs/performance.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request

import shadow
from auth import TOKEN_MISSING, TokenUser, decode_token, token_from_request
from config import Settings
from dashboard_cache import DashboardCache
from database import Database
from errors import ApiError
from passwords import PasswordHasher
from ratelimit import AuthLimits
from readiness import Readiness, Revocation
from reference_cache import ReferenceCache


@dataclass
class AppState:
    settings: Settings
    db: Database
    passwords: PasswordHasher
    limits: AuthLimits
    reference_cache: ReferenceCache
    shadow: shadow.ShadowCompare | None  # None unless SHADOW_COMPARE and LEGACY_BASE_URL
    dashboard_cache: DashboardCache
    revocation: Revocation  # proven by a probe; authenticated routes answer 503 until it is
    readiness: Readiness

    @classmethod
    async def start(cls, settings: Settings) -> AppState:
        db = await Database.connect(settings)
        dashboard_cache = DashboardCache(
            settings.database_url.get_secret_value(), settings.dashboard_cache
        )
        dashboard_cache.start()
        revocation = Revocation()
        return cls(
            settings=settings,
            db=db,
            passwords=PasswordHasher(settings.bcrypt_rounds, settings.bcrypt_concurrency),
            limits=AuthLimits(settings, db),
            reference_cache=ReferenceCache(settings.reference_cache_ttl_seconds),
            shadow=shadow.start(settings),
            dashboard_cache=dashboard_cache,
            revocation=revocation,
            readiness=Readiness(settings.database_url.get_secret_value(), db, revocation),
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.dashboard_cache.stop)
        await self.passwords.close()
        await shadow.stop(self.shadow)
        await self.db.close()


def attach(app: FastAPI, state: AppState | None) -> None:
    """Called by the lifespan: `state` on start-up, None once it is closed."""
    app.state.app_state = state


def app_state(app: FastAPI) -> AppState:
    """The running app's state (tests use it to reset caches through their own methods)."""
    state: AppState | None = getattr(app.state, "app_state", None)
    if state is None:
        raise RuntimeError("the app's lifespan has not started")
    return state


async def get_settings(request: Request) -> Settings:
    return app_state(request.app).settings


async def get_db(request: Request) -> Database:
    return app_state(request.app).db


async def get_passwords(request: Request) -> PasswordHasher:
    return app_state(request.app).passwords


async def get_limits(request: Request) -> AuthLimits:
    return app_state(request.app).limits


async def get_reference_cache(request: Request) -> ReferenceCache:
    return app_state(request.app).reference_cache


async def get_shadow(request: Request) -> shadow.ShadowCompare | None:
    return app_state(request.app).shadow


async def get_dashboard_cache(request: Request) -> DashboardCache:
    return app_state(request.app).dashboard_cache


async def current_user(request: Request) -> TokenUser:
    """The caller named by the Bearer token (or the legacy `jwt` cookie); 401 without one,
    503 while this worker cannot prove that logged-out sessions are refused (readiness.py)."""
    token = token_from_request(request)
    if token is None:
        raise ApiError(401, TOKEN_MISSING)
    state = app_state(request.app)
    user = decode_token(state.settings, token)
    request.state.user_id = user.id  # for the access log
    state.revocation.gate()
    return user


AppSettings = Annotated[Settings, Depends(get_settings)]
Db = Annotated[Database, Depends(get_db)]
Passwords = Annotated[PasswordHasher, Depends(get_passwords)]
Limits = Annotated[AuthLimits, Depends(get_limits)]
RefCache = Annotated[ReferenceCache, Depends(get_reference_cache)]
Shadow = Annotated[shadow.ShadowCompare | None, Depends(get_shadow)]
DashCache = Annotated[DashboardCache, Depends(get_dashboard_cache)]
CurrentUser = Annotated[TokenUser, Depends(current_user)]
