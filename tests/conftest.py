"""Fixtures shared by every suite (the helpers they use, and tests import, are in
tests/helpers.py).

Unit tests (tests/unit) build the app against a fake Supabase URL and fake it with respx.
Integration and contract tests run against the real stack that `./scripts/dev test` brings
up (its environment: SUPABASE_URL, keys, DATABASE_URL, JWT_SECRET, DEV_SCRIPT, ...).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.helpers import Dsn, app_client, bearer, gunicorn_server, reset_database, stack_settings


# --------------------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dsn() -> str:
    return Dsn(os.environ["DATABASE_URL"])


@pytest.fixture
def fresh_db(dsn) -> str:
    """An empty database with reference data and the four demo users."""
    reset_database(dsn)
    return dsn


# --------------------------------------------------------------------------------------
# The app, in process (real stack) — httpx over ASGI
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """One app for the session, against the real stack."""
    async with app_client(stack_settings()) as client:
        yield client


@pytest.fixture(autouse=True)
def _api_starts_without_cookies(request):
    """The `jwt` cookie of a login in one test must not authenticate the next one."""
    if "api" in request.fixturenames:
        request.getfixturevalue("api").cookies.clear()


# --------------------------------------------------------------------------------------
# Tokens and headers
# --------------------------------------------------------------------------------------
@pytest.fixture
def auth_headers() -> dict[str, str]:
    return bearer()


# --------------------------------------------------------------------------------------
# Real servers in subprocesses (gunicorn/uvicorn), for multi-worker and browser tests
# --------------------------------------------------------------------------------------
@pytest.fixture
def start_server() -> Iterator[Callable[..., str]]:
    """start_server(cmd=None, env=None, workers=2, log_path=None) -> base URL; every server
    started is stopped at teardown."""
    with ExitStack() as servers:

        def start(
            cmd: list[str] | None = None,
            env: dict[str, str] | None = None,
            workers: int = 2,
            log_path: Path | None = None,
        ) -> str:
            return servers.enter_context(gunicorn_server(env, workers, log_path, cmd))

        yield start
