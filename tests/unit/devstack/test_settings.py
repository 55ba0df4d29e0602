from __future__ import annotations

import json
import time

from jose import jwt

from scripts.devstack import settings
from scripts.devstack.paths import SCRIPT
from scripts.devstack.settings import (
    app_env,
    app_settings,
    ensure_env_file,
    hs256_jwt,
    load_secrets,
    supabase_key,
)


def test_supabase_key_is_an_hs256_jwt_that_python_jose_verifies():
    secret = "a-stack-secret-long-enough-for-hs256-0123456789"
    key = supabase_key("service_role", secret)
    assert jwt.get_unverified_header(key) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(key, secret, algorithms=["HS256"])
    assert claims["iss"] == "supabase-demo" and claims["role"] == "service_role"
    ten_years = 10 * 365 * 24 * 3600
    assert abs(claims["exp"] - (time.time() + ten_years)) < 60


def test_hs256_jwt_matches_python_jose_byte_for_byte():
    payload = {"role": "anon", "n": 1}
    ours = hs256_jwt(payload, "s3cret")
    assert jwt.decode(ours, "s3cret", algorithms=["HS256"]) == payload
    assert ours.split(".")[2] == jwt.encode(payload, "s3cret", algorithm="HS256").split(".")[2]


def test_load_secrets_creates_them_once_and_keeps_them(tmp_stack):
    first = load_secrets(tmp_stack)
    assert set(first) == {
        "postgres_password",
        "supabase_admin_password",
        "authenticator_password",
        "jwt_secret",
        "app_jwt_secret",
        "anon_key",
        "service_role_key",
    }
    assert tmp_stack.secrets_file.stat().st_mode & 0o777 == 0o600
    assert (
        jwt.decode(first["anon_key"], first["jwt_secret"], algorithms=["HS256"])["role"] == "anon"
    )
    assert load_secrets(tmp_stack) == first


def test_load_secrets_fills_in_only_what_is_missing(tmp_stack):
    tmp_stack.secrets_file.write_text(json.dumps({"jwt_secret": "kept-secret"}))
    data = load_secrets(tmp_stack)
    assert data["jwt_secret"] == "kept-secret"
    claims = jwt.decode(data["service_role_key"], "kept-secret", algorithms=["HS256"])
    assert claims["role"] == "service_role"


def test_app_settings_point_the_app_at_the_stack(tmp_stack):
    secret = load_secrets(tmp_stack)
    values = app_settings(tmp_stack, secret)
    assert values["SUPABASE_URL"] == "http://127.0.0.1:25341"
    assert values["DATABASE_URL"] == (
        f"postgresql://postgres:{secret['postgres_password']}@127.0.0.1:25342/postgres"
    )
    assert values["JWT_SECRET"] == secret["app_jwt_secret"]
    assert values["SUPABASE_JWT_SECRET"] == secret["jwt_secret"]


def test_test_profiles_pass_settings_as_variables_and_ignore_dot_env(tmp_stack, monkeypatch):
    monkeypatch.delenv("DEV_ADMIN_DSN", raising=False)  # set when run by `scripts/dev test`
    secret = load_secrets(tmp_stack)
    env = app_env(tmp_stack, secret)
    assert env["ENV_FILE"] == ""
    assert env["DEV_PROFILE"] == "unit-devstack"
    assert env["DEV_SCRIPT"] == str(SCRIPT)
    assert env["POSTGREST_DIRECT_URL"] == "http://127.0.0.1:25343"
    assert env["SUPABASE_ANON_KEY"] == secret["anon_key"]
    assert "DEV_ADMIN_DSN" not in env  # no cluster yet


def test_env_file_gets_missing_keys_and_keeps_existing_values(tmp_path, capsys):
    path = tmp_path / ".env"
    path.write_text("export CORS_ORIGINS='http://mine'\nDATABASE_URL=postgresql://other\n")
    ensure_env_file(
        {"CORS_ORIGINS": "http://stack", "DATABASE_URL": "postgresql://stack", "JWT_SECRET": "j"},
        path,
    )
    text = path.read_text()
    assert text.startswith("export CORS_ORIGINS='http://mine'\nDATABASE_URL=postgresql://other\n")
    assert text.endswith("JWT_SECRET=j\n")
    assert "CORS_ORIGINS=http://stack" not in text
    assert "DATABASE_URL differ from the local stack" in capsys.readouterr().err


def test_env_file_is_created_private(tmp_path):
    path = tmp_path / ".env"
    ensure_env_file({"JWT_SECRET": "j"}, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert settings.ENV_LINE.match(path.read_text().splitlines()[-1])
