"""The export of 100,000 expenses streams with flat gateway memory (issue 12).

One gunicorn worker (the Procfile's server) exports 100k rows while this test samples the
worker's resident memory (/proc/<pid>/status VmRSS, every 10 ms) and its high-water mark
(VmHWM). The export must bring every row and must not grow the worker by more than a few
pages' worth. Prints the numbers (`-s` shows them):
    ./scripts/dev test tests/integration/test_export_memory.py -s
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.helpers import PROCFILE_CMD, ROOT, bearer, free_port, sql, wait_http

ROWS = 100_000
MAX_GROWTH_MB = 40  # the worker holds one 5,000-row page (~0.6 MB of CSV) at a time


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def only_child(pid: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(children) == 1:
            return int(children[0])
        time.sleep(0.1)
    raise TimeoutError("gunicorn did not start exactly one worker")


def seed(dsn: str) -> None:
    with sql(dsn) as cur:
        cur.execute(
            "insert into public.expenses (user_id, category_id, payment_method_id, amount, "
            "description, date) select 1 + i %% 4, 1 + i %% 4, 1 + i %% 5, (1 + i %% 50000) / 100.0, "
            "'Row ' || i || ', \"quoted\" and ünïcödé', date '2025-01-01' - (i %% 730) "
            "from generate_series(1, %s) as i",
            (ROWS,),
        )


def test_export_of_100k_rows_streams_with_flat_worker_memory(fresh_db):
    seed(fresh_db)
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "RATE_LIMIT_ENABLED": "false",
        "BCRYPT_ROUNDS": "4",
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        PROCFILE_CMD,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", proc=proc)
        worker = only_child(proc.pid)
        headers = bearer()
        # warm up the code path (imports, pools) on a small export first
        assert (
            httpx.get(
                f"{base}/api/expenses/export.csv",
                params={"date_from": "2024-12-31"},
                headers=headers,
                timeout=60,
            ).status_code
            == 200
        )
        baseline = memory_kb(worker, "VmRSS")
        peak, done = baseline, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, memory_kb(worker, "VmRSS"))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        lines = size = 0
        try:
            with httpx.stream(
                "GET", f"{base}/api/expenses/export.csv", headers=headers, timeout=120
            ) as response:
                assert response.status_code == 200
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")  # CRLF may straddle two chunks
        finally:
            elapsed = time.perf_counter() - started
            done.set()
            sampler.join()
        hwm = memory_kb(worker, "VmHWM")
        print(
            f"\nexport of {ROWS} rows: {elapsed:.2f} s, {size / 1e6:.1f} MB of CSV; worker RSS "
            f"baseline {baseline / 1024:.1f} MB, peak {peak / 1024:.1f} MB (+"
            f"{(peak - baseline) / 1024:.1f} MB), VmHWM {hwm / 1024:.1f} MB"
        )
        assert lines == ROWS + 1  # header + every row (descriptions hold no newline)
        assert (peak - baseline) / 1024 < MAX_GROWTH_MB
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
