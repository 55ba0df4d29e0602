"""Memory under concurrent full lists (issue 15, finding 9).

Six concurrent unfiltered `GET /api/expenses` of 100k rows (~24 MB each) once grew a worker
from 412 to 1,165 MB and kept 700 MB afterwards, while /health took up to 2 s: the gateway
held every page of every list, the shaped rows and the serialised body at once. Now the body
is built by Postgres and streamed through in 64 kB pieces with back-pressure on both sides,
so what a worker holds does not grow with the body or with the number of lists in flight.

The bound, on the Procfile's server with one worker: while N = 6 full lists are read at
once (~145 MB of bodies in flight), the worker's resident memory grows by less than
RSS_BOUND_MB (64 MB: under 3x one body, under half of the bodies in flight), every list is
complete, and /health keeps answering (each within HEALTH_WITHIN_S).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import sql

pytestmark = pytest.mark.slow

ROWS = 100_000
CONCURRENT = 6
RSS_BOUND_MB = 64
HEALTH_WITHIN_S = 1.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def worker_pids(master_pid: int) -> list[int]:
    pids: list[int] = []
    for children in Path(f"/proc/{master_pid}/task").glob("*/children"):
        pids += [int(x) for x in children.read_text().split()]
    return pids


def gunicorn_master(port: int) -> int:
    """The pid of the gunicorn master serving `port`: of the processes whose command line
    says gunicorn and whose environment names that PORT (the master, its worker, the
    worker's bcrypt processes), the one whose parent is none of them."""
    found: dict[int, int] = {}  # pid -> parent pid
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"gunicorn" in cmdline and f"PORT={port}".encode() in environ:
            found[int(proc.name)] = parent
    masters = [pid for pid, parent in found.items() if parent not in found]
    if len(masters) != 1:
        raise RuntimeError(f"expected one gunicorn master on port {port}, found {masters}")
    return masters[0]


@pytest.fixture
def hundred_thousand_expenses(fresh_db) -> str:
    with sql(fresh_db) as cur:
        cur.execute(
            """
            insert into public.expenses (user_id, category_id, payment_method_id, amount,
                                         description, date)
            select 1 + g %% 4, 1 + g %% 4, nullif(g %% 6, 0), (g %% 9000) / 7.0 + 1,
                   'expense number ' || g, date '2024-01-01' + (g %% 700)
            from generate_series(1, %s) g""",
            (ROWS,),
        )
    return fresh_db


async def test_concurrent_full_lists_keep_a_worker_small_and_health_answering(
    start_server, hundred_thousand_expenses, auth_headers
):
    # Postgres needs a few seconds per 100k-row list when six run at once on a busy machine
    base = start_server(workers=1, env={"HTTP_TIMEOUT_SECONDS": "60"})
    workers = worker_pids(gunicorn_master(int(base.rsplit(":", 1)[1])))
    assert len(workers) == 1
    worker = workers[0]
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        warm = await client.get("/api/expenses", params={"limit": 5}, headers=auth_headers)
        assert warm.status_code == 200
        baseline = rss_bytes(worker)
        assert baseline > 40 * 2**20  # the app's worker (FastAPI, aiohttp...), not a helper
        peak = baseline
        done = asyncio.Event()
        health_times: list[float] = []

        async def sample_rss() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_bytes(worker))
                await asyncio.sleep(0.02)

        async def poll_health() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as other:
                while not done.is_set():
                    started = time.perf_counter()
                    response = await other.get("/health")
                    assert response.status_code == 200
                    health_times.append(time.perf_counter() - started)
                    await asyncio.sleep(0.1)

        async def full_list() -> tuple[int, int, bytes, bytes]:
            size, first, last = 0, b"", b""
            async with client.stream("GET", "/api/expenses", headers=auth_headers) as response:
                async for chunk in response.aiter_bytes():
                    first = first or chunk[:64]
                    last = (last + chunk)[-64:]
                    size += len(chunk)
            return response.status_code, size, first, last

        watchers = [asyncio.create_task(sample_rss()), asyncio.create_task(poll_health())]
        try:
            lists = await asyncio.gather(*(full_list() for _ in range(CONCURRENT)))
        finally:
            done.set()
            await asyncio.gather(*watchers)
        after = rss_bytes(worker)

    statuses = {status for status, *_ in lists}
    sizes = {size for _, size, *_ in lists}
    assert statuses == {200}
    assert len(sizes) == 1 and sizes.pop() > 20 * 2**20  # six complete, identical bodies
    assert all(first.startswith(b'[{"id":') and last.endswith(b'"}]') for *_, first, last in lists)
    growth_mb = (peak - baseline) / 2**20
    print(
        f"\n[memory] {CONCURRENT} concurrent full lists of {ROWS:,} rows "
        f"({lists[0][1] / 2**20:.1f} MB each): worker RSS {baseline / 2**20:.0f} MB -> peak "
        f"{peak / 2**20:.0f} MB (+{growth_mb:.1f} MB), after {after / 2**20:.0f} MB; "
        f"/health {len(health_times)} answers, slowest {max(health_times):.3f}s"
    )
    assert growth_mb < RSS_BOUND_MB
    assert (after - baseline) / 2**20 < RSS_BOUND_MB
    assert len(health_times) >= 3 and max(health_times) < HEALTH_WITHIN_S
