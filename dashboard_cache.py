"""Dashboard (and budget) bodies cached per worker, invalidated by Postgres itself
(DASHBOARD_CACHE).

Every write that can change a dashboard, the budgets or a session - to expenses, users,
categories, budgets, sessions or revoked_tokens, from any path: this API, PostgREST, the
SQL editor, a COPY - fires a statement-level trigger that sends `NOTIFY ffb_cache`
(sql/R50_dashboards.sql, R55_budgets.sql). Each
worker LISTENs on its own direct connection from DATABASE_URL, in a thread, and empties its
cache when a notification arrives. While that connection is down (not yet up, lost,
reconnecting) nothing is served from the cache and nothing is stored in it.

A cached body is only served to a session (user id, jti) that Postgres has accepted since
the last notification, and only after Postgres accepts it once more in a check that began
after this request arrived (routers/dashboard.py, `gateway_session_check`; concurrent hits of
one session share such a check: SessionChecks): a logout on another
worker or instance reaches this cache only with its notification, milliseconds later, so
without that check a logged-out token could be answered meanwhile (issue 24, item 3).
A body fetched while a notification arrived is not stored (generation counter). Between a
write elsewhere and its notification a hit may still serve the previous dashboard: measured
in docs/architecture.md ("Several instances").

"Listening" is proven, not assumed: after LISTEN a second connection sends a notification
to a channel of the listener's own, and again every PROBE_SECONDS the listener sends one
itself; each must come back within PROBE_TIMEOUT_SECONDS on the same backend (same
pg_backend_pid). Behind a transaction-mode pooler (or any proxy that moves the session
between backends or drops notifications) the probe fails, the cache stays off and the log
says why.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import select
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from database import connect

log = logging.getLogger("ffb.dashboard_cache")

CHANNEL = "ffb_cache"
MAX_ENTRIES = 4096
RECONNECT_SECONDS = 1.0
PROBE_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 2.0


NEEDS = "LISTEN needs the session pooler (5432) or a direct connection"
MOVED = (
    "DATABASE_URL moves sessions between database backends (a transaction pooler, e.g. "
    f"Supabase's on port 6543); {NEEDS}"
)


class ListenerUnsafe(Exception):
    """Notifications cannot be relied on over this connection (the message says why)."""


class SessionChecks:
    """The cache hits' session checks, shared by the hits of one session that wait at the
    same time, never by a hit that arrived after its check started.

    A hit joins the check that has not started yet for its session, or schedules one; a
    check in flight may have read `sessions` before a logout that this hit follows, so a
    hit that arrives while one runs waits for the next. Every hit is thus answered by a
    check that began after it arrived - what one round trip per hit guaranteed - while a
    burst of hits of one session costs two round trips, not one each. A refusal (401) or
    an error reaches every hit that shared the check."""

    def __init__(self) -> None:
        self._next: dict[Any, asyncio.Future[None]] = {}
        self._driving: set[Any] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.checks = 0

    async def confirm(self, session: Any, check: Callable[[], Awaitable[Any]]) -> None:
        future = self._next.get(session)
        if future is None:
            future = self._next[session] = asyncio.get_running_loop().create_future()
            if session not in self._driving:
                self._driving.add(session)
                task = asyncio.create_task(self._drive(session, check))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        # shielded: a client that goes away does not cancel the others' check
        await asyncio.shield(future)

    async def _drive(self, session: Any, check: Callable[[], Awaitable[Any]]) -> None:
        try:
            while (future := self._next.pop(session, None)) is not None:
                self.checks += 1
                try:
                    await check()
                except asyncio.CancelledError:
                    future.cancel()
                    raise
                except Exception as exc:  # noqa: BLE001 - handed to every waiting hit
                    future.set_exception(exc)
                else:
                    future.set_result(None)
        finally:
            self._driving.discard(session)
            left = self._next.pop(session, None)  # only when cancelled: the worker stops
            if left is not None:
                left.cancel()


class DashboardCache:
    def __init__(self, dsn: str, enabled: bool):
        self.enabled = enabled
        self._dsn = dsn
        self._bodies: dict[tuple[Any, ...], bytes] = {}
        self._sessions: set[tuple[int, str]] = set()
        self.generation = 0
        self.listening = False
        self.problem = ""  # why the listener is down, as last logged ("" while it is up)
        self.hits = 0
        self.session_checks = SessionChecks()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- on the event loop ----------------------------------------------------------
    def get(self, key: tuple[Any, ...], session: tuple[int, str]) -> bytes | None:
        if not (self.enabled and self.listening) or session not in self._sessions:
            return None
        body = self._bodies.get(key)
        if body is not None:
            self.hits += 1
        return body

    def put(
        self, key: tuple[Any, ...], session: tuple[int, str], body: bytes, generation: int
    ) -> None:
        """Store what PostgREST answered, unless a notification came in meanwhile."""
        if not (self.enabled and self.listening) or generation != self.generation:
            return
        if len(self._bodies) >= MAX_ENTRIES or len(self._sessions) >= MAX_ENTRIES:
            self._bodies.clear()
            self._sessions.clear()
        self._bodies[key] = body
        self._sessions.add(session)

    def invalidate(self) -> None:
        self.generation += 1
        self._bodies.clear()
        self._sessions.clear()

    def _set_listening(self, up: bool) -> None:
        self.invalidate()
        self.listening = up

    # --- the listener thread --------------------------------------------------------
    def start(self) -> None:
        if not self.enabled:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._listen, name="ffb-cache-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.listening = False

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the worker is shutting down
            self._stop.set()

    def _listen(self) -> None:
        last_problem = ""
        while not self._stop.is_set():
            try:
                with connect(
                    self._dsn,
                    application_name="ffb-cache-listener",
                    timeout=5,
                    autocommit=True,
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                ) as conn:
                    probe = f"{CHANNEL}_probe_{secrets.token_hex(8)}"
                    with conn.cursor() as cur:
                        cur.execute(f"listen {CHANNEL}")
                        cur.execute(f"listen {probe}")
                        cur.execute("select pg_backend_pid()")
                        backend = cur.fetchone()[0]
                    self._probe(conn, probe, backend, from_elsewhere=True)
                    self._call(self._set_listening, True)
                    if last_problem:
                        log.info("dashboard cache listener up again")
                        last_problem = self.problem = ""
                    next_probe = time.monotonic() + PROBE_SECONDS
                    while not self._stop.is_set():
                        wait = min(0.5, max(0.0, next_probe - time.monotonic()))
                        if select.select([conn], [], [], wait)[0]:
                            conn.poll()  # raises when the connection was lost
                            self._drain(conn, probe)
                        if time.monotonic() >= next_probe:
                            self._probe(conn, probe, backend)
                            next_probe = time.monotonic() + PROBE_SECONDS
            except Exception as exc:  # noqa: BLE001 - logged; retried after a pause
                problem = str(exc) if isinstance(exc, ListenerUnsafe) else type(exc).__name__
                if not self._stop.is_set() and problem != last_problem:
                    log.warning("dashboard cache listener down, not caching: %s", problem)
                last_problem = self.problem = problem
            finally:
                self._call(self._set_listening, False)
            self._stop.wait(RECONNECT_SECONDS)

    def _drain(self, conn: Any, probe: str) -> bool:
        """Act on the notifications received; True when the probe's was among them."""
        channels = {notify.channel for notify in conn.notifies}
        conn.notifies.clear()
        if CHANNEL in channels:
            self._call(self.invalidate)
        return probe in channels

    def _probe(self, conn: Any, probe: str, backend: int, from_elsewhere: bool = False) -> None:
        """Prove that this connection still receives notifications, or raise.

        `from_elsewhere` (once per connection, after LISTEN): the probe is sent from a
        second connection, as the triggers' notifications are. A transaction pooler hands
        that second connection the listener's idle backend (then the pids match), or drops
        a notification that arrives while the listener holds no backend (pgbouncer: "got
        packet 'A' from server when not linked"); a probe the listener sends itself would
        come back either way."""
        with conn.cursor() as cur:
            cur.execute("select pg_backend_pid()")
            if cur.fetchone()[0] != backend:
                raise ListenerUnsafe(MOVED)
            if not from_elsewhere:
                cur.execute(f"notify {probe}")
        if from_elsewhere:
            with connect(self._dsn, application_name="ffb-cache-probe", autocommit=True) as other:
                with other.cursor() as cur:
                    cur.execute("select pg_backend_pid()")
                    if cur.fetchone()[0] == backend:
                        raise ListenerUnsafe(MOVED)
                    cur.execute(f"notify {probe}")
        deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS
        while not self._drain(conn, probe):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ListenerUnsafe(
                    f"a probe notification did not come back within {PROBE_TIMEOUT_SECONDS:g} s"
                    + (
                        f" from another connection (a transaction pooler, e.g. Supabase's on "
                        f"port 6543?); {NEEDS}"
                        if from_elsewhere
                        else ""
                    )
                )
            if select.select([conn], [], [], remaining)[0]:
                conn.poll()
