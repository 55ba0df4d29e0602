"""Security headers on every response: successes, every kind of error, 304 and CORS
preflights; HSTS only in prod. And the `jwt` cookie's flags (Secure only in prod)."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.helpers import app_client, stack_settings, token_for

ALWAYS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
HSTS = "strict-transport-security"
LOGIN = {"email": "alok@example.com", "password": "password123"}
ORIGIN = "http://127.0.0.1:5500"  # CORS_ORIGINS of the test stack


async def every_kind_of_response(
    client: httpx.AsyncClient, token: str
) -> dict[str, httpx.Response]:
    bearer = {"Authorization": f"Bearer {token}"}
    got = {
        "200": await client.get("/api/categories"),
        "200 health": await client.get("/health"),
        "201": await client.post(
            "/api/expenses", headers=bearer, json={"amount": 3, "category_id": 1}
        ),
        "400": await client.get("/api/dashboard/1/monthly?month=13", headers=bearer),
        "400 malformed json": await client.post(
            "/api/auth/login", content=b"{", headers={"Content-Type": "application/json"}
        ),
        "401": await client.get("/api/expenses"),
        "404": await client.get("/no/such/path"),
        "404 user": await client.get("/api/dashboard/999/monthly", headers=bearer),
        "405": await client.delete("/api/categories"),
        "413": await client.post(
            "/api/auth/login", content=b"x" * 20_000, headers={"Content-Type": "application/json"}
        ),
        "preflight": await client.options(
            "/api/auth/login", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        ),
        "preflight refused": await client.options(
            "/api/auth/login",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        ),
    }
    etag = got["200"].headers["etag"]
    got["304"] = await client.get("/api/categories", headers={"If-None-Match": etag})
    return got


EXPECTED_STATUS = {
    "200": 200,
    "200 health": 200,
    "201": 201,
    "400": 400,
    "400 malformed json": 400,
    "401": 401,
    "404": 404,
    "404 user": 404,
    "405": 405,
    "413": 413,
    "preflight": 200,
    "preflight refused": 400,
    "304": 304,
}


@pytest.mark.parametrize("environment", ["dev", "prod"])
async def test_security_headers_on_every_response_and_hsts_only_in_prod(fresh_db, environment):
    async with app_client(
        stack_settings(environment=environment, registration_mode="open", metrics_token="m" * 40)
    ) as client:
        got = await every_kind_of_response(client, token_for())
    for kind, response in got.items():
        assert response.status_code == EXPECTED_STATUS[kind], (kind, response.text)
        for name, value in ALWAYS.items():
            assert response.headers.get(name) == value, (kind, name, response.headers)
        assert response.headers.get("x-request-id"), kind
        if environment == "prod":
            assert response.headers.get(HSTS) == "max-age=63072000; includeSubDomains", kind
        else:
            assert HSTS not in response.headers, kind


async def test_security_headers_on_503_when_postgrest_is_unreachable(fresh_db):
    settings = stack_settings(supabase_url="http://127.0.0.1:9", reference_cache_ttl_seconds=0)
    async with app_client(settings) as client:
        response = await client.get("/api/categories")
        ready = await client.get("/health/ready")
    for r in (response, ready):
        assert r.status_code == 503
        for name, value in ALWAYS.items():
            assert r.headers.get(name) == value


async def test_security_headers_on_the_last_resort_500(fresh_db):
    """An unexpected exception (a bug) still gets the headers and a bare {"error"}."""
    from main import create_app

    app = create_app(stack_settings())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug with a secret detail")

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    for name, value in ALWAYS.items():
        assert response.headers.get(name) == value


@pytest.mark.parametrize("environment,secure", [("dev", False), ("prod", True)])
async def test_login_cookie_is_httponly_strict_and_secure_only_in_prod(
    fresh_db, environment, secure
):
    async with app_client(
        stack_settings(environment=environment, registration_mode="open", metrics_token="m" * 40)
    ) as client:
        response = await client.post("/api/auth/login", json=LOGIN)
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("jwt=")
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert ("secure" in cookie.split("; ")) is secure
