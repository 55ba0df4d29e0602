"""PostgREST 12.2-16 (issue 21, item 6) against the fake PostgREST of test_aiohttp_sender.py:
the request headers PostgREST's JSON media type handler and schema selection depend on, and
one retry on a serialization failure or deadlock (16.0 no longer retries them itself)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from database import Database, execute, rpc_passthrough
from errors import ApiError
from tests.unit.helpers import unit_settings
from tests.unit.test_aiohttp_sender import FakePostgrest

SERIALIZATION_FAILURE = (
    b'{"code":"40001","message":"could not serialize access due to concurrent update",'
    b'"details":null,"hint":null}'
)
DEADLOCK = b'{"code":"40P01","message":"deadlock detected","details":null,"hint":null}'
UNIQUE = b'{"code":"23505","message":"duplicate key","details":null,"hint":null}'


class Scripted(FakePostgrest):
    """Answers from a script, one answer per request, the last one repeated."""

    script: list[tuple[int, bytes]]

    async def handle(self, request: web.Request) -> web.Response:
        if len(self.script) > 1:
            self.status, self.body = self.script.pop(0)
        else:
            self.status, self.body = self.script[0]
        return await super().handle(request)


@pytest.fixture
async def postgrest() -> AsyncIterator[Scripted]:
    fake = Scripted()
    fake.script = [(200, b"[]")]
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


@pytest.fixture(params=["aiohttp", "httpx"])
async def db(request, postgrest) -> AsyncIterator[Database]:
    database = await Database.connect(
        unit_settings(
            supabase_url=postgrest.url, http_transport=request.param, http_timeout_seconds=2
        )
    )
    yield database
    await database.close()


# --------------------------------------------------------------------------------------
# The headers every PostgREST request carries
# --------------------------------------------------------------------------------------
async def test_the_passthrough_asks_for_the_json_media_type_of_schema_public(db, postgrest):
    postgrest.script = [(200, b"[]")]
    response = await rpc_passthrough(db, "list_expenses", {"p_limit": 1}, {"X-Test": "1"})
    assert response.body == b"[]"
    [sent] = postgrest.received
    assert (sent.method, sent.path) == ("POST", "/rest/v1/rpc/list_expenses")
    # PostgREST picks the "application/json" media type handler (migration 0005) only for
    # this Accept and without a `select=`: no query string at all.
    assert sent.headers["Accept"] == "application/json"
    assert sent.query_string == "" and "select" not in sent.query
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Content-Profile"] == "public"  # not "first of db-schemas"
    assert sent.headers["X-Test"] == "1"


async def test_reads_name_the_schema_with_accept_profile(db, postgrest):
    await execute(db.anon.table("categories").select("id").limit(1))
    [sent] = postgrest.received
    assert sent.method == "GET"
    assert sent.headers["Accept-Profile"] == "public"


async def test_rpc_posts_name_the_schema_with_content_profile(db, postgrest):
    postgrest.script = [(200, b"null")]
    await execute(db.service.rpc("auth_me", {}), {"X-Gateway-Session": "1:" + "a" * 32 + ":1"})
    [sent] = postgrest.received
    assert sent.method == "POST"
    assert sent.headers["Content-Profile"] == "public"
    assert "select" not in sent.query


# --------------------------------------------------------------------------------------
# One retry on 40001 / 40P01
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("failure", [SERIALIZATION_FAILURE, DEADLOCK])
async def test_execute_retries_once_after_a_rolled_back_transaction(db, postgrest, failure):
    postgrest.script = [(500, failure), (200, b'{"ok":true}')]
    assert await execute(db.service.rpc("rate_limit_incr", {})) == {"ok": True}
    assert len(postgrest.received) == 2
    assert postgrest.received[0].body == postgrest.received[1].body


async def test_execute_answers_the_error_when_the_retry_fails_too(db, postgrest):
    postgrest.script = [(500, DEADLOCK)]
    with pytest.raises(ApiError) as caught:
        await execute(db.service.rpc("rate_limit_incr", {}))
    assert (caught.value.status, caught.value.message) == (500, "Internal server error")
    assert len(postgrest.received) == 2  # one retry, not more


async def test_execute_does_not_retry_other_errors(db, postgrest):
    postgrest.script = [(409, UNIQUE)]
    with pytest.raises(ApiError):
        await execute(db.service.rpc("register_user", {}))
    assert len(postgrest.received) == 1


@pytest.mark.parametrize("failure", [SERIALIZATION_FAILURE, DEADLOCK])
async def test_the_passthrough_retries_once_after_a_rolled_back_transaction(
    db,
    postgrest,
    failure,
):
    postgrest.script = [(500, failure), (201, b'{"id":5}')]
    response = await rpc_passthrough(db, "create_expense_response", {"p_amount": "1"})
    assert response.body == b'{"id":5}'
    assert len(postgrest.received) == 2


async def test_the_passthrough_answers_the_error_when_the_retry_fails_too(db, postgrest):
    postgrest.script = [(500, SERIALIZATION_FAILURE)]
    with pytest.raises(ApiError) as caught:
        await rpc_passthrough(db, "create_expense_response", {"p_amount": "1"})
    assert caught.value.status == 500
    assert len(postgrest.received) == 2


async def test_the_passthrough_does_not_retry_other_errors(db, postgrest):
    postgrest.script = [(409, UNIQUE)]
    with pytest.raises(ApiError):
        await rpc_passthrough(db, "create_expense_response", {"p_amount": "1"})
    assert len(postgrest.received) == 1
