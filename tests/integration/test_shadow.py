"""Shadow compare against a fake legacy API, through a real gunicorn server.

The fake legacy server (raw ASGI app under uvicorn in a thread, on a free port) answers
canned responses: some identical to ours (taken from the in-process `api` fixture, which has
shadow compare off), some different, one slow. Our server runs the Procfile's gunicorn with
one worker (the counts are per worker), SHADOW_CONCURRENCY=2 and SHADOW_TIMEOUT_SECONDS=1.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from deps import app_state
from shadow import ShadowMiddleware, body_diff, diff_paths
from tests.helpers import (
    app_client,
    forget_reference_data,
    free_port,
    gunicorn_server,
    reset_database,
    sql,
    stack_settings,
    token_for,
)

OPS_TOKEN = "shadow-test-operator-token"
SLOW_SECONDS = 2.0
SHADOW_TIMEOUT = 1.0
CONCURRENCY = 2


# --------------------------------------------------------------------------------------
# The fake legacy API
# --------------------------------------------------------------------------------------
class FakeLegacy:
    """Raw ASGI app: canned (status, body, delay) per "path?query"; records every request."""

    def __init__(self) -> None:
        self.canned: dict[str, tuple[int, bytes, float]] = {}
        self.seen: list[dict] = []
        self.active = 0
        self.max_active = 0

    async def __call__(self, scope, receive, send) -> None:
        assert scope["type"] == "http"
        query = scope["query_string"].decode()
        target = scope["path"] + (f"?{query}" if query else "")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append(
            {"method": scope["method"], "path": scope["path"], "query": query, "headers": headers}
        )
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            status, body, delay = self.canned.get(target, (404, b'{"error":"Not found"}', 0))
            if delay:
                await asyncio.sleep(delay)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            self.active -= 1

    def requests_to(self, path: str) -> list[dict]:
        return [r for r in self.seen if r["path"] == path]


@pytest.fixture(scope="module")
def legacy() -> Iterator[tuple[FakeLegacy, str]]:
    app = FakeLegacy()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "fake legacy server did not start"
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


# --------------------------------------------------------------------------------------
# Our server: gunicorn exactly as the Procfile runs it, shadow compare on
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(dsn) -> None:
    """The demo family plus one expense (its created_at is what the legacy will differ on)."""
    reset_database(dsn)
    with sql(dsn) as cur:
        cur.execute(
            "insert into public.expenses (user_id, category_id, payment_method_id, "
            "amount, description, date) values (1, 1, 4, 250.50, 'Groceries', "
            "'2025-01-15')"
        )


@pytest.fixture(scope="module")
def server(legacy, seeded, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    _, legacy_url = legacy
    log_path = tmp_path_factory.mktemp("shadow") / "server.log"
    env = {
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "INFO",
        "SHADOW_COMPARE": "true",
        "LEGACY_BASE_URL": legacy_url,
        "SHADOW_CONCURRENCY": str(CONCURRENCY),
        "SHADOW_TIMEOUT_SECONDS": str(SHADOW_TIMEOUT),
        "METRICS_TOKEN": OPS_TOKEN,
    }
    with gunicorn_server(env, log_path=log_path) as base:
        yield base, log_path


@pytest.fixture(scope="module")
def token() -> str:
    return token_for()


@pytest.fixture
async def ours(server, token) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server[0], timeout=10) as client:
        yield client


async def truth(api, path: str, headers: dict[str, str]) -> httpx.Response:
    """What our API answers, from the in-process app that has shadow compare off."""
    forget_reference_data(api)
    return await api.get(path, headers=headers)


async def shadow_counts(client: httpx.AsyncClient, token: str) -> dict:
    """The report, read with the operator token (a member's `token` is refused)."""
    response = await client.get("/health/shadow", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert response.status_code == 200, response.text
    return response.json()


async def wait_counts(client: httpx.AsyncClient, token: str, endpoint: str, total: int) -> dict:
    """Counts of `endpoint` once `total` of its replays have finished (or been skipped)."""
    deadline = time.monotonic() + 10
    while True:
        report = await shadow_counts(client, token)
        counts = report["endpoints"].get(endpoint, {})
        done = sum(counts.get(k, 0) for k in ("compared", "errors", "timeouts", "skipped"))
        if (done >= total and report["in_flight"] == 0) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.05)


def shadow_lines(log_path: Path) -> list[dict]:
    lines = []
    for raw in log_path.read_text().splitlines():
        if '"ffb.shadow"' in raw:
            lines.append(json.loads(raw))  # one JSON object per line, or this fails
    return lines


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------
async def test_identical_legacy_answer_counts_as_a_match(api, ours, legacy, token):
    fake, _ = legacy
    expected = await truth(api, "/api/categories", {})
    fake.canned["/api/categories"] = (200, expected.content, 0)
    response = await ours.get("/api/categories")
    assert response.status_code == 200 and response.content == expected.content
    counts = await wait_counts(ours, token, "/api/categories", 1)
    assert counts == {
        "compared": 1,
        "matches": 1,
        "differences": 0,
        "errors": 0,
        "timeouts": 0,
        "skipped": 0,
    }


async def test_not_modified_answers_are_skipped_not_replayed(ours, legacy, token):
    fake, _ = legacy
    before = (await shadow_counts(ours, token))["endpoints"]["/api/categories"]
    sent_before = len(fake.requests_to("/api/categories"))
    first = await ours.get("/api/categories")
    again = await ours.get("/api/categories", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    counts = await wait_counts(ours, token, "/api/categories", before["compared"] + 2)
    assert counts["matches"] == before["matches"] + 1
    assert counts["skipped"] == before["skipped"] + 1
    assert len(fake.requests_to("/api/categories")) == sent_before + 1


async def test_created_at_is_volatile_and_authorization_is_forwarded(api, ours, legacy, token):
    fake, _ = legacy
    auth = {"Authorization": f"Bearer {token}"}
    expected = await truth(api, "/api/expenses", auth)
    rows = expected.json()
    assert len(rows) == 1
    rows[0]["created_at"] = "2020-01-01T00:00:00.000Z"  # the legacy stored it at another time
    fake.canned["/api/expenses"] = (200, orjson.dumps(rows), 0)
    response = await ours.get("/api/expenses", headers=auth)
    assert response.content == expected.content
    counts = await wait_counts(ours, token, "/api/expenses", 1)
    assert (counts["matches"], counts["differences"]) == (1, 0)
    [sent] = fake.requests_to("/api/expenses")
    assert sent["headers"]["authorization"] == f"Bearer {token}"
    assert sent["headers"]["x-request-id"] == response.headers["x-request-id"]


async def test_cookie_and_query_reach_the_legacy_unchanged(api, ours, legacy, token):
    fake, _ = legacy
    path = "/api/dashboard/1/yearly?year=2025"
    expected = await truth(api, path, {"Authorization": f"Bearer {token}"})
    fake.canned[path] = (200, expected.content, 0)
    response = await ours.get(path, headers={"Cookie": f"jwt={token}"})
    assert response.status_code == 200 and response.content == expected.content
    counts = await wait_counts(ours, token, "/api/dashboard/{user_id}/yearly", 1)
    assert counts["matches"] == 1
    [sent] = fake.requests_to("/api/dashboard/1/yearly")
    assert sent["query"] == "year=2025"
    assert sent["headers"]["cookie"] == f"jwt={token}"
    assert "authorization" not in sent["headers"]


async def test_body_difference_is_one_json_log_line_naming_the_paths(
    api, ours, server, legacy, token
):
    fake, _ = legacy
    expected = await truth(api, "/api/payment-methods", {})
    methods = expected.json()
    methods[3]["name"] = "UPI (legacy)"
    methods.append({"id": 6, "name": "Cheque"})
    fake.canned["/api/payment-methods"] = (200, orjson.dumps(methods), 0)

    response = await ours.get("/api/payment-methods", headers={"X-Request-ID": "diff-body-1"})
    assert response.status_code == 200
    assert response.content == expected.content  # the legacy never leaks into our answer
    counts = await wait_counts(ours, token, "/api/payment-methods", 1)
    assert (counts["compared"], counts["differences"], counts["matches"]) == (1, 1, 0)

    [line] = [
        entry for entry in shadow_lines(server[1]) if entry.get("request_id") == "diff-body-1"
    ]
    assert line["level"] == "WARNING" and line["message"] == "shadow difference"
    assert line["endpoint"] == "/api/payment-methods"
    assert line["status"] == {"ours": 200, "legacy": 200}
    assert line["paths"] == ["$[3].name", "$[5]"]
    assert "UPI (legacy)" not in server[1].read_text()  # paths only, never bodies


async def test_status_difference_is_logged_with_both_statuses(api, ours, server, legacy, token):
    fake, _ = legacy
    path = "/api/dashboard/1/monthly?year=2025&month=1"
    fake.canned[path] = (500, b'{"error":"Internal server error"}', 0)
    response = await ours.get(
        path, headers={"Authorization": f"Bearer {token}", "X-Request-ID": "diff-status-1"}
    )
    assert response.status_code == 200
    assert response.json()["period"] == {"type": "monthly", "year": 2025, "month": 1}
    counts = await wait_counts(ours, token, "/api/dashboard/{user_id}/monthly", 1)
    assert counts["differences"] == 1

    [line] = [
        entry for entry in shadow_lines(server[1]) if entry.get("request_id") == "diff-status-1"
    ]
    assert line["status"] == {"ours": 200, "legacy": 500}
    assert line["endpoint"] == "/api/dashboard/{user_id}/monthly"
    assert "$.error" in line["paths"] and "$.user" in line["paths"]
    assert token not in server[1].read_text()


async def test_posts_and_health_checks_are_never_replayed(ours, legacy, token):
    fake, _ = legacy
    before = len(fake.seen)
    auth = {"Authorization": f"Bearer {token}"}
    created = await ours.post(
        "/api/expenses", headers=auth, json={"amount": 10, "category_id": 2, "date": "2025-02-01"}
    )
    assert created.status_code == 201
    assert (await ours.get("/health")).status_code == 200
    await shadow_counts(ours, token)
    await asyncio.sleep(0.3)
    assert fake.seen[before:] == []


async def test_shadow_counts_require_the_operator_token(ours, token):
    for headers in ({}, {"Authorization": f"Bearer {token}"}):  # none, a member's login token
        response = await ours.get("/health/shadow", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "Operator token required"}


async def test_slow_legacy_never_delays_us_and_excess_replays_are_skipped(api, ours, legacy, token):
    fake, _ = legacy
    auth = {"Authorization": f"Bearer {token}"}
    expected = await truth(api, "/api/dashboard/users", auth)
    fake.canned["/api/dashboard/users"] = (200, expected.content, SLOW_SECONDS)
    fake.max_active = 0

    started = time.perf_counter()
    response = await ours.get("/api/dashboard/users", headers=auth)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and response.content == expected.content
    assert elapsed < SLOW_SECONDS / 2, (
        f"our answer took {elapsed:.2f}s behind a {SLOW_SECONDS}s legacy"
    )
    # A burst while that replay still waits: one more slot, the rest are dropped.
    burst = await asyncio.gather(
        *(ours.get("/api/dashboard/users", headers=auth) for _ in range(4))
    )
    assert all(r.status_code == 200 and r.content == expected.content for r in burst)
    sent = 5

    counts = await wait_counts(ours, token, "/api/dashboard/users", sent)
    assert fake.max_active <= CONCURRENCY
    assert counts["timeouts"] + counts["skipped"] == sent
    assert counts["skipped"] >= 1 and counts["timeouts"] >= 1
    assert counts["compared"] == 0
    report = await shadow_counts(ours, token)
    assert report["enabled"] is True and report["concurrency"] == CONCURRENCY
    assert report["totals"]["timeouts"] >= counts["timeouts"]


async def test_shadow_compare_is_off_by_default(api):
    assert app_state(api.app).shadow is None
    assert not any(m.cls is ShadowMiddleware for m in api.app.user_middleware)
    async with app_client(stack_settings(metrics_token=OPS_TOKEN)) as client:
        response = await client.get(
            "/health/shadow", headers={"Authorization": f"Bearer {OPS_TOKEN}"}
        )
    assert response.status_code == 200
    assert response.json()["enabled"] is False and response.json()["endpoints"] == {}


def test_comparison_is_type_strict_like_the_contract_diff():
    assert diff_paths({"amount": 400}, {"amount": 400}) == []
    assert diff_paths({"amount": 400}, {"amount": 400.0}) == ["$.amount"]
    assert diff_paths({"amount": 120.5}, {"amount": 120.50}) == []
    assert diff_paths({"flag": True}, {"flag": 1}) == ["$.flag"]
    assert diff_paths({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}], "c": 0}) == ["$.a[1].b", "$.c"]


def test_volatile_fields_are_compared_by_presence_only():
    ours = b'{"message":"Login successful","token":"abc","user":{"id":1,"created_at":"x"}}'
    assert (
        body_diff(
            ours, b'{"message":"Login successful","token":"xyz","user":{"id":1,"created_at":"y"}}'
        )
        == []
    )
    assert body_diff(ours, b'{"message":"Login successful","user":{"id":1,"created_at":"y"}}') == [
        "$.token"
    ]
    assert body_diff(b"<html>", b"<html>") == [] and body_diff(b"{}", b"<html>") == ["$ (not JSON)"]
