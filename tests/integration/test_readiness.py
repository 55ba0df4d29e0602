"""Issue 24, item 8: a flood of unauthenticated `GET /health/ready` no longer opens one
Postgres connection per call. Each worker computes readiness at most once per
READY_TTL_SECONDS, one computation at a time (readiness.py); here two workers answer 600
calls and Postgres counts the sessions opened meanwhile (pg_stat_database.sessions) and
the readiness connections it sees (pg_stat_activity, application_name ffb-ready)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import psycopg2
import pytest

import readiness

pytestmark = pytest.mark.slow
CALLS = 600


def sessions_opened(dsn: str) -> int:
    conn = psycopg2.connect(dsn, application_name="ffb-test-count")
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_stat_clear_snapshot()")
            cur.execute("select sessions from pg_stat_database where datname = current_database()")
            return cur.fetchone()[0]
    finally:
        conn.close()


class ReadyConnections(threading.Thread):
    """Samples pg_stat_activity for readiness connections (distinct backend pids) while the
    flood runs."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.stop = dsn, threading.Event()
        self.pids: set[int] = set()

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn, application_name="ffb-test-sampler")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute(
                        "select pid from pg_stat_activity where application_name = 'ffb-ready'"
                    )
                    self.pids.update(pid for (pid,) in cur.fetchall())
                    time.sleep(0.002)
        finally:
            conn.close()


async def test_a_ready_flood_opens_a_bounded_number_of_connections(start_server, dsn):
    base = start_server(env={"DASHBOARD_CACHE": "false"}, workers=2)
    async with httpx.AsyncClient(timeout=30) as client:
        while (await client.get(f"{base}/health/ready")).status_code != 200:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # the workers' start-up connections are done
        before = sessions_opened(dsn)
        sampler = ReadyConnections(dsn)
        sampler.start()
        started = time.monotonic()
        statuses: list[int] = []
        for _ in range(CALLS // 50):
            responses = await asyncio.gather(
                *(client.get(f"{base}/health/ready") for _ in range(50))
            )
            statuses += [r.status_code for r in responses]
        elapsed = time.monotonic() - started
        sampler.stop.set()
        sampler.join()
        await asyncio.sleep(1)  # backends report their session counts when they exit
    opened = sessions_opened(dsn) - before - 2  # minus this test's two counting connections
    # per worker: at most one readiness connection per READY_TTL_SECONDS, plus a little
    # (without the cache: one per call, 600)
    bound = 2 * (int(elapsed / readiness.READY_TTL_SECONDS) + 2) + 6
    print(
        f"\n{CALLS} /health/ready calls in {elapsed:.2f} s: {opened} Postgres sessions opened, "
        f"{len(sampler.pids)} readiness connections seen (bound {bound})"
    )
    assert statuses == [200] * CALLS
    assert opened <= bound
    assert len(sampler.pids) <= bound
