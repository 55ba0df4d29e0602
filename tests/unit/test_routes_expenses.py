"""GET and POST /api/expenses against a faked PostgREST."""
from __future__ import annotations

import json
import logging

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.conftest import bearer
from tests.unit.conftest import unit_settings

ALOK = {"id": 1, "name": "Alok", "email": "alok@example.com"}
PGRST_BOOM = {"code": "42P01", "message": "relation \"secret_table\" does not exist",
              "details": "SECRET-DETAIL-xyz", "hint": None}


def db_row(id: int, amount="400.00", date="2025-01-15", payment=(4, "UPI")) -> dict:
    """A row as PostgREST returns it for the gateway's embedded select."""
    return {"id": id, "user_id": 1, "amount": amount, "category_id": 1, "payment_method_id":
            payment[0] if payment else None, "description": f"row {id}", "date": date,
            "created_at": "2025-01-15T10:00:00+00:00", "users": {"name": "Alok"},
            "categories": {"name": "Food"},
            "payment_methods": {"name": payment[1]} if payment else None}


def shaped(id: int, amount=400, date="2025-01-15", payment=(4, "UPI")) -> dict:
    return {"id": id, "user_id": 1, "user_name": "Alok", "amount": amount, "category_id": 1,
            "category": "Food", "payment_method_id": payment[0] if payment else None,
            "payment_method": payment[1] if payment else None, "description": f"row {id}",
            "date": date, "created_at": "2025-01-15T10:00:00+00:00"}


def paged(rows: list[dict]):
    """A PostgREST stand-in that honours offset/limit on `rows` (max-rows 1000)."""
    def answer(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", 0))
        limit = min(int(request.url.params.get("limit", 1000)), 1000)
        return httpx.Response(200, json=rows[offset:offset + limit])
    return answer


@pytest.fixture
async def small_pages(rest):
    """The app with a PostgREST page of 3 rows, to see the paging loop."""
    from main import create_app
    app = create_app(unit_settings(postgrest_page_size=3))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


# --------------------------------------------------------------------------------------
# GET /api/expenses
# --------------------------------------------------------------------------------------
async def test_list_shapes_rows_into_the_legacy_fields(client, rest):
    rest.get("/expenses").respond(200, json=[
        db_row(2, amount="120.50"), db_row(1, amount="400.00", payment=None)])
    response = await client.get("/api/expenses", headers=bearer())
    assert response.status_code == 200
    assert response.json() == [shaped(2, amount=120.5), shaped(1, amount=400, payment=None)]
    assert isinstance(response.json()[1]["amount"], int)


async def test_list_orders_newest_date_first_and_embeds_names(client, rest):
    route = rest.get("/expenses").respond(200, json=[])
    await client.get("/api/expenses", headers=bearer())
    params = route.calls.last.request.url.params
    assert params["order"] == "date.desc,id.desc"
    assert "users(name)" in params["select"] and "categories(name)" in params["select"]
    assert "payment_methods(name)" in params["select"]
    assert "password_hash" not in params["select"]


async def test_list_sends_every_filter_combined_and_the_session(client, rest):
    route = rest.get("/expenses").respond(200, json=[])
    response = await client.get("/api/expenses", headers=bearer(), params={
        "user_id": 2, "category_id": 3, "date_from": "2025-01-01", "date_to": "2025-01-31"})
    assert response.status_code == 200
    request = route.calls.last.request
    assert request.url.params["user_id"] == "eq.2"
    assert request.url.params["category_id"] == "eq.3"
    assert request.url.params.get_list("date") == ["gte.2025-01-01", "lte.2025-01-31"]
    assert request.headers["x-gateway-session"].startswith("1:")
    assert request.headers["apikey"] == "service-key"


async def test_list_without_filters_sends_none(client, rest):
    route = rest.get("/expenses").respond(200, json=[])
    await client.get("/api/expenses", headers=bearer())
    params = route.calls.last.request.url.params
    assert {"user_id", "category_id", "date"}.isdisjoint(params.keys())


async def test_list_same_day_range_is_allowed(client, rest):
    route = rest.get("/expenses").respond(200, json=[])
    response = await client.get("/api/expenses", headers=bearer(),
                                params={"date_from": "2025-01-15", "date_to": "2025-01-15"})
    assert response.status_code == 200
    assert route.called


async def test_list_with_limit_and_offset_asks_for_exactly_that_window(client, rest):
    rows = [db_row(i) for i in range(100, 0, -1)]
    route = rest.get("/expenses").mock(side_effect=paged(rows))
    response = await client.get("/api/expenses", headers=bearer(),
                                params={"limit": 5, "offset": 10})
    assert [r["id"] for r in response.json()] == [90, 89, 88, 87, 86]
    assert route.call_count == 1
    params = route.calls.last.request.url.params
    assert (params["offset"], params["limit"]) == ("10", "5")


async def test_list_without_limit_pages_past_the_postgrest_page(small_pages, rest):
    rows = [db_row(i) for i in range(8, 0, -1)]
    route = rest.get("/expenses").mock(side_effect=paged(rows))
    response = await small_pages.get("/api/expenses", headers=bearer())
    assert [r["id"] for r in response.json()] == list(range(8, 0, -1))
    assert [(c.request.url.params["offset"], c.request.url.params["limit"])
            for c in route.calls] == [("0", "3"), ("3", "3"), ("6", "3")]


async def test_list_exact_multiple_of_the_page_asks_once_more_then_stops(small_pages, rest):
    route = rest.get("/expenses").mock(side_effect=paged([db_row(i) for i in range(6, 0, -1)]))
    response = await small_pages.get("/api/expenses", headers=bearer())
    assert len(response.json()) == 6
    assert route.call_count == 3


async def test_list_limit_larger_than_a_page_pages_until_the_limit(small_pages, rest):
    route = rest.get("/expenses").mock(side_effect=paged([db_row(i) for i in range(20, 0, -1)]))
    response = await small_pages.get("/api/expenses", headers=bearer(),
                                     params={"limit": 7, "offset": 2})
    assert [r["id"] for r in response.json()] == [18, 17, 16, 15, 14, 13, 12]
    assert [(c.request.url.params["offset"], c.request.url.params["limit"])
            for c in route.calls] == [("2", "3"), ("5", "3"), ("8", "1")]


async def test_list_more_than_1000_rows_are_all_returned(client, rest):
    rows = [db_row(i) for i in range(2500, 0, -1)]
    route = rest.get("/expenses").mock(side_effect=paged(rows))
    response = await client.get("/api/expenses", headers=bearer())
    assert len(response.json()) == 2500
    assert route.call_count == 3


async def test_list_rejects_date_from_after_date_to(client, rest):
    route = rest.get("/expenses")
    response = await client.get("/api/expenses", headers=bearer(),
                                params={"date_from": "2025-02-01", "date_to": "2025-01-31"})
    assert response.status_code == 400
    assert response.json() == {"error": "date_from must not be after date_to"}
    assert not route.called


@pytest.mark.parametrize("params", [
    {"user_id": "abc"}, {"user_id": 0}, {"user_id": -1}, {"user_id": "1.5"},
    {"user_id": 2**53}, {"category_id": "x"}, {"category_id": 0},
    {"date_from": "2025-02-30"}, {"date_from": "2025/01/01"}, {"date_to": "yesterday"},
    {"date_to": "1700000000"}, {"date_from": "2025-1-1"},
    {"limit": 0}, {"limit": -1}, {"limit": "ten"}, {"offset": -1}, {"offset": "x"},
])
async def test_list_rejects_invalid_query_with_400(client, rest, params):
    route = rest.get("/expenses")
    response = await client.get("/api/expenses", headers=bearer(), params=params)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert "detail" not in response.text
    assert not route.called


async def test_list_invalid_date_message_names_the_field(client, rest):
    response = await client.get("/api/expenses", headers=bearer(),
                                params={"date_from": "2025-02-30"})
    assert response.json()["error"].startswith("date_from")


async def test_list_without_token_is_401(client, rest):
    route = rest.get("/expenses")
    response = await client.get("/api/expenses")
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication required"}
    assert not route.called


async def test_list_for_a_revoked_session_is_401(client, rest):
    rest.get("/expenses").respond(401, json={
        "code": "PT401", "message": "Invalid or expired token", "details": None, "hint": None})
    response = await client.get("/api/expenses", headers=bearer())
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or expired token"}


async def test_list_postgrest_error_is_generic_500_with_details_only_in_log(client, rest, caplog):
    rest.get("/expenses").respond(400, json=PGRST_BOOM)
    with caplog.at_level(logging.ERROR, logger="ffb.database"):
        response = await client.get("/api/expenses", headers=bearer())
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert "secret_table" not in response.text and "SECRET-DETAIL-xyz" not in response.text
    assert "SECRET-DETAIL-xyz" in caplog.text and "42P01" in caplog.text


async def test_list_when_postgrest_times_out_is_503(client, rest):
    rest.get("/expenses").mock(side_effect=httpx.ReadTimeout("slow"))
    response = await client.get("/api/expenses", headers=bearer())
    assert response.status_code == 503
    assert response.json() == {"error": "Database unavailable"}


# --------------------------------------------------------------------------------------
# POST /api/expenses
# --------------------------------------------------------------------------------------
STORED = {"id": 7, "user_id": 1, "user_name": "Alok", "amount": 250.5, "category_id": 1,
          "category": "Food", "payment_method_id": 4, "payment_method": "UPI",
          "description": "Groceries", "date": "2025-01-15",
          "created_at": "2025-01-15T10:00:00.123+00:00"}


def rpc_sent(route) -> dict:
    return json.loads(route.calls.last.request.content)


async def test_create_returns_201_with_the_stored_row(client, rest):
    route = rest.post("/rpc/create_expense").respond(
        200, json={"replayed": False, "expense": STORED})
    response = await client.post("/api/expenses", headers=bearer(), json={
        "amount": 250.5, "category_id": 1, "payment_method_id": 4,
        "description": "Groceries", "date": "2025-01-15"})
    assert response.status_code == 201
    assert response.json() == {"message": "Expense added successfully", "id": 7,
                               "expense": STORED}
    sent = rpc_sent(route)
    assert sent["p_actor_id"] == 1 and sent["p_user_id"] == 1
    assert sent["p_amount"] == "250.50" and sent["p_category_id"] == 1
    assert sent["p_payment_method_id"] == 4 and sent["p_date"] == "2025-01-15"
    assert sent["p_description"] == "Groceries"
    assert sent["p_idempotency_key"] is None and sent["p_request_hash"] is None
    assert route.calls.last.request.headers["x-gateway-session"].startswith("1:")


async def test_create_defaults_user_date_and_payment_to_the_database(client, rest):
    route = rest.post("/rpc/create_expense").respond(
        200, json={"replayed": False, "expense": STORED})
    await client.post("/api/expenses", headers=bearer(), json={"amount": 10, "category_id": 1})
    sent = rpc_sent(route)
    assert sent["p_user_id"] == 1
    assert sent["p_date"] is None and sent["p_payment_method_id"] is None
    assert sent["p_description"] is None and sent["p_amount"] == "10.00"


async def test_create_for_another_user_passes_user_id(client, rest):
    route = rest.post("/rpc/create_expense").respond(
        200, json={"replayed": False, "expense": {**STORED, "user_id": 3}})
    response = await client.post("/api/expenses", headers=bearer(),
                                 json={"amount": 10, "category_id": 1, "user_id": 3})
    assert response.status_code == 201
    assert rpc_sent(route)["p_user_id"] == 3 and rpc_sent(route)["p_actor_id"] == 1


async def test_create_with_idempotency_key_sends_key_and_request_hash(client, rest):
    route = rest.post("/rpc/create_expense").respond(
        200, json={"replayed": True, "expense": STORED})
    response = await client.post("/api/expenses", json={"amount": 10, "category_id": 1},
                                 headers={**bearer(), "Idempotency-Key": "abc-123"})
    assert response.status_code == 201
    sent = rpc_sent(route)
    assert sent["p_idempotency_key"] == "abc-123" and len(sent["p_request_hash"]) == 64


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "ключ".encode()])
async def test_create_rejects_malformed_idempotency_key(client, rest, key):
    route = rest.post("/rpc/create_expense")
    response = await client.post("/api/expenses", json={"amount": 10, "category_id": 1},
                                 headers={**bearer(), "Idempotency-Key": key})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]
    assert not route.called


@pytest.mark.parametrize("body", [
    {"category_id": 1},
    {"amount": 0, "category_id": 1},
    {"amount": -5, "category_id": 1},
    {"amount": "12", "category_id": 1},
    {"amount": True, "category_id": 1},
    {"amount": None, "category_id": 1},
    {"amount": 1.234, "category_id": 1},
    {"amount": 1e12, "category_id": 1},
    {"amount": 10},
    {"amount": 10, "category_id": 0},
    {"amount": 10, "category_id": "food"},
    {"amount": 10, "category_id": 1, "payment_method_id": 0},
    {"amount": 10, "category_id": 1, "user_id": -1},
    {"amount": 10, "category_id": 1, "description": "x" * 501},
    {"amount": 10, "category_id": 1, "description": "nul\u0000byte"},
    {"amount": 10, "category_id": 1, "date": "2025-02-30"},
    {"amount": 10, "category_id": 1, "date": "15/01/2025"},
    {"amount": 10, "category_id": 1, "date": 1736899200},
])
async def test_create_rejects_bad_input_before_the_database(client, rest, body):
    route = rest.post("/rpc/create_expense")
    response = await client.post("/api/expenses", headers=bearer(), json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert not route.called


async def test_create_rejects_a_json_array_body(client, rest):
    response = await client.post("/api/expenses", headers=bearer(), json=[1, 2])
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


async def test_create_missing_amount_says_so(client, rest):
    response = await client.post("/api/expenses", headers=bearer(), json={"category_id": 1})
    assert response.json() == {"error": "amount is required"}


async def test_create_accepts_a_500_character_description(client, rest):
    route = rest.post("/rpc/create_expense").respond(
        200, json={"replayed": False, "expense": STORED})
    response = await client.post("/api/expenses", headers=bearer(),
                                 json={"amount": 1, "category_id": 1, "description": "x" * 500})
    assert response.status_code == 201
    assert len(rpc_sent(route)["p_description"]) == 500


@pytest.mark.parametrize("message", ["Invalid category_id: category does not exist",
                                     "Invalid payment_method_id: payment method does not exist",
                                     "Invalid user_id: user does not exist"])
async def test_create_unknown_reference_is_400_naming_the_field(client, rest, message):
    rest.post("/rpc/create_expense").respond(400, json={
        "code": "PT400", "message": message, "details": None, "hint": None})
    response = await client.post("/api/expenses", headers=bearer(),
                                 json={"amount": 10, "category_id": 99})
    assert response.status_code == 400
    assert response.json() == {"error": message}


async def test_create_idempotency_key_reused_with_another_body_is_409(client, rest):
    message = "Idempotency-Key was already used with a different request"
    rest.post("/rpc/create_expense").respond(409, json={
        "code": "PT409", "message": message, "details": None, "hint": None})
    response = await client.post("/api/expenses", json={"amount": 10, "category_id": 1},
                                 headers={**bearer(), "Idempotency-Key": "k"})
    assert response.status_code == 409
    assert response.json() == {"error": message}


async def test_create_without_token_is_401(client, rest):
    route = rest.post("/rpc/create_expense")
    response = await client.post("/api/expenses", json={"amount": 10, "category_id": 1})
    assert response.status_code == 401
    assert not route.called


async def test_create_postgrest_error_is_generic_500_with_details_only_in_log(
        client, rest, caplog):
    rest.post("/rpc/create_expense").respond(500, json=PGRST_BOOM)
    with caplog.at_level(logging.ERROR, logger="ffb.database"):
        response = await client.post("/api/expenses", headers=bearer(),
                                     json={"amount": 10, "category_id": 1})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert "SECRET-DETAIL-xyz" not in response.text and "SECRET-DETAIL-xyz" in caplog.text
