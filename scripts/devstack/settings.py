"""A stack's secrets (secrets.json), the Supabase keys made from them, and the settings the
app gets on that stack: written to .env (profile dev) or passed as environment variables."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from .output import rel, step, warn
from .paths import REPO, SCRIPT
from .profiles import HOST
from .stack import Stack, admin_dsn


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_jwt(payload: dict[str, object], secret: str) -> str:
    def compact(obj: dict[str, object]) -> str:
        return b64url(json.dumps(obj, separators=(",", ":")).encode())

    signing_input = compact({"alg": "HS256", "typ": "JWT"}) + "." + compact(payload)
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def supabase_key(role: str, jwt_secret: str) -> str:
    """The key Supabase issues for role: HS256 {"iss":"supabase-demo","role":..,"exp":..}."""
    ten_years = 10 * 365 * 24 * 3600
    return hs256_jwt(
        {"iss": "supabase-demo", "role": role, "exp": int(time.time()) + ten_years}, jwt_secret
    )


def load_secrets(stack: Stack) -> dict[str, str]:
    """Read .stack/<profile>/secrets.json, creating it (once) with random values."""
    data = json.loads(stack.secrets_file.read_text()) if stack.secrets_file.exists() else {}
    generators: dict[str, Callable[[], str]] = {
        "postgres_password": lambda: secrets.token_urlsafe(24),
        "supabase_admin_password": lambda: secrets.token_urlsafe(24),
        "authenticator_password": lambda: secrets.token_urlsafe(24),
        "jwt_secret": lambda: secrets.token_urlsafe(48),
        "app_jwt_secret": lambda: secrets.token_urlsafe(64),
        "anon_key": lambda: supabase_key("anon", data["jwt_secret"]),
        "service_role_key": lambda: supabase_key("service_role", data["jwt_secret"]),
    }
    missing = [key for key in generators if key not in data]
    for key in missing:
        data[key] = generators[key]()
    if missing:
        step(f"writing {rel(stack.secrets_file)} ({', '.join(missing)})")
        stack.secrets_file.touch(mode=0o600)
        stack.secrets_file.write_text(json.dumps(data, indent=2) + "\n")
    return data


def database_url(stack: Stack, secret: dict[str, str], port: int | None = None) -> str:
    """`postgres`'s connection string: straight to Postgres, or to one of the poolers."""
    port = port or stack.profile.pg_port
    return f"postgresql://postgres:{secret['postgres_password']}@{HOST}:{port}/postgres"


def app_settings(stack: Stack, secret: dict[str, str]) -> dict[str, str]:
    """The app's configuration for this stack (written to .env for dev, env vars for test)."""
    return {
        "ENVIRONMENT": "dev",
        "SUPABASE_URL": stack.supabase_url,
        "SUPABASE_ANON_KEY": secret["anon_key"],
        "SUPABASE_SERVICE_ROLE_KEY": secret["service_role_key"],
        "SUPABASE_JWT_SECRET": secret["jwt_secret"],
        "JWT_SECRET": secret["app_jwt_secret"],
        "CORS_ORIGINS": stack.profile.cors_origins,
        "DATABASE_URL": database_url(stack, secret),
    }


# keys whose .env value must match the local stack for the app to reach it
STACK_BOUND_KEYS = (
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_JWT_SECRET",
    "DATABASE_URL",
)
ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def ensure_env_file(settings: dict[str, str], path: Path = REPO / ".env") -> None:
    """Add missing keys to .env; never change a value that is already there."""
    text = path.read_text() if path.exists() else ""
    present = {}
    for line in text.splitlines():
        match = ENV_LINE.match(line)
        if match:
            present[match.group(1)] = match.group(2).strip().strip("'\"")
    missing = [key for key in settings if key not in present]
    if missing:
        step(f"adding {', '.join(missing)} to .env")
        block = [
            "# Added by scripts/dev for the local Supabase stack (profile dev).",
            "# Existing values are never overwritten; edit or remove lines freely.",
        ]
        block += [f"{key}={settings[key]}" for key in missing]
        prefix = "" if not text or text.endswith("\n") else "\n"
        prefix += "\n" if text else ""
        if not path.exists():
            path.touch(mode=0o600)
        path.write_text(text + prefix + "\n".join(block) + "\n")
    stale = [k for k in STACK_BOUND_KEYS if k in present and present[k] != settings[k]]
    if stale:
        warn(
            f".env values for {', '.join(stale)} differ from the local stack's "
            f"(.stack/dev/secrets.json); the API uses .env. Delete those lines and rerun "
            f"to point the API at the local stack."
        )


def app_env(stack: Stack, secret: dict[str, str]) -> dict[str, str]:
    """Environment for the app's scripts, servers and tests on this stack.

    Profile dev: ours; the app reads .env itself (the project is installed into the venv,
    so no PYTHONPATH is needed). Other profiles write
    no .env: their settings are passed as variables and ENV_FILE= makes the app
    ignore the repo's .env (which points at the dev stack).
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if stack.profile.write_env_file:
        return env
    env.update(app_settings(stack, secret))
    env.update(
        {
            "ENV_FILE": "",
            "POSTGREST_DIRECT_URL": f"http://{HOST}:{stack.profile.postgrest_port}",
            "DEV_PROFILE": stack.profile.name,
            "DEV_SCRIPT": str(SCRIPT),
            "DEV_POSTGRES": str(stack.major),
            # pgbouncer (pooler.py), for the tests that run the API through a pooler
            "DEV_POOLER_SESSION_URL": database_url(
                stack, secret, stack.profile.pooler_session_port
            ),
            "DEV_POOLER_TRANSACTION_URL": database_url(
                stack, secret, stack.profile.pooler_transaction_port
            ),
        }
    )
    dsn = admin_dsn(stack)
    if dsn:
        env["DEV_ADMIN_DSN"] = dsn
    return env
