"""Structured access logs from a real gunicorn server (the Procfile's command, 2 workers),
its stderr going to a file: one JSON line per request, from logger `ffb.access`."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import gunicorn_server, reset_database, token_for

ACCESS_FIELDS = {"method", "path", "status", "duration_ms", "request_id", "user_id"}


@pytest.fixture(scope="module")
def info_server(dsn, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    reset_database(dsn)
    log_path = tmp_path_factory.mktemp("logs") / "info.log"
    with gunicorn_server({"LOG_LEVEL": "INFO"}, log_path=log_path) as base:
        yield base, log_path


@pytest.fixture(scope="module")
def token() -> str:
    return token_for(2, "Amol")


def access_lines(log_path: Path) -> list[dict]:
    """Every ffb.access record; a line that names the logger but is not JSON fails here."""
    return [
        json.loads(line) for line in log_path.read_text().splitlines() if '"ffb.access"' in line
    ]


def wait_for_ids(log_path: Path, ids: set[str], timeout: float = 10) -> list[dict]:
    """The access lines once every request id has been logged (the line is written just
    after the response goes out)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = access_lines(log_path)
        if ids <= {line["request_id"] for line in lines} or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_every_request_is_exactly_one_json_access_line(info_server, token):
    base, log_path = info_server
    auth = {"Authorization": f"Bearer {token}"}
    calls = [
        ("GET", "/health", {}, None),
        ("GET", "/api/categories", {}, None),
        ("GET", "/api/auth/me", auth, None),
        ("GET", "/api/auth/me", {}, None),
        ("GET", "/api/dashboard/2/monthly?year=2025&month=13", auth, None),
        ("GET", "/api/nowhere", {}, None),
        ("POST", "/api/auth/login", {}, {"email": "amol@example.com", "password": "password123"}),
        ("POST", "/api/expenses", auth, {"amount": 12.5, "category_id": 1}),
    ] * 3  # both workers get some
    sent: dict[str, tuple[str, str, int]] = {}
    with httpx.Client(base_url=base, timeout=10) as client:
        for method, path, headers, body in calls:
            request_id = f"t-{uuid.uuid4().hex}"
            response = client.request(
                method, path, json=body, headers={**headers, "X-Request-ID": request_id}
            )
            sent[request_id] = (method, path.split("?")[0], response.status_code)

    lines = wait_for_ids(log_path, set(sent))
    statuses = set()
    for request_id, (method, path, status) in sent.items():
        mine = [line for line in lines if line["request_id"] == request_id]
        assert len(mine) == 1, f"{method} {path}: {len(mine)} access lines"
        [line] = mine
        assert ACCESS_FIELDS <= set(line)
        assert (line["method"], line["path"], line["status"]) == (method, path, status)
        assert line["level"] == "INFO" and line["message"] == "request"
        assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
        statuses.add(status)
    assert statuses == {200, 201, 400, 401, 404}
    assert "password123" not in log_path.read_text()


def test_authenticated_requests_log_the_user_id(info_server, token):
    base, log_path = info_server
    ids = {
        "who-anon": {},
        "who-amol": {"Authorization": f"Bearer {token}"},
        "who-cookie": {"Cookie": f"jwt={token}"},
    }
    with httpx.Client(base_url=base, timeout=10) as client:
        for request_id, headers in ids.items():
            client.get("/api/auth/me", headers={**headers, "X-Request-ID": request_id})
    by_id = {line["request_id"]: line for line in wait_for_ids(log_path, set(ids))}
    assert by_id["who-amol"]["user_id"] == 2 and by_id["who-amol"]["status"] == 200
    assert by_id["who-cookie"]["user_id"] == 2
    assert by_id["who-anon"]["user_id"] is None and by_id["who-anon"]["status"] == 401


def test_client_request_id_is_echoed_and_logged_bad_ones_replaced(info_server):
    base, log_path = info_server
    with httpx.Client(base_url=base, timeout=10) as client:
        echoed = client.get("/health", headers={"X-Request-ID": "frontend-abc.123_x"})
        forged = client.get("/health", headers={"X-Request-ID": 'x" "injected": "1'})
        blank = client.get("/health")
    assert echoed.headers["x-request-id"] == "frontend-abc.123_x"
    generated = {forged.headers["x-request-id"], blank.headers["x-request-id"]}
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in generated)
    logged = {
        line["request_id"] for line in wait_for_ids(log_path, {"frontend-abc.123_x", *generated})
    }
    assert {"frontend-abc.123_x", *generated} <= logged
    assert "injected" not in log_path.read_text()


def test_no_second_access_log_besides_ours(info_server):
    base, log_path = info_server
    with httpx.Client(base_url=base, timeout=10) as client:
        client.get("/api/categories", headers={"X-Request-ID": "only-once"})
    wait_for_ids(log_path, {"only-once"})
    text = log_path.read_text()
    assert text.count("only-once") == 1  # neither gunicorn's nor uvicorn's access log
    assert not re.search(r'"GET /api/categories HTTP/1\.1" 200', text)


def test_log_level_warning_suppresses_access_lines(tmp_path):
    log_path = tmp_path / "warning.log"
    with gunicorn_server({"LOG_LEVEL": "WARNING"}, log_path=log_path) as base:
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(5):
                assert client.get("/api/categories").status_code == 200
            assert client.get("/api/nowhere").status_code == 404
        time.sleep(0.5)  # the access line would follow each response within milliseconds
        assert access_lines(log_path) == []
    assert '"level": "INFO"' not in log_path.read_text()
