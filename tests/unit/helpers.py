"""Helpers of the unit tests: settings that never reach a real service, and the fake
Supabase they point at (tests/unit/conftest.py fakes it with respx)."""

from __future__ import annotations

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
