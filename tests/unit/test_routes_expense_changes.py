"""GET/PUT/DELETE /api/expenses/{id}, the CSV export and the login audit call, against a
faked PostgREST (issue 12)."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest

from auth import create_token
from errors import ApiError
from routers.expenses import CSV_HEADER, EXPORT_PAGE_ROWS, if_match_tags
from tests.unit.helpers import unit_settings

ALOK = {"id": 1, "name": "Alok", "email": "alok@example.com"}
EXPENSE = {
    "id": 7,
    "user_id": 1,
    "user_name": "Alok",
    "amount": 12.5,
    "category_id": 1,
    "category": "Food",
    "payment_method_id": None,
    "payment_method": None,
    "description": "x",
    "date": "2025-01-15",
    "created_at": "2025-01-15T10:00:00+00:00",
}
ETAG = "0123456789abcdef0123456789abcdef"


def bearer() -> dict[str, str]:
    token, _ = create_token(unit_settings(), ALOK)
    return {"Authorization": f"Bearer {token}"}


def sent(route) -> dict:
    return json.loads(route.calls.last.request.content)


# --------------------------------------------------------------------------------------
# If-Match
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, tags",
    [
        (None, None),
        ("*", None),
        (" * ", None),
        ('"abc"', ["abc"]),
        ('"a", "b"', ["a", "b"]),
        ("abc", ["abc"]),
        ('W/"abc"', ['W/"abc"']),
    ],
)
def test_if_match_becomes_the_tags_compared_strongly(value, tags):
    assert if_match_tags(value) == tags


@pytest.mark.parametrize("value", ["", " , ", ",".join(['"x"'] * 33)])
def test_if_match_without_tags_or_with_too_many_is_400(value):
    with pytest.raises(ApiError) as error:
        if_match_tags(value)
    assert error.value.status == 400


# --------------------------------------------------------------------------------------
# GET / PUT / DELETE
# --------------------------------------------------------------------------------------
async def test_get_sends_the_session_and_returns_the_etag(client, rest):
    route = rest.post("/rpc/get_expense").respond(200, json={"expense": EXPENSE, "etag": ETAG})
    response = await client.get("/api/expenses/7", headers=bearer())
    assert response.status_code == 200
    assert response.json() == EXPENSE
    assert response.headers["etag"] == f'"{ETAG}"'
    assert sent(route) == {"p_id": 7}
    assert route.calls.last.request.headers["x-gateway-session"].startswith("1:")


@pytest.mark.parametrize(
    "code, status, message",
    [
        ("PT404", 404, "Expense not found"),
        ("PT403", 403, "You can only change your own expenses"),
        ("PT412", 412, "Expense was changed by someone else"),
    ],
)
async def test_put_passes_postgres_refusals_on(client, rest, code, status, message):
    rest.post("/rpc/update_expense").respond(
        int(code[2:]), json={"code": code, "message": message, "details": None, "hint": None}
    )
    response = await client.put("/api/expenses/7", json={"amount": 1}, headers=bearer())
    assert response.status_code == status
    assert response.json() == {"error": message}


async def test_put_sends_only_the_fields_given_with_if_match_and_audit_context(client, rest):
    route = rest.post("/rpc/update_expense").respond(200, json={"expense": EXPENSE, "etag": ETAG})
    response = await client.put(
        "/api/expenses/7",
        json={"amount": 12.5, "description": None, "id": 99},
        headers={**bearer(), "If-Match": '"old"', "X-Request-ID": "r-1"},
    )
    assert response.status_code == 200
    assert response.json() == {"message": "Expense updated successfully", "expense": EXPENSE}
    assert response.headers["etag"] == f'"{ETAG}"'
    assert sent(route) == {
        "p_id": 7,
        "p_changes": {"amount": "12.50", "description": None},
        "p_if_match": ["old"],
    }
    headers = route.calls.last.request.headers
    assert headers["x-request-id"] == "r-1"
    assert headers["x-client-address"] == "127.0.0.1"


@pytest.mark.parametrize("content", [b"", b"{}", b"null", b'{"created_by": 3}'])
async def test_put_without_a_field_is_400_before_the_database(client, rest, content):
    route = rest.post("/rpc/update_expense").respond(200, json={})
    response = await client.put(
        "/api/expenses/7", content=content, headers={**bearer(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("Nothing to update")
    assert not route.called


async def test_delete_answers_the_legacy_style_message(client, rest):
    route = rest.post("/rpc/delete_expense").respond(200, json={"id": 7})
    response = await client.delete("/api/expenses/7", headers=bearer())
    assert response.status_code == 200
    assert response.json() == {"message": "Expense deleted successfully", "id": 7}
    assert sent(route) == {"p_id": 7, "p_if_match": None}


@pytest.mark.parametrize(
    "path", ["/api/expenses/0", "/api/expenses/abc", "/api/expenses/9007199254740992"]
)
async def test_bad_ids_are_400_before_the_database(client, rest, path):
    route = rest.post("/rpc/delete_expense").respond(200, json={"id": 7})
    response = await client.delete(path, headers=bearer())
    assert response.status_code == 400
    assert not route.called


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------
def export_pages(total: int):
    """A stand-in for export_expenses_csv: `total` rows in pages, keyed on the last id."""

    def answer(request: httpx.Request) -> httpx.Response:
        args = json.loads(request.content)
        start = args["p_after_id"] or total + 1
        ids = list(range(start - 1, max(start - 1 - args["p_limit"], 0), -1))
        text = "".join(
            f"{i},2025-01-01,Alok,Food,,1,row {i},2025-01-01T00:00:00+00:00\r\n" for i in ids
        )
        return httpx.Response(
            200,
            json={
                "csv": text,
                "rows": len(ids),
                "last_date": "2025-01-01" if ids else None,
                "last_id": ids[-1] if ids else None,
            },
        )

    return answer


async def test_export_streams_every_page_after_the_header(client, rest):
    total = EXPORT_PAGE_ROWS * 2 + 3
    route = rest.post("/rpc/export_expenses_csv").mock(side_effect=export_pages(total))
    response = await client.get("/api/expenses/export.csv", params={"user_id": 1}, headers=bearer())
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="expenses_user-1.csv"'
    assert response.text.startswith(CSV_HEADER.decode())
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert [int(r[0]) for r in rows[1:]] == list(range(total, 0, -1))
    assert route.call_count == 3
    assert sent(route)["p_user_id"] == 1


async def test_export_error_before_the_first_row_is_a_json_error(client, rest):
    rest.post("/rpc/export_expenses_csv").mock(side_effect=httpx.ConnectError("refused"))
    response = await client.get("/api/expenses/export.csv", headers=bearer())
    assert response.status_code == 503
    assert response.json() == {"error": "Database unavailable"}


async def test_export_rejects_date_from_after_date_to_like_the_list(client, rest):
    response = await client.get(
        "/api/expenses/export.csv",
        headers=bearer(),
        params={"date_from": "2025-02-01", "date_to": "2025-01-01"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "date_from must not be after date_to"}


# --------------------------------------------------------------------------------------
# Login audit
# --------------------------------------------------------------------------------------
async def test_failed_login_records_its_audit_row_without_an_actor(client, rest):
    rest.post("/rpc/find_login_user").respond(200, json=[])
    route = rest.post("/rpc/record_login").respond(200, json={"ok": False})
    response = await client.post(
        "/api/auth/login", json={"email": "x@example.com", "password": "secret-pw"}
    )
    assert response.status_code == 401
    assert {k: sent(route)[k] for k in ("p_user_id", "p_success", "p_totp_step")} == {
        "p_user_id": None,
        "p_success": False,
        "p_totp_step": None,
    }
    assert b"secret-pw" not in route.calls.last.request.content


# --------------------------------------------------------------------------------------
# OpenAPI
# --------------------------------------------------------------------------------------
async def test_openapi_documents_the_new_endpoints_with_examples_and_errors(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    one = paths["/api/expenses/{expense_id}"]
    assert set(one) == {"get", "put", "delete"}
    for method, statuses in (
        ("put", {"403", "404", "412"}),
        ("delete", {"403", "404", "412"}),
        ("get", {"404"}),
    ):
        responses = one[method]["responses"]
        assert {"200", "400", "401"} | statuses <= set(responses)
        for status in statuses:
            examples = responses[status]["content"]["application/json"]["examples"]
            assert {e["value"]["error"] for e in examples.values()} <= {
                "You can only change your own expenses",
                "Viewers can read but not change anything",
                "Expense not found",
                "Expense was changed by someone else",
            }
    assert "ETag" in one["put"]["responses"]["200"]["headers"]
    assert any(p["name"] == "if-match" for p in one["put"]["parameters"])
    export = paths["/api/expenses/export.csv"]["get"]
    csv_example = export["responses"]["200"]["content"]["text/csv"]["example"]
    assert csv_example.startswith(CSV_HEADER.decode())
    assert {p["name"] for p in export["parameters"]} == {
        "user_id",
        "category_id",
        "date_from",
        "date_to",
        "q",
        "min_amount",
        "max_amount",
        "payment_method_id",
    }
