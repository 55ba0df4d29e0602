"""Readiness (GET /health/ready) and the proof that session revocation holds (issue 21).

Revocation (logout, `scripts/users.py revoke-sessions`, a deleted user) is enforced by
Postgres twice: PostgREST's pre-request hook `check_gateway_session`, and the first
statement of every function the gateway calls for a logged-in user
(`require_gateway_session`, sql/R31_auth_sessions.sql). Either can be missing in a real
deployment (the hook needs `ALTER ROLE authenticator`, which PostgreSQL 16+ may refuse; a
function can be replaced by hand), so the gateway does not assume, it proves: at start-up,
every PROBE_SECONDS in the background and on every (uncached) readiness check it calls
`gateway_session_check` with a session that must be refused (user 0, which never exists, and
a jti never issued). PostgREST must answer 401. Any 2xx means a logged-out token would be
served: the worker fails closed - `/health/ready` answers 503 naming the reason and every
authenticated route answers 503 `{"error": ...}` - until a probe is refused again.
An unreachable PostgREST proves nothing either way and keeps the last verdict (the routes
answer `Database unavailable` on their own then); before the first verdict they answer 503.

Readiness itself is cached per worker for READY_TTL_SECONDS and computed by one caller at a
time (single flight): a flood of `/health/ready` opens at most one Postgres connection per
worker per second instead of one per call (issue 24, item 8; docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import database
from database import DB_UNAVAILABLE, Database
from errors import ApiError

log = logging.getLogger("ffb.readiness")

PROBE_FUNCTION = "gateway_session_check"
PROBE_SECONDS = 5.0  # between background probes while revocation holds
PROBE_RETRY_SECONDS = 1.0  # while it does not (or was never proven)
PROBE_TIMEOUT_SECONDS = 3.0
READY_TTL_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 3.0

OK = "ok"
UNREACHABLE = "unreachable"
NOT_ENFORCED = (
    "session revocation is not enforced: PostgREST answered a session that must be refused"
)
REVOCATION_UNAVAILABLE = "Session revocation is not enforced"


def probe_headers() -> dict[str, str]:
    """A session no check may accept: user 0 (ids start at 1) and a jti never issued."""
    return {"X-Gateway-Session": f"0:{secrets.token_hex(16)}:0"}


class Revocation:
    """This worker's verdict on session revocation; `gate()` runs in every authenticated
    route (deps.current_user)."""

    def __init__(self) -> None:
        self.verdict = UNREACHABLE  # OK, UNREACHABLE (never proven yet) or a reason
        self.proven = False  # a probe was refused at least once since the last failure

    def gate(self) -> None:
        if self.proven:
            return
        if self.verdict == UNREACHABLE:
            raise ApiError(503, DB_UNAVAILABLE)
        raise ApiError(503, f"Unavailable: {self.verdict}")

    @property
    def check(self) -> str:
        """The readiness check's value: "ok", "unreachable" or the reason."""
        return OK if self.proven else self.verdict

    async def probe(self, db: Database) -> str:
        """One probe; updates the verdict and returns what this probe found."""
        try:
            await asyncio.wait_for(
                database.execute(db.service.rpc(PROBE_FUNCTION, {}), probe_headers()),
                PROBE_TIMEOUT_SECONDS,
            )
            found = NOT_ENFORCED
        except ApiError as error:
            if error.status == 401:
                found = OK
            elif error.status == 503:
                found = UNREACHABLE
            else:
                found = (
                    f"session revocation cannot be proven: its probe ({PROBE_FUNCTION}) "
                    f"was answered HTTP {error.status}"
                )
        except Exception:  # noqa: BLE001 - a timeout or transport failure proves nothing
            found = UNREACHABLE
        if found == OK:
            if not self.proven:
                log.info("session revocation proven: a refused session was refused")
            self.proven, self.verdict = True, OK
        elif found != UNREACHABLE:
            if self.proven or self.verdict != found:
                log.error("failing closed (authenticated routes answer 503): %s", found)
            self.proven, self.verdict = False, found
        return found

    async def watch(self, db: Database) -> None:
        """The background probe: every PROBE_SECONDS, every PROBE_RETRY_SECONDS while not
        proven."""
        while True:
            await asyncio.sleep(PROBE_SECONDS if self.proven else PROBE_RETRY_SECONDS)
            await self.probe(db)


NO_ADMIN = "none: run scripts/users.py set-role USER admin (docs/operations.md#first-admin)"


def check_postgres(dsn: str) -> bool:
    """Postgres answers a query over DATABASE_URL (in a thread: psycopg2 blocks). Also says
    whether any user is an admin (a deployment without one cannot use /api/admin; issue 22)."""
    with database.connect(dsn, application_name="ffb-ready", timeout=2) as conn:
        with conn.cursor() as cur:
            cur.execute("select exists (select 1 from public.users where role = 'admin')")
            row = cur.fetchone()
            return bool(row and row[0])


async def _check(coro: Any, answers: list[Any] | None = None) -> str:
    try:
        answer = await asyncio.wait_for(coro, timeout=CHECK_TIMEOUT_SECONDS)
        if answers is not None:
            answers.append(answer)
        return OK
    except Exception:  # noqa: BLE001 - any failure means not ready
        return UNREACHABLE


class Readiness:
    """GET /health/ready's answer, computed at most once per READY_TTL_SECONDS per worker;
    concurrent callers share the computation in flight."""

    def __init__(self, dsn: str, db: Database, revocation: Revocation):
        self._dsn = dsn
        self._db = db
        self._revocation = revocation
        self._answer: tuple[int, dict[str, Any]] | None = None
        self._at = 0.0
        self._running: asyncio.Future[tuple[int, dict[str, Any]]] | None = None

    async def answer(self) -> tuple[int, dict[str, Any]]:
        if self._answer is not None and time.monotonic() - self._at < READY_TTL_SECONDS:
            return self._answer
        if self._running is None:
            self._running = asyncio.ensure_future(self._compute())
        return await asyncio.shield(self._running)

    async def _compute(self) -> tuple[int, dict[str, Any]]:
        try:
            has_admin: list[bool] = []
            postgres, postgrest, _ = await asyncio.gather(
                _check(asyncio.to_thread(check_postgres, self._dsn), has_admin),
                _check(database.execute(self._db.anon.table("categories").select("id").limit(1))),
                self._revocation.probe(self._db),
            )
            revocation = self._revocation.check
            checks = {"postgres": postgres, "postgrest": postgrest, "revocation": revocation}
            if has_admin:  # details, not a condition of readiness
                checks["admin"] = OK if has_admin[0] else NO_ADMIN
            if postgres == postgrest == revocation == OK:
                answer = (200, {"status": "ready", "checks": checks})
            else:
                error = (
                    DB_UNAVAILABLE
                    if UNREACHABLE in (postgres, postgrest, revocation)
                    else REVOCATION_UNAVAILABLE
                )
                answer = (503, {"error": error, "status": "unavailable", "checks": checks})
            self._answer, self._at = answer, time.monotonic()
            return answer
        finally:
            self._running = None
