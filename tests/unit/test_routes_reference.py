"""GET /api/categories and /api/payment-methods against a faked PostgREST."""

from __future__ import annotations

import logging

import httpx
import pytest

CATEGORIES = [
    {"id": 1, "name": "Food", "description": "Groceries"},
    {"id": 2, "name": "Transportation", "description": None},
]
METHODS = [{"id": 1, "name": "Cash"}, {"id": 2, "name": "Credit Card"}]
ENDPOINTS = [
    ("/api/categories", "/categories", CATEGORIES, "id,name,description"),
    ("/api/payment-methods", "/payment_methods", METHODS, "id,name"),
]


@pytest.mark.parametrize("path, table, rows, columns", ENDPOINTS)
async def test_reference_data_is_read_with_the_anon_key_by_id(
    client, rest, path, table, rows, columns
):
    route = rest.get(table).respond(200, json=rows)
    response = await client.get(path)
    assert response.status_code == 200
    assert response.json() == rows
    request = route.calls.last.request
    assert request.headers["apikey"] == "anon-key"
    assert request.headers["authorization"] == "Bearer anon-key"
    assert request.url.params["select"] == columns and request.url.params["order"] == "id.asc"


@pytest.mark.parametrize("path, table, rows, columns", ENDPOINTS)
async def test_reference_data_needs_no_token(client, rest, path, table, rows, columns):
    rest.get(table).respond(200, json=rows)
    response = await client.get(path, headers={"Authorization": "Bearer garbage"})
    assert response.status_code == 200


@pytest.mark.parametrize("path, table, rows, columns", ENDPOINTS)
async def test_reference_data_is_cached_between_requests(client, rest, path, table, rows, columns):
    route = rest.get(table).respond(200, json=rows)
    first = await client.get(path)
    second = await client.get(path)
    assert first.content == second.content
    assert route.call_count == 1


async def test_reference_cache_expires_after_its_ttl(rest):
    from asgi_lifespan import LifespanManager

    from main import create_app
    from tests.unit.helpers import unit_settings

    app = create_app(unit_settings(reference_cache_ttl_seconds=0))
    route = rest.get("/categories").respond(200, json=CATEGORIES)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            await c.get("/api/categories")
            await c.get("/api/categories")
    assert route.call_count == 2


async def test_reference_data_answers_if_none_match_with_304(client, rest):
    rest.get("/categories").respond(200, json=CATEGORIES)
    first = await client.get("/api/categories")
    etag = first.headers["etag"]
    again = await client.get("/api/categories", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = await client.get("/api/categories", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.json() == CATEGORIES


@pytest.mark.parametrize("path, table, rows, columns", ENDPOINTS)
async def test_reference_postgrest_error_is_generic_500_and_not_cached(
    client, rest, caplog, path, table, rows, columns
):
    route = rest.get(table)
    route.side_effect = [
        httpx.Response(
            500,
            json={
                "code": "42501",
                "message": "permission denied for table x",
                "details": "SECRET-DETAIL-xyz",
                "hint": None,
            },
        ),
        httpx.Response(200, json=rows),
    ]
    with caplog.at_level(logging.ERROR, logger="ffb.database"):
        failed = await client.get(path)
    assert failed.status_code == 500
    assert failed.json() == {"error": "Internal server error"}
    assert "SECRET-DETAIL-xyz" not in failed.text and "permission" not in failed.text
    assert "SECRET-DETAIL-xyz" in caplog.text
    recovered = await client.get(path)
    assert recovered.status_code == 200 and recovered.json() == rows


async def test_reference_when_postgrest_is_unreachable_is_503(client, rest):
    rest.get("/categories").mock(side_effect=httpx.ConnectError("refused"))
    response = await client.get("/api/categories")
    assert response.status_code == 503
    assert response.json() == {"error": "Database unavailable"}


async def test_reference_when_the_gateway_proxy_answers_502_html_is_503(client, rest):
    rest.get("/payment_methods").respond(
        502, text="<html><body>502 Bad Gateway</body></html>", headers={"Content-Type": "text/html"}
    )
    response = await client.get("/api/payment-methods")
    assert response.status_code == 503
    assert response.json() == {"error": "Database unavailable"}
