"""Unit tests: the app against a fake Supabase (respx), no network, no database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from tests.unit.helpers import REST, UNIT_ENV, unit_settings


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """Unit tests never read the developer's .env or the stack's variables."""
    monkeypatch.setenv("ENV_FILE", "")
    for key, value in UNIT_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def rest() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=REST, assert_all_called=False) as router:
        # every login writes its audit row and, on success, its session
        router.post("/rpc/record_login").respond(200, json={"ok": True, "role": "member"})
        # the revocation probe (readiness.py): a session that must be refused is refused
        router.post("/rpc/gateway_session_check").respond(
            401, json={"code": "PT401", "message": "Invalid or expired token"}
        )
        yield router


@pytest.fixture
async def client(rest) -> AsyncIterator[httpx.AsyncClient]:
    from asgi_lifespan import LifespanManager

    from main import create_app

    app = create_app(unit_settings())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c
