"""Settings validation: missing variables are named, prod refuses weak secrets."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from tests.unit.helpers import unit_settings

STRONG = "x" * 16 + "Q9!" + "y" * 20


def test_missing_required_variable_is_named(monkeypatch):
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "SUPABASE_SERVICE_ROLE_KEY is required" in str(err.value)


def test_every_missing_variable_is_listed(monkeypatch):
    for key in ("SUPABASE_URL", "JWT_SECRET", "DATABASE_URL"):
        monkeypatch.delenv(key)
    message = str(pytest.raises(ConfigError, load_settings).value)
    for key in ("SUPABASE_URL", "JWT_SECRET", "DATABASE_URL"):
        assert key in message


def test_cors_origins_are_split_on_commas(monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", "http://a.test, http://b.test/ ,")
    assert load_settings().cors_origins == ["http://a.test", "http://b.test"]


def test_supabase_url_must_be_http():
    with pytest.raises(Exception, match="http"):
        unit_settings(supabase_url="ftp://example.com")


def test_database_url_must_be_postgres():
    with pytest.raises(Exception, match="postgresql"):
        unit_settings(database_url="mysql://x@y/z")


def test_prod_refuses_short_jwt_secret():
    with pytest.raises(Exception, match="at least 32 bytes"):
        unit_settings(environment="prod", jwt_secret="short-secret")


def test_prod_refuses_known_default_secret():
    with pytest.raises(Exception, match="well-known default"):
        unit_settings(
            environment="prod", jwt_secret="super-secret-jwt-token-with-at-least-32-characters-long"
        )


def test_prod_refuses_wildcard_cors():
    with pytest.raises(Exception, match=r"CORS_ORIGINS=\*"):
        unit_settings(environment="prod", jwt_secret=STRONG, cors_origins="*")


def test_prod_accepts_strong_settings():
    settings = unit_settings(
        environment="prod",
        jwt_secret=STRONG,
        cors_origins="https://family.example.com",
        registration_mode="invite",
        metrics_token="m" * 40,
    )
    assert settings.is_prod and settings.cors_origins == ["https://family.example.com"]


def test_prod_refuses_to_start_without_an_explicit_registration_mode():
    """Security finding 1: a family must choose to be open to anyone who reaches the API."""
    with pytest.raises(Exception, match="REGISTRATION_MODE must be set explicitly in prod"):
        unit_settings(environment="prod", jwt_secret=STRONG)


def test_prod_accepts_an_explicit_open_registration(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("JWT_SECRET", STRONG)
    monkeypatch.setenv("REGISTRATION_MODE", "OPEN")
    monkeypatch.setenv("METRICS_TOKEN", "m" * 40)
    assert load_settings().registration_mode == "open"
    monkeypatch.delenv("REGISTRATION_MODE")
    with pytest.raises(ConfigError, match="REGISTRATION_MODE must be set explicitly"):
        load_settings()


def test_dev_defaults_to_open_registration_and_a_strict_cookie():
    settings = unit_settings()
    assert settings.registration_mode == "open"
    assert (settings.cookie_samesite, settings.cookie_domain, settings.cookie_secure) == (
        "strict",
        None,
        False,
    )


def test_samesite_none_forces_secure_cookies():
    assert unit_settings(cookie_samesite="none").cookie_secure is True
    assert unit_settings(cookie_samesite="lax").cookie_secure is False


@pytest.mark.parametrize(
    "domain",
    ["https://family.example", "family.example:443", "family.example/app", "fam ily.example"],
)
def test_cookie_domain_must_be_a_bare_domain(domain):
    with pytest.raises(Exception, match="COOKIE_DOMAIN: must be a bare domain"):
        load_settings(cookie_domain=domain)


def test_unknown_registration_mode_is_named():
    with pytest.raises(ConfigError, match="REGISTRATION_MODE"):
        load_settings(registration_mode="members-only")


def test_dev_accepts_short_secret():
    assert unit_settings(jwt_secret="dev").environment == "dev"


def test_app_refuses_to_start_in_prod_with_weak_secret(monkeypatch, capsys):
    import subprocess
    import sys

    env = {
        "ENVIRONMENT": "prod",
        "JWT_SECRET": "weak",
        "ENV_FILE": "",
        "SUPABASE_URL": "http://x.test",
        "SUPABASE_ANON_KEY": "a",
        "SUPABASE_SERVICE_ROLE_KEY": "s",
        "DATABASE_URL": "postgresql://a@b/c",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-c", "import main; main.create_app()"],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(__import__("pathlib").Path(__file__).parents[2]),
    )
    assert (
        proc.returncode == 4
    )  # gunicorn APP_LOAD_ERROR: the arbiter halts (main.CONFIG_ERROR_EXIT)
    assert "JWT_SECRET must be at least 32 bytes" in proc.stderr
    assert "Traceback" not in proc.stderr


# issue 24 finding 7: /metrics in prod is guarded by a real token, or openly public
@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "METRICS_TOKEN must be set in prod"),
        ("a", "METRICS_TOKEN must be a random string of at least 32 bytes"),
        ("x" * 31, "METRICS_TOKEN must be a random string of at least 32 bytes"),
        (
            "super-secret-jwt-token-with-at-least-32-characters-long",
            "METRICS_TOKEN must be a random string",
        ),
    ],
)
def test_prod_refuses_a_missing_or_weak_metrics_token(token, message):
    with pytest.raises(Exception, match=message):
        unit_settings(
            environment="prod", jwt_secret=STRONG, registration_mode="invite", metrics_token=token
        )


def test_prod_serves_public_metrics_only_when_asked_to():
    settings = unit_settings(
        environment="prod", jwt_secret=STRONG, registration_mode="invite", metrics_public=True
    )
    assert settings.metrics_token is None and settings.metrics_public
    assert unit_settings(metrics_token="a").metrics_token is not None  # dev: any token
