"""scripts/smoke.py against deployments that are broken in the ways it exists to catch,
faked with httpx.MockTransport (the passing case runs against the real stack in
tests/integration/test_smoke.py): a deployment that answers a logged-out token, and one
whose readiness fails closed. Each must fail with exit 1 and one line naming the check."""

from __future__ import annotations

import argparse
import json

import httpx
import pytest

from scripts import smoke

CSV = smoke.CSV_HEADER + "\r\n"


def deployment(*, enforces_logout: bool, ready: int = 200) -> httpx.MockTransport:
    """A gateway's answers to the smoke test's requests; `enforces_logout=False` is the
    failure issue 21 found: logout says 200, the token keeps working."""
    revoked: set[str] = set()

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        token = request.headers.get("authorization", "")
        if path == "/health/ready":
            checks = {"postgres": "ok", "session_revocation": "ok" if ready == 200 else "off"}
            return httpx.Response(ready, json={"status": "ready", "checks": checks})
        if path == "/api/auth/login":
            user = {"id": 1, "name": "Alok", "email": "alok@example.com"}
            return httpx.Response(200, json={"token": "t-1", "user": user})
        if token in revoked:
            return httpx.Response(401, json={"error": "Invalid or expired token"})
        if path == "/api/auth/logout":
            if enforces_logout:
                revoked.add(token)
            return httpx.Response(200, json={"message": "Logged out successfully"})
        if path == "/health/versions":
            return httpx.Response(200, json={"postgres": "17.10", "postgrest": "14.1"})
        if path in ("/api/expenses", "/api/dashboard/users"):
            return httpx.Response(200, json=[{"id": 1, "name": "Alok"}])
        if path.startswith("/api/dashboard/"):
            return httpx.Response(200, json={"total_spent": 0})
        if path == "/api/expenses/export.csv":
            return httpx.Response(200, text=CSV, headers={"content-type": "text/csv"})
        if path == "/api/auth/me":
            return httpx.Response(200, content=json.dumps({"id": 1}).encode())
        return httpx.Response(404, json={"error": "Not found"})

    return httpx.MockTransport(handle)


def run(transport: httpx.MockTransport) -> list[str]:
    args = argparse.Namespace(email="alok@example.com", password="pw")
    with httpx.Client(base_url="https://ffb.test", transport=transport) as client:
        return smoke.run(args, client)


def test_a_deployment_that_enforces_logout_passes():
    lines = run(deployment(enforces_logout=True))
    assert lines[-1] == "logout: the logged-out token is refused"
    assert "PostgreSQL 17.10, PostgREST 14.1" in lines


def test_a_deployment_that_answers_a_logged_out_token_fails():
    with pytest.raises(smoke.Failed) as failed:
        run(deployment(enforces_logout=False))
    assert str(failed.value) == (
        "logout is NOT enforced: GET /api/auth/me with the logged-out token answered "
        "HTTP 200, expected 401"
    )


def test_a_deployment_whose_readiness_fails_closed_fails_first():
    with pytest.raises(smoke.Failed) as failed:
        run(deployment(enforces_logout=True, ready=503))
    assert str(failed.value) == "GET /health/ready: HTTP 503, expected 200"
