"""Settings: the only module that reads the environment (and `.env`).

Everything else receives the `Settings` object. A missing or unsafe value fails at start
with one line that names the variable.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Secrets that ship in tutorials and templates; prod refuses them whatever their length.
WEAK_SECRETS = {
    "secret",
    "changeme",
    "change-me",
    "change_me",
    "your-secret-key",
    "your_jwt_secret",
    "jwt-secret",
    "supersecret",
    "development",
    "test",
    "password",
    "super-secret-jwt-token-with-at-least-32-characters-long",
}
MIN_PROD_SECRET_BYTES = 32


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message names it."""


class DatabaseSettings(BaseSettings):
    """DATABASE_URL alone, read like every setting: what the admin scripts need
    (scripts/bootstrap_schema.py, scripts/seed_demo.py), which run without the API keys."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: SecretStr

    @field_validator("database_url")
    @classmethod
    def _postgres_dsn(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// connection string")
        return value


class Settings(DatabaseSettings):
    environment: Literal["dev", "prod"] = "dev"

    # Supabase / Postgres
    supabase_url: str
    supabase_anon_key: SecretStr
    supabase_service_role_key: SecretStr
    jwt_secret: SecretStr
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Tokens and passwords
    jwt_expire_hours: int = Field(24, ge=1, le=24 * 30)
    # POST /api/auth/token and /refresh (issue 22): short access tokens, rotating refresh
    # tokens; an admin's password reset code
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(30, ge=1, le=365)
    reset_code_hours: int = Field(24, ge=1, le=24 * 14)
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    bcrypt_concurrency: int = Field(1, ge=1, le=16)

    # Data path
    http_timeout_seconds: float = Field(4.0, gt=0, le=60)
    http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    http_pool_size: int = Field(64, ge=1, le=1000)
    reference_cache_ttl_seconds: float = Field(30.0, ge=0, le=3600)
    dashboard_cache: bool = True
    # the hot reads (list, dashboards, categories, me) served by hotpath.py (false: by
    # FastAPI, the same functions; for comparing, or should a FastAPI upgrade need it)
    hot_routes: bool = True
    bootstrap_on_startup: bool = True

    # Abuse limits (the `limits` library's notation, e.g. "5/15minutes")
    rate_limit_enabled: bool = True
    login_rate_limit: str = "5/15minutes"
    register_rate_limit: str = "3/hour"
    max_body_bytes: int = Field(10 * 1024, ge=1024)
    # Recurring expenses (issue 23) where the database has no pg_cron: at start-up and
    # hourly, one worker at a time (an advisory lock) runs materialize_recurring()
    recurring_scheduler: bool = True
    # POST /api/expenses/import takes bodies up to this size instead (issue 23)
    import_max_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    # Proxies in front of the app that each append the address they saw to X-Forwarded-For
    # (Heroku's router: 1). 0: the header is ignored, the client is the TCP peer.
    trusted_proxy_hops: int = Field(0, ge=0, le=10)
    idempotency_ttl_hours: int = Field(24, ge=1, le=24 * 14)

    # Audit trail: rows older than this are pruned (at start-up, then every 6 hours)
    audit_retention_days: int = Field(365, ge=1, le=36500)

    # Migration (shadow compare against the legacy API)
    legacy_base_url: str | None = None
    shadow_compare: bool = False
    shadow_concurrency: int = Field(4, ge=1, le=64)
    shadow_timeout_seconds: float = Field(5.0, gt=0, le=60)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Who may join: open (legacy: anyone who can reach the API), invite (an admin's
    # single-use code from scripts/users.py invite) or closed. Prod requires an explicit choice.
    registration_mode: Literal["open", "invite", "closed"] = "open"
    invite_ttl_hours: int = Field(72, ge=1, le=24 * 90)

    # The login cookie `jwt`: SameSite=None (frontend on another site) forces Secure
    cookie_samesite: Literal["strict", "lax", "none"] = "strict"
    cookie_domain: str | None = None

    # Operators: optional bearer secret for /metrics; required to read /health/shadow
    metrics_token: SecretStr | None = None
    # prod only: serve /metrics to anyone without METRICS_TOKEN (a warning at every start)
    metrics_public: bool = False
    # Set by gunicorn.conf.py per server start (prometheus_client's multiprocess mode)
    prometheus_multiproc_dir: str | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("cookie_samesite", "registration_mode", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cookie_domain", "metrics_token", "prometheus_multiproc_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cookie_domain")
    @classmethod
    def _bare_domain(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", value):
            raise ValueError("must be a bare domain such as example.com (no scheme, port or path)")
        return value

    @field_validator("supabase_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _prod_is_strict(self) -> Settings:
        if self.environment != "prod":
            return self
        secret = self.jwt_secret.get_secret_value()
        if len(secret.encode()) < MIN_PROD_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET must be at least {MIN_PROD_SECRET_BYTES} bytes in prod")
        if secret.lower() in WEAK_SECRETS:
            raise ValueError("JWT_SECRET is a well-known default; generate a random one in prod")
        if "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS=* is not allowed in prod (cookies need credentials)")
        if "registration_mode" not in self.model_fields_set:
            raise ValueError(
                "REGISTRATION_MODE must be set explicitly in prod (open, invite or "
                "closed): with open, anyone who reaches the API can join the family"
            )
        token = self.metrics_token.get_secret_value() if self.metrics_token else None
        if token is not None and (
            len(token.encode()) < MIN_PROD_SECRET_BYTES or token.lower() in WEAK_SECRETS
        ):
            raise ValueError(
                f"METRICS_TOKEN must be a random string of at least {MIN_PROD_SECRET_BYTES} "
                "bytes in prod"
            )
        if token is None and not self.metrics_public:
            raise ValueError(
                f"METRICS_TOKEN must be set in prod (a random string of at least "
                f"{MIN_PROD_SECRET_BYTES} bytes), or METRICS_PUBLIC=true to serve /metrics to "
                "anyone: it counts failed logins, 429s and the bcrypt queue"
            )
        return self

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def cookie_secure(self) -> bool:
        return self.is_prod or self.cookie_samesite == "none"

    @property
    def rest_url(self) -> str:
        return f"{self.supabase_url}/rest/v1"


def describe_error(error: ValidationError) -> str:
    """One line per problem, naming the environment variable."""
    lines = []
    for item in error.errors():
        name = "_".join(str(p) for p in item["loc"]).upper() or "settings"
        if item["type"] == "missing":
            lines.append(f"{name} is required (set it in the environment or in .env)")
        else:
            lines.append(f"{name}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def _load(kind: type[SettingsT], **overrides: Any) -> SettingsT:
    env_file = os.environ.get("ENV_FILE", ".env") or None
    try:
        return kind(_env_file=env_file, **overrides)
    except ValidationError as error:
        raise ConfigError(f"configuration error: {describe_error(error)}") from None


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning validation errors into a ConfigError naming each variable.

    `ENV_FILE` picks another dotenv file; set it empty to read the environment only.
    """
    return _load(Settings, **overrides)


def load_database_url() -> str:
    """DATABASE_URL from the environment or the dotenv file, validated like the app's."""
    return _load(DatabaseSettings).database_url.get_secret_value()


@lru_cache
def get_settings() -> Settings:
    return load_settings()
