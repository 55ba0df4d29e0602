"""GET and POST /api/expenses against a faked PostgREST."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import bearer

ALOK = {"id": 1, "name": "Alok", "email": "alok@example.com"}


# --------------------------------------------------------------------------------------
# GET /api/expenses
# --------------------------------------------------------------------------------------
BODY = (
    b'[{"id":2,"user_id":1,"user_name":"Alok","amount":120.5,"category_id":1,'
    b'"category":"Food","payment_method_id":null,"payment_method":null,'
    b'"description":"caf\xc3\xa9 \\"x\\"","date":"2025-01-15",'
    b'"created_at":"2025-01-15T10:00:00+00:00"}]'
)


def list_route(rest):
    return rest.post("/rpc/list_expenses").respond(
        200, content=BODY, headers={"Content-Type": "application/json; charset=utf-8"}
    )


async def test_list_passes_the_functions_bytes_through_unchanged(client, rest):
    list_route(rest)
    response = await client.get("/api/expenses", headers=bearer())
    assert response.status_code == 200
    assert response.content == BODY
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(BODY))


async def test_list_asks_one_function_for_json_with_the_service_key_and_session(client, rest):
    route = list_route(rest)
    await client.get("/api/expenses", headers=bearer())
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["accept"] == "application/json"
    assert request.headers["apikey"] == "service-key"
    assert request.headers["authorization"] == "Bearer service-key"
    assert request.headers["x-gateway-session"].startswith("1:")


async def test_list_without_filters_sends_nulls_and_no_limit(client, rest):
    route = list_route(rest)
    await client.get("/api/expenses", headers=bearer())
    assert rpc_sent(route) == {
        "p_user_id": None,
        "p_category_id": None,
        "p_date_from": None,
        "p_date_to": None,
        "p_limit": None,
        "p_offset": 0,
    }


async def test_list_sends_every_filter_and_the_window(client, rest):
    route = list_route(rest)
    response = await client.get(
        "/api/expenses",
        headers=bearer(),
        params={
            "user_id": 2,
            "category_id": 3,
            "date_from": "2025-01-01",
            "date_to": "2025-01-31",
            "limit": 5,
            "offset": 10,
        },
    )
    assert response.status_code == 200
    assert rpc_sent(route) == {
        "p_user_id": 2,
        "p_category_id": 3,
        "p_date_from": "2025-01-01",
        "p_date_to": "2025-01-31",
        "p_limit": 5,
        "p_offset": 10,
    }


async def test_list_same_day_range_is_allowed(client, rest):
    route = list_route(rest)
    response = await client.get(
        "/api/expenses",
        headers=bearer(),
        params={"date_from": "2025-01-15", "date_to": "2025-01-15"},
    )
    assert response.status_code == 200
    assert route.called


async def test_list_rejects_date_from_after_date_to(client, rest):
    route = rest.post("/rpc/list_expenses")
    response = await client.get(
        "/api/expenses",
        headers=bearer(),
        params={"date_from": "2025-02-01", "date_to": "2025-01-31"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "date_from must not be after date_to"}
    assert not route.called


@pytest.mark.parametrize(
    "params",
    [
        {"user_id": "abc"},
        {"user_id": 0},
        {"user_id": -1},
        {"user_id": "1.5"},
        {"user_id": 2**53},
        {"category_id": "x"},
        {"category_id": 0},
        {"date_from": "2025-02-30"},
        {"date_from": "2025/01/01"},
        {"date_to": "yesterday"},
        {"date_to": "1700000000"},
        {"date_from": "2025-1-1"},
        {"limit": 0},
        {"limit": -1},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": "x"},
    ],
)
async def test_list_rejects_invalid_query_with_400(client, rest, params):
    route = rest.post("/rpc/list_expenses")
    response = await client.get("/api/expenses", headers=bearer(), params=params)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert "detail" not in response.text
    assert not route.called


async def test_list_invalid_date_message_names_the_field(client, rest):
    response = await client.get(
        "/api/expenses", headers=bearer(), params={"date_from": "2025-02-30"}
    )
    assert response.json()["error"].startswith("date_from")


async def test_list_when_postgrest_times_out_is_503(client, rest):
    rest.post("/rpc/list_expenses").mock(side_effect=httpx.ReadTimeout("slow"))
    response = await client.get("/api/expenses", headers=bearer())
    assert response.status_code == 503
    assert response.json() == {"error": "Database unavailable"}


# --------------------------------------------------------------------------------------
# POST /api/expenses
# --------------------------------------------------------------------------------------
STORED = {
    "id": 7,
    "user_id": 1,
    "user_name": "Alok",
    "amount": 250.5,
    "category_id": 1,
    "category": "Food",
    "payment_method_id": 4,
    "payment_method": "UPI",
    "description": "Groceries",
    "date": "2025-01-15",
    "created_at": "2025-01-15T10:00:00.123+00:00",
}


CREATED = {"message": "Expense added successfully", "id": 7, "expense": STORED}


def rpc_sent(route) -> dict:
    return json.loads(route.calls.last.request.content)


async def test_create_returns_201_with_the_stored_row(client, rest):
    route = rest.post("/rpc/create_expense_response").respond(200, json=CREATED)
    response = await client.post(
        "/api/expenses",
        headers=bearer(),
        json={
            "amount": 250.5,
            "category_id": 1,
            "payment_method_id": 4,
            "description": "Groceries",
            "date": "2025-01-15",
        },
    )
    assert response.status_code == 201
    assert response.json() == {"message": "Expense added successfully", "id": 7, "expense": STORED}
    sent = rpc_sent(route)
    assert sent["p_actor_id"] == 1 and sent["p_user_id"] == 1
    assert sent["p_amount"] == "250.50" and sent["p_category_id"] == 1
    assert sent["p_payment_method_id"] == 4 and sent["p_date"] == "2025-01-15"
    assert sent["p_description"] == "Groceries"
    assert sent["p_idempotency_key"] is None and sent["p_request_hash"] is None
    assert route.calls.last.request.headers["x-gateway-session"].startswith("1:")


async def test_create_defaults_user_date_and_payment_to_the_database(client, rest):
    route = rest.post("/rpc/create_expense_response").respond(200, json=CREATED)
    await client.post("/api/expenses", headers=bearer(), json={"amount": 10, "category_id": 1})
    sent = rpc_sent(route)
    assert sent["p_user_id"] == 1
    assert sent["p_date"] is None and sent["p_payment_method_id"] is None
    assert sent["p_description"] is None and sent["p_amount"] == "10.00"


async def test_create_for_another_user_passes_user_id(client, rest):
    route = rest.post("/rpc/create_expense_response").respond(
        200, json={**CREATED, "expense": {**STORED, "user_id": 3}}
    )
    response = await client.post(
        "/api/expenses", headers=bearer(), json={"amount": 10, "category_id": 1, "user_id": 3}
    )
    assert response.status_code == 201
    assert rpc_sent(route)["p_user_id"] == 3 and rpc_sent(route)["p_actor_id"] == 1


async def test_create_with_idempotency_key_sends_key_and_request_hash(client, rest):
    route = rest.post("/rpc/create_expense_response").respond(200, json=CREATED)
    response = await client.post(
        "/api/expenses",
        json={"amount": 10, "category_id": 1},
        headers={**bearer(), "Idempotency-Key": "abc-123"},
    )
    assert response.status_code == 201
    sent = rpc_sent(route)
    assert sent["p_idempotency_key"] == "abc-123" and len(sent["p_request_hash"]) == 64


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "ключ".encode()])
async def test_create_rejects_malformed_idempotency_key(client, rest, key):
    route = rest.post("/rpc/create_expense_response")
    response = await client.post(
        "/api/expenses",
        json={"amount": 10, "category_id": 1},
        headers={**bearer(), "Idempotency-Key": key},
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]
    assert not route.called


@pytest.mark.parametrize(
    "body",
    [
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
    ],
)
async def test_create_rejects_bad_input_before_the_database(client, rest, body):
    route = rest.post("/rpc/create_expense_response")
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
    route = rest.post("/rpc/create_expense_response").respond(200, json=CREATED)
    response = await client.post(
        "/api/expenses",
        headers=bearer(),
        json={"amount": 1, "category_id": 1, "description": "x" * 500},
    )
    assert response.status_code == 201
    assert len(rpc_sent(route)["p_description"]) == 500


@pytest.mark.parametrize(
    "message",
    [
        "Invalid category_id: category does not exist",
        "Invalid payment_method_id: payment method does not exist",
        "Invalid user_id: user does not exist",
    ],
)
async def test_create_unknown_reference_is_400_naming_the_field(client, rest, message):
    rest.post("/rpc/create_expense_response").respond(
        400, json={"code": "PT400", "message": message, "details": None, "hint": None}
    )
    response = await client.post(
        "/api/expenses", headers=bearer(), json={"amount": 10, "category_id": 99}
    )
    assert response.status_code == 400
    assert response.json() == {"error": message}


async def test_create_idempotency_key_reused_with_another_body_is_409(client, rest):
    message = "Idempotency-Key was already used with a different request"
    rest.post("/rpc/create_expense_response").respond(
        409, json={"code": "PT409", "message": message, "details": None, "hint": None}
    )
    response = await client.post(
        "/api/expenses",
        json={"amount": 10, "category_id": 1},
        headers={**bearer(), "Idempotency-Key": "k"},
    )
    assert response.status_code == 409
    assert response.json() == {"error": message}
