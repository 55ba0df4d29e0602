"""Unit tests: the app against a fake Supabase (respx), no network, no database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from config import Settings

FAKE_URL = "http://supabase.test"
REST = f"{FAKE_URL}/rest/v1"
UNIT_ENV = {
    "SUPABASE_URL": FAKE_URL,
    "SUPABASE_ANON_KEY": "anon-key",
    "SUPABASE_SERVICE_ROLE_KEY": "service-key",
    "JWT_SECRET": "unit-test-secret-that-is-long-enough-0123456789",
    "DATABASE_URL": "postgresql://nobody:nothing@127.0.0.1:9/none",
    "CORS_ORIGINS": "http://localhost:3000",
}


def unit_settings(**overrides) -> Settings:
    """Settings that never reach a real service: httpx transport so respx can fake it."""
    values = {
        "supabase_url": FAKE_URL,
        "supabase_anon_key": "anon-key",
        "supabase_service_role_key": "service-key",
        "jwt_secret": UNIT_ENV["JWT_SECRET"],
        "database_url": UNIT_ENV["DATABASE_URL"],
        "cors_origins": "http://localhost:3000",
        "http_transport": "httpx",
        "bootstrap_on_startup": False,
        "rate_limit_enabled": False,
        "dashboard_cache": False,  # its listener would try DATABASE_URL
        "bcrypt_rounds": 4,
        "environment": "dev",
    }
    return Settings(_env_file=None, **{**values, **overrides})  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """Unit tests never read the developer's .env or the stack's variables."""
    monkeypatch.setenv("ENV_FILE", "")
    for key, value in UNIT_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def rest() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=REST, assert_all_called=False) as router:
        # every login writes its audit row (PostgREST answers a void function with 204)
        router.post("/rpc/record_login").respond(204)
        yield router


@pytest.fixture
async def client(rest) -> AsyncIterator[httpx.AsyncClient]:
    from asgi_lifespan import LifespanManager

    from main import create_app

    app = create_app(unit_settings())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c
