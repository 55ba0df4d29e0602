"""The production data path (HTTP_TRANSPORT=aiohttp, database.AiohttpSender) against a fake
PostgREST: an aiohttp server on loopback that answers canned responses and records what it
received. No Postgres, no PostgREST, no nginx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from database import AiohttpSender, Database, HttpxSender, execute
from errors import ApiError
from tests.unit.helpers import unit_settings

NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass
class Received:
    method: str
    path: str
    query_string: str  # as sent, still percent-encoded
    query: dict[str, str]
    headers: CIMultiDict[str]  # names case-insensitive, as in HTTP
    body: bytes


@dataclass
class FakePostgrest:
    """Answers every request with `status`/`body`/`content_type` after `delay` seconds."""

    status: int = 200
    body: bytes = b"[]"
    content_type: str = "application/json"
    delay: float = 0
    received: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            Received(
                request.method,
                request.path,
                request.raw_path.partition("?")[2],
                dict(request.query),
                CIMultiDict(request.headers),
                await request.read(),
            )
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(
            status=self.status,
            body=self.body or None,
            content_type=self.content_type if self.body else None,
        )

    def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.status, self.body, self.content_type = status, body, content_type


@pytest.fixture
async def postgrest() -> AsyncIterator[FakePostgrest]:
    fake = FakePostgrest()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


@pytest.fixture
async def db(postgrest) -> AsyncIterator[Database]:
    database = await Database.connect(
        unit_settings(
            supabase_url=postgrest.url, http_transport="aiohttp", http_timeout_seconds=0.5
        )
    )
    yield database
    await database.close()


async def test_the_transport_is_chosen_once_at_connect_time(db):
    assert isinstance(db.http.sender, AiohttpSender)
    other = await Database.connect(unit_settings(http_transport="httpx"))
    try:
        assert isinstance(other.http.sender, HttpxSender)
    finally:
        await other.close()


async def test_rows_come_back_parsed_from_the_rest_path(db, postgrest):
    postgrest.answer(200, b'[{"id":1,"name":"Food","amount":400.5}]')
    rows = await execute(db.anon.table("categories").select("id,name").order("id"))
    assert rows == [{"id": 1, "name": "Food", "amount": 400.5}]
    [sent] = postgrest.received
    assert (sent.method, sent.path) == ("GET", "/rest/v1/categories")
    assert sent.query == {"select": "id,name", "order": "id.asc"}


async def test_an_empty_204_is_none(db, postgrest):
    postgrest.answer(204, b"")
    assert await execute(db.service.rpc("rate_limit_clear", {"p_key": None})) is None


async def test_an_empty_200_is_none(db, postgrest):
    postgrest.answer(200, b"")
    assert await execute(db.service.table("users").delete().eq("id", 9)) is None


async def test_nginx_html_502_is_database_unavailable(db, postgrest):
    postgrest.answer(502, NGINX_502, "text/html")
    with pytest.raises(ApiError) as caught:
        await execute(db.anon.table("categories").select("id"))
    assert (caught.value.status, caught.value.message) == (503, "Database unavailable")


@pytest.mark.parametrize(
    "status, error, expected",
    [
        (
            503,
            b'{"code":"PGRST001","message":"Database client error","details":null,"hint":null}',
            (503, "Database unavailable"),
        ),
        (
            400,
            b'{"code":"PT400","message":"amount must be positive","details":null,"hint":null}',
            (400, "amount must be positive"),
        ),
        (
            404,
            b'{"code":"PT404","message":"User not found","details":null,"hint":null}',
            (404, "User not found"),
        ),
        (
            409,
            b'{"code":"23505","message":"duplicate key value","details":"Key (name)=(x)",'
            b'"hint":null}',
            (500, "Internal server error"),
        ),
        (500, b'["not", "an", "object"]', (500, "Internal server error")),
    ],
)
async def test_postgrest_json_errors_keep_their_meaning(db, postgrest, status, error, expected):
    postgrest.answer(status, error)
    with pytest.raises(ApiError) as caught:
        await execute(db.service.rpc("create_expense", {"p_amount": "1"}))
    assert (caught.value.status, caught.value.message) == expected


async def test_session_and_request_headers_are_merged(db, postgrest):
    postgrest.answer(201, b'{"id": 7}')
    query = db.service.rpc("register_user", {"p_name": "zoë", "p_email": None})
    assert query.request.headers["Accept-Profile"] == "public"
    assert await execute(query, {"X-Gateway-Session": "1:abc", "Accept-Profile": "api"}) == {
        "id": 7
    }
    [sent] = postgrest.received
    assert sent.method == "POST" and sent.path == "/rest/v1/rpc/register_user"
    assert sent.headers["User-Agent"].startswith("python-httpx/")  # the httpx client's
    assert sent.headers["apikey"] == "service-key"  # postgrest-py's
    assert sent.headers["Authorization"] == "Bearer service-key"
    assert sent.headers["X-Gateway-Session"] == "1:abc"  # this call's
    assert sent.headers["Accept-Profile"] == "api"  # overrides postgrest-py's
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == '{"p_name":"zoë","p_email":null}'.encode()


async def test_query_strings_reach_postgrest_exactly_as_postgrest_py_encodes_them(db, postgrest):
    query = (
        db.service.table("expenses")
        .select("id,users(name)")
        .eq("description", "a b&c=d,e(f)")
        .gte("date", "2025-01-01")
        .in_("category_id", [1, 2])
        .ilike("note", "%café%")
        .range(0, 9)
    )
    await execute(query)
    [sent] = postgrest.received
    assert sent.query_string == str(query.request.params)
    assert sent.query["description"] == "eq.a b&c=d,e(f)"
    assert sent.query["note"] == "ilike.%café%"
    assert sent.query["category_id"] == "in.(1,2)"
    assert sent.query["offset"] == "0" and sent.query["limit"] == "10"


async def test_a_slow_postgrest_times_out_as_database_unavailable(db, postgrest):
    postgrest.delay = 2
    started = asyncio.get_running_loop().time()
    with pytest.raises(ApiError) as caught:
        await execute(db.anon.table("categories").select("id"))
    assert caught.value.status == 503
    assert asyncio.get_running_loop().time() - started < 1.5  # HTTP_TIMEOUT_SECONDS=0.5


async def test_an_unreachable_postgrest_is_database_unavailable(postgrest):
    url = postgrest.url
    database = await Database.connect(
        unit_settings(supabase_url=url.rsplit(":", 1)[0] + ":9", http_transport="aiohttp")
    )
    try:
        with pytest.raises(ApiError) as caught:
            await execute(database.anon.table("categories").select("id"))
        assert (caught.value.status, caught.value.message) == (503, "Database unavailable")
    finally:
        await database.close()
