#!/usr/bin/env python3
"""Benchmark: the gateway against direct PostgREST, in one run, as ratios.

    scripts/bench.py              full run (10 s per case, 16 connections): ~5 minutes
    scripts/bench.py --quick      smoke run (2 s per case, small data set): ~40 seconds

What it does, in order:
  1. uses the running stack (settings from the environment or .env, like the app), or
     starts it with `scripts/dev start` when PostgREST does not answer;
  2. tops the expenses table up to 100k rows (scripts/seed_demo.py; only the difference);
  3. starts the API the way production runs it - the Procfile's gunicorn with uvicorn
     workers (gunicorn.conf.py, WEB_CONCURRENCY workers) - on a free loopback port;
  4. measures every case for the same duration at the same concurrency:
       (a) GET /api/categories          vs PostgREST /rest/v1/categories (anon key)
       (b) GET /api/expenses, one user and date window, at ~30-100 rows and at ~1,000
                                        vs the same PostgREST table query with its
                                           embedding (service key)
       (c) monthly and yearly dashboards of the busiest user
                                        vs the same RPC called straight on PostgREST
       (d) GET /api/categories alone    vs during a login storm (16 clients logging in
                                           continuously with the demo credentials)
       (e) GET /api/expenses unfiltered (every row; 100k in the full run), one at a time
                                        vs the same function (list_expenses) on PostgREST
                                           and vs the old way: 1,000-row pages of the table
                                           query shaped in Python; peak RSS growth of the
                                           API worker that served it
       (f) 1,000 simulated users (open loop: each keeps one keep-alive connection and sends
           a random request of the mix after an exponential think time) at ~400 req/s:
           p50/p95/p99 and errors; then higher rates until p95 crosses 200 ms (the knee)
     HTTP cases (a)-(d) use wrk (installed with apt-get when missing); the login storm,
     (e) and (f) are asyncio/aiohttp clients in this process;
     then the planning cases of scripts/bench_planning.py (issue 23, issue 25):
       (g) GET /api/budgets            vs the budget_status RPC straight on PostgREST
       (h) POST /api/expenses/import of 100k rows   vs a plain COPY of the same rows
       (i) materialize_recurring() of 10,000 due occurrences, timed
       (j) POST /api/auth/refresh, each client rotating its own refresh token
  5. prints one table with every figure, the ratios and the targets, and writes the raw
     results to .bench/bench-<time>.json and .bench/latest.json (git-ignored).

Exit status: 0 when the run completed (with --check: and every target held), 1 with a
one-line reason otherwise. The API's own log goes to .bench/api-<time>.log.
--quick deletes the expenses it added when it is done, so a smoke run leaves the
database as it found it; (h) and (i) delete what they add in every run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
# Run inside the project's virtualenv (created by scripts/dev) whatever python started us.
if (
    VENV_PY.exists()
    and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve()
    and not os.environ.get("BENCH_NO_REEXEC")
):
    os.execv(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]])

import argparse
import asyncio
import datetime as dt
import json
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx

from database import connect
from scripts import bench_planning

PROG = "bench"
OUT_DIR = ROOT / ".bench"
DEMO_LOGIN = {"email": "alok@example.com", "password": "password123"}
# The storm's clients are spread over the four demo accounts: the login limit is per client
# address and account and reserves an attempt while the password is checked, so one
# account logging in 16 times at once from one address would be (rightly) refused.
STORM_ACCOUNTS = ["alok@example.com", "amol@example.com", "atul@example.com", "rashmi@example.com"]
BUSIEST_USER = "Alok"
EXPENSE_SELECT = (
    "id,user_id,amount,category_id,payment_method_id,description,date,created_at,"
    "users(name),categories(name),payment_methods(name)"
)
EXPENSE_ROWS_WANTED = (30, 100)  # (b): a window with this many rows
MONTH_ROWS_MAX = 1000  # (b): the larger window, at most PostgREST's max-rows
LEGACY_PAGE = 1000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc/<pid>/stat counts CPU time in these
FLOOR_APP = "scripts.bench_floor:app"  # the bare-ASGI floor, served like the gateway
F_MIX = ("categories", "expenses", "monthly", "yearly", "me")

# Targets of the issue: (case, metric) -> threshold, checked by --check and shown in the table.
TARGETS = {
    "a": "gateway >= 100% of direct",
    "b": "gateway >= 125% of the direct table query at ~64 rows and >= 110% at ~1,000 rows; "
    "gateway CPU/request <= 1.5x the bare-ASGI floor's at ~64 rows",
    "c": "gateway >= 85% of the RPC called directly, uncached and cached; p95 < 25 ms",
    "d": "storm keeps >= 50% req/s, p95 < 200 ms, no failures",
    "e": "gateway <= 1.3x the function on PostgREST, worker RSS growth < 2x the body",
    "f": "at ~400 req/s p95 < 50 ms and 0 errors; p95 = 200 ms knee >= 2,000 req/s",
}


class BenchError(Exception):
    """A failure explained in one line."""


def say(message: str) -> None:
    print(f"{PROG}: {message}", flush=True)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
@dataclass
class Result:
    """One load run: what was hit, how, and what came back."""

    name: str
    tool: str  # "wrk" or "asyncio"
    url: str
    connections: int
    duration_s: float
    requests: int = 0
    failures: int = 0  # non-2xx/3xx answers, socket errors, timeouts
    failure_detail: dict = field(default_factory=dict)
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    extra: dict = field(default_factory=dict)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def from_latencies(result: Result, latencies_s: list[float], elapsed: float) -> Result:
    values = sorted(x * 1000 for x in latencies_s)
    result.requests = len(values) + result.failures
    result.duration_s = round(elapsed, 3)
    result.rps = round(len(values) / elapsed, 1) if elapsed else 0.0
    result.p50_ms, result.p95_ms, result.p99_ms = (
        round(percentile(values, p), 2) for p in (50, 95, 99)
    )
    result.mean_ms = round(statistics.fmean(values), 2) if values else 0.0
    result.max_ms = round(values[-1], 2) if values else 0.0
    return result


# --------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------
WRK_LUA = r"""
-- Prints the summary as one JSON line (latencies in microseconds).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p95":%d,"p99":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99)))
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    say("wrk is missing: installing it with apt-get")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        proc = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BenchError(
                f"`{' '.join(cmd)}` failed ({tail[0]}); install wrk "
                "(`sudo apt-get install -y wrk`) and run again"
            )
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get installed wrk but it is not on PATH")
    return found


class Wrk:
    def __init__(self, binary: str, connections: int, threads: int, lua: Path):
        self.binary, self.connections, self.threads, self.lua = binary, connections, threads, lua

    def command(self, url: str, seconds: float, headers: dict[str, str]) -> list[str]:
        cmd = [
            self.binary,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(self.lua),
        ]
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        return cmd + [url]

    async def run(
        self, name: str, url: str, seconds: float, headers: dict[str, str], warmup: float = 0
    ) -> Result:
        if warmup:
            await self._exec(url, warmup, headers)
        data = await self._exec(url, seconds, headers)
        errors = data["errors"]
        lat = data["latency_us"]
        elapsed = data["duration_us"] / 1e6
        failures = sum(errors.values())
        ok = data["requests"] - errors["status"]
        return Result(
            name=name,
            tool="wrk",
            url=url,
            connections=self.connections,
            duration_s=round(elapsed, 3),
            requests=data["requests"],
            failures=failures,
            failure_detail={k: v for k, v in errors.items() if v},
            rps=round(ok / elapsed, 1) if elapsed else 0.0,
            p50_ms=lat["p50"] / 1000,
            p95_ms=lat["p95"] / 1000,
            p99_ms=lat["p99"] / 1000,
            mean_ms=round(lat["mean"] / 1000, 3),
            max_ms=lat["max"] / 1000,
            extra={"bytes": data["bytes"]},
        )

    async def _exec(self, url: str, seconds: float, headers: dict[str, str]) -> dict:
        proc = await asyncio.create_subprocess_exec(
            *self.command(url, seconds, headers),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        for line in text.splitlines():
            if line.startswith("BENCH_JSON "):
                return json.loads(line.removeprefix("BENCH_JSON "))
        raise BenchError(f"wrk printed no summary for {url}: {text.strip()[-300:]}")


# --------------------------------------------------------------------------------------
# asyncio load loops: the login storm, the unfiltered list (e), the open loop (f)
# --------------------------------------------------------------------------------------
async def closed_loop(
    name: str,
    url: str,
    concurrency: int,
    seconds: float,
    one_call,
    stop: asyncio.Event | None = None,
) -> Result:
    """`concurrency` clients, each calling `one_call(session, client_index)` back to back
    until the time is up (or `stop` is set). one_call returns True on success."""
    latencies: list[float] = []
    failures: defaultdict[str, int] = defaultdict(int)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def client(index: int) -> None:
            while time.perf_counter() < deadline and not (stop and stop.is_set()):
                t0 = time.perf_counter()
                try:
                    ok = await one_call(session, index)
                except TimeoutError:
                    failures["timeout"] += 1
                    continue
                except aiohttp.ClientError as exc:
                    failures[type(exc).__name__] += 1
                    continue
                if ok is True:
                    latencies.append(time.perf_counter() - t0)
                else:
                    failures[str(ok)] += 1

        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    result = Result(
        name=name,
        tool="asyncio",
        url=url,
        connections=concurrency,
        duration_s=seconds,
        failures=sum(failures.values()),
        failure_detail=dict(failures),
    )
    return from_latencies(result, latencies, elapsed)


def old_paging_list(rest: str, service_key: str):
    """(e) the old gateway path: the table query with its embedding in 1,000-row pages with
    growing offsets, every row shaped in Python, then serialised (what routers/expenses.py
    did before list_expenses)."""
    import orjson

    headers = {"apikey": service_key, "Authorization": f"Bearer {service_key}"}
    base = f"{rest}/expenses?select={EXPENSE_SELECT}&order=date.desc,id.desc"

    def number(value):
        value = float(value)
        return int(value) if value.is_integer() else value

    async def call(session: aiohttp.ClientSession) -> int:
        rows: list[dict] = []
        while True:
            async with session.get(
                f"{base}&limit={LEGACY_PAGE}&offset={len(rows)}", headers=headers
            ) as response:
                if response.status != 200:
                    raise BenchError(f"the paging path got HTTP {response.status}")
                batch = orjson.loads(await response.read())
            rows.extend(batch)
            if len(batch) < LEGACY_PAGE:
                break
        body = orjson.dumps(
            [
                {
                    "id": r["id"],
                    "user_id": r["user_id"],
                    "user_name": r["users"]["name"],
                    "amount": number(r["amount"]),
                    "category_id": r["category_id"],
                    "category": r["categories"]["name"],
                    "payment_method_id": r["payment_method_id"],
                    "payment_method": (r["payment_methods"] or {}).get("name"),
                    "description": r["description"],
                    "date": r["date"],
                    "created_at": r["created_at"],
                }
                for r in rows
            ]
        )
        return len(body)

    return call


class RssSampler:
    """Peak resident memory of the API's workers while something runs (Linux /proc)."""

    def __init__(self, master_pid: int, interval: float = 0.01):
        self.master_pid, self.interval = master_pid, interval
        self.baseline: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self._task: asyncio.Task | None = None

    def workers(self) -> list[int]:
        pids = []
        for task in Path(f"/proc/{self.master_pid}/task").glob("*/children"):
            pids += [int(x) for x in task.read_text().split()]
        return pids

    @staticmethod
    def rss(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    async def __aenter__(self) -> RssSampler:
        self.baseline = {pid: self.rss(pid) for pid in self.workers()}
        self.peak = dict(self.baseline)

        async def sample() -> None:
            while True:
                for pid in self.baseline:
                    self.peak[pid] = max(self.peak[pid], self.rss(pid))
                await asyncio.sleep(self.interval)

        self._task = asyncio.create_task(sample())
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()
        for pid in self.baseline:
            self.peak[pid] = max(self.peak[pid], self.rss(pid))

    def growth(self) -> tuple[int, int, int]:
        """(largest growth of one worker, its baseline, its peak) in bytes."""
        if not self.baseline:
            return 0, 0, 0
        pid = max(self.baseline, key=lambda p: self.peak[p] - self.baseline[p])
        return self.peak[pid] - self.baseline[pid], self.baseline[pid], self.peak[pid]


async def timed_calls(name: str, url: str, repeat: int, one_call) -> Result:
    """`one_call(session)` `repeat` times in a row (one connection); returns the bytes."""
    latencies, size = [], 0
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        for _ in range(repeat):
            t0 = time.perf_counter()
            size = await one_call(session)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    result = from_latencies(
        Result(name=name, tool="asyncio", url=url, connections=1, duration_s=0), latencies, elapsed
    )
    result.extra["bytes"] = size
    return result


def fetch_bytes(url: str, headers: dict[str, str], method: str = "GET", body: bytes | None = None):
    async def call(session: aiohttp.ClientSession) -> int:
        async with session.request(method, url, headers=headers, data=body) as response:
            if response.status != 200:
                raise BenchError(f"{url} answered HTTP {response.status}")
            size = 0
            async for chunk in response.content.iter_chunked(1 << 16):
                size += len(chunk)
            return size

    return call


async def open_loop(
    name: str,
    urls: dict[str, str],
    headers: dict[str, str],
    users: int,
    rate: float,
    seconds: float,
) -> Result:
    """`users` clients, each on its own keep-alive connection, sending a random request of
    the mix after an exponentially distributed think time whose mean makes the offered
    load `rate` req/s in total (the think time does not wait for slow answers to add up:
    each user is one request in flight at most, like a browser tab)."""
    import random

    rng = random.Random(4242)
    mean_think = users / rate
    latencies: list[float] = []
    failures: defaultdict[str, int] = defaultdict(int)
    sent = 0  # every request, the ramp-up's too (what the machine's CPU was spent on)
    keys = list(urls)
    timeout = aiohttp.ClientTimeout(total=30)
    # the users start spread over one mean think time; only what starts after that counts
    measured_from = time.perf_counter() + mean_think
    deadline = measured_from + seconds

    async def user() -> None:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1), timeout=timeout, headers=headers
        ) as session:
            await asyncio.sleep(rng.uniform(0, mean_think))
            nonlocal sent
            while (t0 := time.perf_counter()) < deadline:
                counted = t0 >= measured_from
                sent += 1
                try:
                    async with session.get(urls[rng.choice(keys)]) as response:
                        await response.read()
                        if response.status != 200:
                            failures[f"http {response.status}"] += counted
                        elif counted:
                            latencies.append(time.perf_counter() - t0)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    failures[type(exc).__name__] += counted
                await asyncio.sleep(rng.expovariate(1 / mean_think))

    await asyncio.gather(*(user() for _ in range(users)))
    elapsed = seconds
    result = Result(
        name=name,
        tool="asyncio",
        url=f"mix of {', '.join(keys)}",
        connections=users,
        duration_s=seconds,
        failures=sum(failures.values()),
        failure_detail=dict(failures),
    )
    result.extra["offered_rps"] = rate
    result.extra["sent"] = sent
    return from_latencies(result, latencies, elapsed)


def machine_busy_seconds() -> float:
    """CPU time every process of the machine spent (all cores; /proc/stat: everything but
    idle and iowait) - the load generator, the API, PostgREST, nginx, Postgres."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def login_call(api: str):
    async def call(session: aiohttp.ClientSession, client: int):
        # a fixed account per client: at most ceil(16 / 4) logins of one account in flight
        body = {
            "email": STORM_ACCOUNTS[client % len(STORM_ACCOUNTS)],
            "password": DEMO_LOGIN["password"],
        }
        async with session.post(f"{api}/api/auth/login", json=body) as response:
            await response.read()
            return True if response.status == 200 else f"http {response.status}"

    return call


# --------------------------------------------------------------------------------------
# The stack, the data and the API under test
# --------------------------------------------------------------------------------------
@dataclass
class Stack:
    supabase_url: str
    anon_key: str
    service_key: str
    dsn: str

    @property
    def rest(self) -> str:
        return f"{self.supabase_url}/rest/v1"


def load_stack(start_if_down: bool) -> Stack:
    from config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        if not start_if_down:
            raise BenchError(f"no settings ({exc}); run ./scripts/dev start first") from None
        start_stack()
        settings = load_settings()
    stack = Stack(
        settings.supabase_url,
        settings.supabase_anon_key.get_secret_value(),
        settings.supabase_service_role_key.get_secret_value(),
        settings.database_url.get_secret_value(),
    )
    if not postgrest_answers(stack):
        if not start_if_down:
            raise BenchError(f"PostgREST at {stack.rest} does not answer; run ./scripts/dev start")
        start_stack()
        if not postgrest_answers(stack):
            raise BenchError(
                f"PostgREST at {stack.rest} still does not answer after `scripts/dev start`"
            )
    return stack


def postgrest_answers(stack: Stack) -> bool:
    try:
        response = httpx.get(
            f"{stack.rest}/categories?select=id&limit=1",
            timeout=3,
            headers={"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"},
        )
        return response.status_code == 200
    except httpx.HTTPError:
        return False


def start_stack() -> None:
    script = os.environ.get("DEV_SCRIPT", str(ROOT / "scripts" / "dev"))
    say("the stack does not answer: running `scripts/dev start`")
    proc = subprocess.run([sys.executable, script, "start"], cwd=ROOT)
    if proc.returncode != 0:
        raise BenchError(f"`scripts/dev start` failed (exit {proc.returncode})")


def seed(target: int) -> None:
    say(f"making sure at least {target:,} expenses exist (scripts/seed_demo.py)")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed_demo.py"), "--expenses", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise BenchError(f"seeding failed: {tail[0]}")
    for line in proc.stdout.strip().splitlines()[-1:]:
        say(line.removeprefix("seed_demo: "))


@dataclass
class DataChoice:
    user_id: int
    expenses_total: int
    window: tuple[str, str]  # (b): inclusive date_from, date_to
    window_rows: int
    big_window: tuple[str, str]  # (b): the fullest month, cut to <= MONTH_ROWS_MAX rows
    big_window_rows: int
    month: tuple[int, int]  # (c): year, month
    month_rows: int
    year: int
    year_rows: int


@contextmanager
def db_cursor(dsn: str, autocommit: bool = False) -> Iterator[Any]:
    """A cursor on its own short connection to DATABASE_URL: one transaction, committed
    when the block ends (rolled back on an error), or autocommit (VACUUM)."""
    with connect(dsn, application_name=PROG, timeout=10, autocommit=autocommit) as conn:
        if autocommit:
            with conn.cursor() as cur:
                yield cur
        else:
            with conn, conn.cursor() as cur:
                yield cur


def choose_data(dsn: str) -> DataChoice:
    """The busiest demo user; for (b) the latest window (one month, narrowed when the
    month holds more than 100 rows) with 30-100 rows; for (c) its fullest year and month."""
    with db_cursor(dsn) as cur:
        cur.execute("select id from public.users where lower(name) = lower(%s)", (BUSIEST_USER,))
        row = cur.fetchone()
        if row is None:
            raise BenchError(f"demo user {BUSIEST_USER} is missing; run scripts/seed_demo.py")
        user_id = row[0]
        cur.execute("select count(*) from public.expenses")
        total = cur.fetchone()[0]
        cur.execute(
            "select date, count(*) from public.expenses where user_id = %s "
            "group by date order by date",
            (user_id,),
        )
        per_day = cur.fetchall()
    if not per_day:
        raise BenchError(f"{BUSIEST_USER} has no expenses; run scripts/seed_demo.py")
    days = dict(per_day)
    by_year: defaultdict[int, int] = defaultdict(int)
    by_month: defaultdict[tuple[int, int], int] = defaultdict(int)
    for day, n in per_day:
        by_year[day.year] += n
        by_month[(day.year, day.month)] += n
    year = max(by_year, key=lambda y: (by_year[y], y))
    month = max(by_month, key=lambda m: (by_month[m], m))
    # (b): end at the last day of the newest full month with data, one month back at most;
    # shorten the window from its start until it holds at most 100 rows.
    last = max(days)
    end = last.replace(day=1) - dt.timedelta(days=1) if last.day < 28 else last
    if end < min(days):
        end = last
    start = max(min(days), (end.replace(day=1)))
    lo, hi = EXPENSE_ROWS_WANTED
    count = lambda a, b: sum(n for d, n in days.items() if a <= d <= b)  # noqa: E731
    while count(start, end) > hi and start < end:
        start += dt.timedelta(days=1)
    while count(start, end) < lo and start > min(days) and (end - start).days < 31:
        start -= dt.timedelta(days=1)
    big_start = dt.date(month[0], month[1], 1)
    big_end = period_bounds(*month)[1] - dt.timedelta(days=1)
    while count(big_start, big_end) > MONTH_ROWS_MAX and big_start < big_end:
        big_start += dt.timedelta(days=1)
    return DataChoice(
        user_id=user_id,
        expenses_total=total,
        window=(start.isoformat(), end.isoformat()),
        window_rows=count(start, end),
        big_window=(big_start.isoformat(), big_end.isoformat()),
        big_window_rows=count(big_start, big_end),
        month=month,
        month_rows=by_month[month],
        year=year,
        year_rows=by_year[year],
    )


def max_expense_id(dsn: str) -> int:
    with db_cursor(dsn) as cur:
        cur.execute("select coalesce(max(id), 0) from public.expenses")
        return cur.fetchone()[0]


def delete_expenses_after(dsn: str, last_id: int) -> int:
    """Undo a quick run's seeding (the totals trigger keeps the dashboards exact)."""
    with db_cursor(dsn) as cur:
        cur.execute("delete from public.expenses where id > %s", (last_id,))
        return cur.rowcount


def run_async(coroutine):
    """uvloop when installed (it is, for the API): the load generators need the CPU."""
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


# What the cases read, and what seeding fills (audit_log: one row per seeded expense).
SETTLE_TABLES = (
    "expenses",
    "expense_monthly_totals",
    "audit_log",
    "users",
    "categories",
    "payment_methods",
    "revoked_tokens",
    "rate_limits",
)


def settle(dsn: str) -> None:
    """VACUUM ANALYZE what the cases read, before the clock starts. After a bulk seed,
    autovacuum otherwise wakes about a minute into the run and takes one of the two cores
    from whichever case is measuring then (seen: (b) at ~1,000 rows fell from ~110 % to 85 %
    when it landed on the gateway's half of the pair)."""
    started = time.perf_counter()
    with db_cursor(dsn, autocommit=True) as cur:  # VACUUM cannot run in a transaction
        for table in SETTLE_TABLES:
            cur.execute(f"vacuum (analyze) public.{table}")
    say(
        f"settled: VACUUM ANALYZE of {len(SETTLE_TABLES)} tables in {time.perf_counter() - started:.1f}s"
    )


def clear_login_limits(dsn: str) -> None:
    """Forget earlier login attempts of the demo accounts from this machine (an interrupted
    run or a typo would otherwise lock the storm's accounts out for the limit's window)."""
    with db_cursor(dsn) as cur:
        # the login limit counts per client address and account (ratelimit.py:
        # login_account_key: "user:<id>" once the name resolves to an account)
        cur.execute(
            "delete from public.rate_limits where key like %s and "
            "split_part(key, '/', 4) in (select 'user:' || id from public.users "
            "where lower(email) = any(%s))",
            ("LIMITER/login/127.0.0.1/%", STORM_ACCOUNTS),
        )


class ApiServer:
    """The Procfile's command on a free loopback port; stopped (its process group) on exit.
    `app` is what it serves: the gateway (`main:create_app()`, the Procfile's) or the
    bare-ASGI floor (scripts/bench_floor.py), with the same server and workers."""

    def __init__(
        self,
        workers: int | None,
        log_path: Path,
        extra_env: dict[str, str],
        app: str = "main:create_app()",
        ready_path: str = "/health/ready",
        server: str = "gunicorn",
    ):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ready_path = ready_path
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **extra_env}
        if workers:
            env["WEB_CONCURRENCY"] = str(workers)
        self.workers = int(env.get("WEB_CONCURRENCY", "2"))
        self.server = server
        if server == "granian":
            self.command = granian_command(app, self.port, self.workers, env)
        else:
            self.command = [
                str(Path(sys.executable).parent / "gunicorn"),
                "-c",
                "gunicorn.conf.py",
                app,
            ]
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.log_path = log_path

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the API exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.base}{self.ready_path}", timeout=3).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise BenchError(f"the API did not become ready within {timeout:.0f}s")

    def worker_pids(self) -> list[int]:
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            try:
                pids += [int(x) for x in task.read_text().split()]
            except OSError:
                pass
        return pids

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's workers (all their threads), from
        /proc/<pid>/stat; the master and the workers' own children (bcrypt) are left out."""
        ticks = 0
        for pid in self.worker_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return ticks / CLOCK_TICKS

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def granian_command(app: str, port: int, workers: int, env: dict[str, str]) -> list[str]:
    """--server granian (the evaluation in docs/performance.md): the same app and worker
    count under Granian, with gunicorn.conf.py's settings where Granian has them (header
    timeout, connections per worker, no access log of its own, uvloop)."""
    # prometheus_client's multiprocess mode: a fresh folder per server, as gunicorn.conf.py does
    env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ffb-metrics-")
    factory = app.endswith("()")
    header_ms = int(float(env.get("HEADER_TIMEOUT_SECONDS") or "10") * 1000)
    binary = Path(sys.executable).parent / "granian"
    if not binary.exists():
        raise BenchError("--server granian needs Granian: pip install -r requirements-dev.txt")
    return [
        str(binary),
        "--interface",
        "asgi",
        *(["--factory"] if factory else []),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "--http1-header-read-timeout",
        str(header_ms),
        "--backpressure",
        env.get("WORKER_CONNECTIONS") or "1000",
        "--no-access-log",
        app.removesuffix("()"),
    ]


def dashboard_cache_setting(flag: str | None) -> bool:
    """What the API runs with: --dashboard-cache, else the app's own settings (env, .env)."""
    if flag is not None:
        return flag == "on"
    from config import load_settings

    return load_settings().dashboard_cache


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------
def direct_session(token: str) -> dict[str, str]:
    """The session header the gateway sends with `token` (auth.session_headers): the
    functions called with a session refuse a service-role call without one (issue 21)."""
    from jose import jwt

    claims = jwt.get_unverified_claims(token)
    return {"X-Gateway-Session": f"{claims['userId']}:{claims['jti']}:{claims['iat']}"}


def check_equivalence(api: str, stack: Stack, token: str, data: DataChoice) -> dict:
    """Each pair must return the same data, or the comparison means nothing."""
    anon = {"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"}
    service = {
        "apikey": stack.service_key,
        "Authorization": f"Bearer {stack.service_key}",
        **direct_session(token),
    }
    jwt = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as client:
        gateway = client.get(f"{api}/api/categories").json()
        direct = client.get(
            f"{stack.rest}/categories?select=id,name,description&order=id", headers=anon
        ).json()
        if gateway != direct:
            raise BenchError("/api/categories and PostgREST return different categories")
        sizes = {"categories": len(direct)}
        for key, window in (("b_small", data.window), ("b_month", data.big_window)):
            gateway = client.get(expenses_url(api, data, window), headers=jwt).json()
            direct = client.get(direct_expenses_url(stack, data, window), headers=service).json()
            if gateway != [shape_row(r) for r in direct]:
                raise BenchError(f"/api/expenses and PostgREST return different rows ({key})")
            sizes[key] = len(direct)
        for kind, params in dashboard_params(data).items():
            gateway = client.get(
                f"{api}/api/dashboard/{data.user_id}/{kind}", params=params, headers=jwt
            ).json()
            direct = client.get(rpc_url(stack, kind, data), headers=service).json()
            if gateway != direct:
                raise BenchError(f"the {kind} dashboard differs from its RPC on PostgREST")
        return sizes


def shape_row(r: dict) -> dict:
    amount = float(r["amount"])
    return {
        "id": r["id"],
        "user_id": r["user_id"],
        "user_name": r["users"]["name"],
        "amount": int(amount) if amount.is_integer() else amount,
        "category_id": r["category_id"],
        "category": r["categories"]["name"],
        "payment_method_id": r["payment_method_id"],
        "payment_method": (r["payment_methods"] or {}).get("name"),
        "description": r["description"],
        "date": r["date"],
        "created_at": r["created_at"],
    }


def dashboard_params(data: DataChoice) -> dict[str, dict[str, int]]:
    return {
        "monthly": {"year": data.month[0], "month": data.month[1]},
        "yearly": {"year": data.year},
    }


def rpc_url(stack: Stack, kind: str, data: DataChoice) -> str:
    """The dashboard's RPC straight on PostgREST (GET: the functions are stable)."""
    params = {
        "p_user_id": data.user_id,
        **{f"p_{k}": v for k, v in dashboard_params(data)[kind].items()},
    }
    return f"{stack.rest}/rpc/get_{kind}_dashboard?" + urlencode(params)


def expenses_url(api: str, data: DataChoice, window: tuple[str, str]) -> str:
    return f"{api}/api/expenses?" + urlencode(
        {"user_id": data.user_id, "date_from": window[0], "date_to": window[1]}
    )


def direct_expenses_url(stack: Stack, data: DataChoice, window: tuple[str, str]) -> str:
    return f"{stack.rest}/expenses?" + urlencode(
        [
            ("select", EXPENSE_SELECT),
            ("user_id", f"eq.{data.user_id}"),
            ("date", f"gte.{window[0]}"),
            ("date", f"lte.{window[1]}"),
            ("order", "date.desc,id.desc"),
        ],
        safe="(),",
    )


def period_bounds(year: int, month: int | None) -> tuple[dt.date, dt.date]:
    if month is None:
        return dt.date(year, 1, 1), dt.date(year + 1, 1, 1)
    end = dt.date(year + (month == 12), month % 12 + 1, 1)
    return dt.date(year, month, 1), end


async def run_cases(
    args,
    api: str,
    stack: Stack,
    token: str,
    data: DataChoice,
    wrk: Wrk,
    server: ApiServer,
    uncached: ApiServer,
    floor: ApiServer,
) -> dict[str, Result]:
    seconds, warmup, conns = args.duration, args.warmup, args.connections
    anon = {"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"}
    service = {
        "apikey": stack.service_key,
        "Authorization": f"Bearer {stack.service_key}",
        **direct_session(token),
    }
    jwt = {"Authorization": f"Bearer {token}"}
    results: dict[str, Result] = {}

    async def wrk_case(
        key: str, url: str, headers: dict[str, str], served_by: ApiServer | None = None
    ) -> None:
        """One wrk case; with `served_by`, also that server's worker CPU per request
        (measured over the timed run only, not the warm-up)."""
        say(f"  {key}: wrk {conns} connections, {seconds:g}s")
        if served_by is None:
            results[key] = await wrk.run(key, url, seconds, headers, warmup)
            return
        if warmup:
            await wrk.run(key, url, warmup, headers)
        cpu = served_by.cpu_seconds()
        result = await wrk.run(key, url, seconds, headers)
        cpu = served_by.cpu_seconds() - cpu
        result.extra["cpu_s"] = round(cpu, 3)
        result.extra["cpu_ms_per_request"] = (
            round(cpu * 1000 / result.requests, 3) if result.requests else 0.0
        )
        results[key] = result

    say("(a) reference data")
    await wrk_case("a_direct", f"{stack.rest}/categories?select=id,name,description&order=id", anon)
    await wrk_case("a_gateway", f"{api}/api/categories", {}, server)

    for key, window, rows in (
        ("b", data.window, data.window_rows),
        ("b_month", data.big_window, data.big_window_rows),
    ):
        say(f"(b) expenses of user {data.user_id}, {window[0]}..{window[1]} ({rows:,} rows)")
        await wrk_case(f"{key}_direct", direct_expenses_url(stack, data, window), service)
        await wrk_case(f"{key}_gateway", expenses_url(api, data, window), jwt, server)
        await wrk_case(f"{key}_floor", expenses_url(floor.base, data, window), jwt, floor)

    for kind, params in dashboard_params(data).items():
        rows = data.month_rows if kind == "monthly" else data.year_rows
        say(f"(c) {kind} dashboard of user {data.user_id} {params} ({rows:,} rows)")
        await wrk_case(f"c_{kind}_direct", rpc_url(stack, kind, data), service)
        path = f"/api/dashboard/{data.user_id}/{kind}?{urlencode(params)}"
        await wrk_case(f"c_{kind}_gateway", f"{api}{path}", jwt, server)
        await wrk_case(f"c_{kind}_uncached", f"{uncached.base}{path}", jwt, uncached)
        await wrk_case(f"c_{kind}_floor", f"{floor.base}{path}", jwt, floor)

    say(f"(d) /api/categories during a login storm ({args.storm} clients logging in)")
    stop = asyncio.Event()
    storm = asyncio.create_task(
        closed_loop(
            "d_logins",
            f"{api}/api/auth/login",
            args.storm,
            seconds + warmup + 60,
            login_call(api),
            stop,
        )
    )
    await asyncio.sleep(min(2.0, warmup + 0.5))  # the storm is in full swing
    await wrk_case("d_gateway_storm", f"{api}/api/categories", {}, server)
    stop.set()
    results["d_logins"] = await storm

    say(
        f"(e) every expense ({data.expenses_total:,} rows), {args.e_repeat} calls each, "
        "one at a time"
    )
    rpc = f"{stack.rest}/rpc/list_expenses"
    results["e_direct"] = await timed_calls(
        "e_direct",
        rpc,
        args.e_repeat,
        fetch_bytes(
            rpc,
            {**service, "Accept": "application/json", "Content-Type": "application/json"},
            "POST",
            b"{}",
        ),
    )
    async with RssSampler(server.proc.pid) as rss:
        results["e_gateway"] = await timed_calls(
            "e_gateway",
            f"{api}/api/expenses",
            args.e_repeat,
            fetch_bytes(f"{api}/api/expenses", jwt),
        )
    growth, base, peak = rss.growth()
    results["e_gateway"].extra.update(rss_growth=growth, rss_baseline=base, rss_peak=peak)
    say("  e_paging: the old path (1,000-row pages shaped in Python), once")
    results["e_paging"] = await timed_calls(
        "e_paging",
        f"{stack.rest}/expenses (pages)",
        1,
        old_paging_list(stack.rest, stack.service_key),
    )

    mix = {
        "categories": f"{api}/api/categories",
        "expenses": expenses_url(api, data, data.window),
        "monthly": f"{api}/api/dashboard/{data.user_id}/monthly?"
        f"{urlencode(dashboard_params(data)['monthly'])}",
        "yearly": f"{api}/api/dashboard/{data.user_id}/yearly?"
        f"{urlencode(dashboard_params(data)['yearly'])}",
        "me": f"{api}/api/auth/me",
    }
    for i, rate in enumerate(args.f_rates):
        say(f"(f) {args.f_users} users, open loop at {rate:g} req/s for {seconds:g}s")
        busy, cpu = machine_busy_seconds(), server.cpu_seconds()
        result = await open_loop(f"f_{rate:g}", mix, jwt, args.f_users, rate, seconds)
        busy, cpu = machine_busy_seconds() - busy, server.cpu_seconds() - cpu
        if result.extra["sent"]:
            per_request = 1000 / result.extra["sent"]
            result.extra["machine_cpu_ms_per_request"] = round(busy * per_request, 3)
            result.extra["cpu_ms_per_request"] = round(cpu * per_request, 3)
        results[f"f_{rate:g}"] = result
        say(
            f"  {result.rps:,.0f} req/s answered, p95 {result.p95_ms:.1f} ms, "
            f"{result.failures} errors"
        )
        if i > 0 and result.p95_ms >= 200:
            break  # past the knee: enough
    return results


async def every_case(
    args,
    api: str,
    stack: Stack,
    token: str,
    data: DataChoice,
    wrk: Wrk,
    server: ApiServer,
    uncached: ApiServer,
    floor: ApiServer,
    harness: bench_planning.Harness,
) -> tuple[dict[str, Any], dict]:
    """(a)-(f), then the planning cases (g)-(j) of scripts/bench_planning.py."""
    results: dict[str, Any] = await run_cases(
        args, api, stack, token, data, wrk, server, uncached, floor
    )
    try:
        planned, notes = await bench_planning.run_cases(harness, args)
    except bench_planning.PlanningError as exc:
        raise BenchError(str(exc)) from None
    return results | planned, notes


def planning_harness(
    args, api: str, stack: Stack, token: str, data: DataChoice, wrk: Wrk
) -> bench_planning.Harness:
    from jose import jwt

    return bench_planning.Harness(
        api=api,
        rest=stack.rest,
        dsn=stack.dsn,
        service_headers={
            "apikey": stack.service_key,
            "Authorization": f"Bearer {stack.service_key}",
            **direct_session(token),
        },
        jwt={"Authorization": f"Bearer {token}"},
        user_id=int(jwt.get_unverified_claims(token)["userId"]),
        accounts=STORM_ACCOUNTS,
        password=DEMO_LOGIN["password"],
        month=data.month,
        wrk=wrk,
        result=Result,
        closed_loop=closed_loop,
        say=say,
        seconds=args.duration,
        warmup=args.warmup,
        connections=args.connections,
    )


def knee(r: dict[str, Result], rates: list[float]) -> tuple[float, bool]:
    """The answered rate at which p95 reaches 200 ms (linear between the two steps around
    it); (highest rate answered, False) when no step reached it."""
    steps = [r[f"f_{x:g}"] for x in rates if f"f_{x:g}" in r]
    for low, high in zip(steps, steps[1:]):
        if high.p95_ms >= 200 > low.p95_ms:
            share = (200 - low.p95_ms) / (high.p95_ms - low.p95_ms)
            return round(low.rps + share * (high.rps - low.rps), 1), True
    if steps and steps[0].p95_ms >= 200:
        return steps[0].rps, True
    return (max(s.rps for s in steps) if steps else 0.0), False


def login(api: str) -> str:
    response = httpx.post(f"{api}/api/auth/login", json=DEMO_LOGIN, timeout=60)
    if response.status_code != 200:
        raise BenchError(f"demo login failed with {response.status_code}: {response.text[:200]}")
    return response.json()["token"]


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def verdicts(r: dict[str, Result], f_rates: list[float]) -> dict[str, dict]:
    out = {}
    a = ratio(r["a_gateway"].rps, r["a_direct"].rps)
    out["a"] = {"ratio": a, "ok": a >= 1.0 and r["a_gateway"].failures == 0}
    b = {k: ratio(r[f"{k}_gateway"].rps, r[f"{k}_direct"].rps) for k in ("b", "b_month")}
    cpu = {k: cpu_ratio(r[f"{k}_gateway"], r[f"{k}_floor"]) for k in ("b", "b_month")}
    out["b"] = {
        "ratio": min(b.values()),
        "small": b["b"],
        "month": b["b_month"],
        "floor_small": ratio(r["b_floor"].rps, r["b_direct"].rps),
        "floor_month": ratio(r["b_month_floor"].rps, r["b_month_direct"].rps),
        "cpu_vs_floor_small": cpu["b"],
        "cpu_vs_floor_month": cpu["b_month"],
        "ok": b["b"] >= 1.25
        and b["b_month"] >= 1.10
        and 0 < cpu["b"] <= 1.5
        and all(r[f"{k}_gateway"].failures == 0 for k in b),
    }
    c: dict[str, Any] = {}
    for kind in ("monthly", "yearly"):
        g, u, direct = r[f"c_{kind}_gateway"], r[f"c_{kind}_uncached"], r[f"c_{kind}_direct"]
        c[kind] = {
            "ratio": ratio(g.rps, direct.rps),
            "p95_ms": g.p95_ms,
            "uncached_ratio": ratio(u.rps, direct.rps),
            "uncached_p95_ms": u.p95_ms,
            "floor_ratio": ratio(r[f"c_{kind}_floor"].rps, direct.rps),
            "cpu_vs_floor": cpu_ratio(u, r[f"c_{kind}_floor"]),
        }
    out["c"] = {
        "ratio": min(v["ratio"] for v in c.values()),
        "uncached_ratio": c["monthly"]["uncached_ratio"],
        **c,
        "ok": all(v["p95_ms"] < 25 and v["ratio"] >= 0.85 for v in c.values())
        and c["monthly"]["uncached_ratio"] >= 0.85
        and all(r[f"c_{k}_{s}"].failures == 0 for k in c for s in ("gateway", "uncached")),
    }
    d = ratio(r["d_gateway_storm"].rps, r["a_gateway"].rps)
    out["d"] = {
        "ratio": d,
        "p95_ms": r["d_gateway_storm"].p95_ms,
        "ok": d >= 0.5
        and r["d_gateway_storm"].p95_ms < 200
        and r["d_gateway_storm"].failures == 0
        and r["d_logins"].failures == 0,
    }
    e_gateway, e_direct = r["e_gateway"], r["e_direct"]
    body = e_gateway.extra["bytes"]
    e = ratio(e_gateway.p50_ms, e_direct.p50_ms)
    rss = e_gateway.extra["rss_growth"] / body if body else 0.0
    out["e"] = {
        "ratio": e,
        "rss_growth_mb": round(e_gateway.extra["rss_growth"] / 2**20, 1),
        "body_mb": round(body / 2**20, 1),
        "rss_per_body": round(rss, 2),
        "paging_ratio": ratio(r["e_paging"].p50_ms, e_gateway.p50_ms),
        "ok": e <= 1.3 and rss < 2 and body == e_direct.extra["bytes"],
    }
    first = r[f"f_{f_rates[0]:g}"]
    steps = [r[f"f_{rate:g}"] for rate in f_rates if f"f_{rate:g}" in r]
    busiest = max((x for x in steps if x.p95_ms < 200), key=lambda x: x.rps, default=first)
    knee_rps, reached = knee(r, f_rates)
    out["f"] = {
        "rate": first.rps,
        "p95_ms": first.p95_ms,
        "errors": first.failures,
        "knee_rps": knee_rps,
        "knee_reached": reached,
        # what the whole machine spends per request of the mix at the busiest rate below
        # the knee (the idle processes' share is smallest there), and the rate its cores
        # could serve at best at that cost if nothing else ran (the knee comes earlier)
        "cpu_rate": busiest.rps,
        "machine_cpu_ms": busiest.extra.get("machine_cpu_ms_per_request", 0.0),
        "gateway_cpu_ms": busiest.extra.get("cpu_ms_per_request", 0.0),
        "ceiling_rps": (
            round((os.cpu_count() or 1) * 1000 / busiest.extra["machine_cpu_ms_per_request"])
            if busiest.extra.get("machine_cpu_ms_per_request")
            else 0
        ),
        "ok": first.p95_ms < 50 and first.failures == 0 and knee_rps >= 2000,
    }
    return out


def cpu_ratio(gateway: Result, floor: Result) -> float:
    """Worker CPU per request of the gateway over the bare-ASGI floor's (same case)."""
    return ratio(
        gateway.extra.get("cpu_ms_per_request", 0.0), floor.extra.get("cpu_ms_per_request", 0.0)
    )


def fmt_row(label: str, res: Result) -> str:
    fails = f"{res.failures}" + (f" {res.failure_detail}" if res.failures else "")
    cpu = res.extra.get("cpu_ms_per_request")
    return (
        f"  {label:<38} {res.rps:>9,.1f} {res.p50_ms:>8.1f} {res.p95_ms:>8.1f} "
        f"{res.p99_ms:>8.1f} {res.requests:>9,} {fails:>6} "
        f"{'-' if cpu is None else f'{cpu:.3f}':>10}  {res.tool}"
    )


def table(
    r: dict[str, Result], v: dict[str, dict], data: DataChoice, meta: dict, planning: dict
) -> str:
    head = (
        f"  {'case':<38} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'requests':>9} {'fails':>6} {'CPU ms/req':>10}  tool"
    )
    line = "  " + "-" * (len(head) - 2)

    def verdict(key: str, text: str) -> str:
        return f"  => {text}   target: {TARGETS[key]}   {'OK' if v[key]['ok'] else 'MISS'}"

    y, m = data.month
    out = [
        f"Benchmark {meta['started']} on {meta['machine']}",
        f"  {meta['connections']} connections, {meta['duration_s']:g}s per case "
        f"(+{meta['warmup_s']:g}s warm-up), API: {meta['server_label']} ({meta['workers']} workers), "
        f"{data.expenses_total:,} expenses, DASHBOARD_CACHE "
        f"{'on' if meta['dashboard_cache'] else 'off'}",
        f"  load average (1 min) before/after: {meta['loadavg_before'][0]:.1f} / "
        f"{meta['loadavg_after'][0]:.1f} (other work on the machine skews every figure)",
        head,
        line,
        fmt_row("(a) PostgREST /categories (anon)", r["a_direct"]),
        fmt_row("(a) gateway /api/categories", r["a_gateway"]),
        verdict("a", f"gateway/direct = {v['a']['ratio']:.0%}"),
        line,
    ]
    for key, window, rows in (
        ("b", data.window, data.window_rows),
        ("b_month", data.big_window, data.big_window_rows),
    ):
        g, d, f = r[f"{key}_gateway"], r[f"{key}_direct"], r[f"{key}_floor"]
        out += [
            fmt_row(f"(b) PostgREST /expenses, {rows:,} rows", d),
            fmt_row(f"(b) gateway /api/expenses, {rows:,} rows", g),
            fmt_row(f"(b) floor (bare ASGI), {rows:,} rows", f),
            f"  (user {data.user_id}, {window[0]}..{window[1]}) gateway/direct = "
            f"{ratio(g.rps, d.rps):.0%}, floor/direct = {ratio(f.rps, d.rps):.0%}, "
            f"CPU/request gateway/floor = {cpu_ratio(g, f):.2f}x",
        ]
    out += [
        verdict(
            "b",
            f"gateway/direct = {v['b']['small']:.0%} / {v['b']['month']:.0%}, "
            f"CPU/request {v['b']['cpu_vs_floor_small']:.2f}x the floor's",
        ),
        line,
    ]
    for kind, what in (
        ("monthly", f"{y}-{m:02d}, {data.month_rows:,} rows"),
        ("yearly", f"{data.year}, {data.year_rows:,} rows"),
    ):
        cached = "cached" if meta["dashboard_cache"] else "uncached"
        vk = v["c"][kind]
        out += [
            fmt_row(f"(c) PostgREST rpc {kind}", r[f"c_{kind}_direct"]),
            fmt_row(f"(c) gateway {kind} ({cached})", r[f"c_{kind}_gateway"]),
            fmt_row(f"(c) gateway {kind} (uncached)", r[f"c_{kind}_uncached"]),
            fmt_row(f"(c) floor (bare ASGI) {kind}", r[f"c_{kind}_floor"]),
            f"  ({what}) gateway/direct = {vk['ratio']:.0%} ({cached}), "
            f"{vk['uncached_ratio']:.0%} (uncached), floor/direct = {vk['floor_ratio']:.0%}, "
            f"CPU/request uncached/floor = {vk['cpu_vs_floor']:.2f}x",
        ]
    out += [
        verdict(
            "c",
            f"uncached monthly/direct = {v['c']['uncached_ratio']:.0%}, min {cached}/direct = "
            f"{v['c']['ratio']:.0%}, p95 "
            f"{v['c']['monthly']['p95_ms']:.1f} / {v['c']['yearly']['p95_ms']:.1f} ms",
        ),
        line,
        fmt_row("(d) /api/categories alone", r["a_gateway"]),
        fmt_row("(d) /api/categories, login storm", r["d_gateway_storm"]),
        fmt_row("(d) the storm's logins", r["d_logins"]),
        verdict("d", f"storm/alone = {v['d']['ratio']:.0%}, p95 {v['d']['p95_ms']:.1f} ms"),
        line,
        fmt_row("(e) PostgREST rpc list_expenses", r["e_direct"]),
        fmt_row("(e) gateway /api/expenses (all)", r["e_gateway"]),
        fmt_row("(e) old path: 1,000-row pages", r["e_paging"]),
        f"  ({data.expenses_total:,} rows, {v['e']['body_mb']:.1f} MB; median of "
        f"{r['e_gateway'].requests} calls) old path/gateway = {v['e']['paging_ratio']:.1f}x; "
        f"worker RSS +{v['e']['rss_growth_mb']:.1f} MB "
        f"({v['e']['rss_per_body']:.2f}x the body)",
        verdict(
            "e",
            f"gateway/direct time = {v['e']['ratio']:.2f}x, RSS growth "
            f"{v['e']['rss_per_body']:.2f}x body",
        ),
        line,
    ]
    for key in sorted((k for k in r if k.startswith("f_")), key=lambda k: float(k[2:])):
        out.append(fmt_row(f"(f) open loop, {float(key[2:]):g} req/s offered", r[key]))
    knee_text = (
        f"{v['f']['knee_rps']:,.0f} req/s"
        if v["f"]["knee_reached"]
        else f"> {v['f']['knee_rps']:,.0f} req/s (not reached)"
    )
    out += [
        f"  ({meta['f_users']} users, mix: {', '.join(F_MIX)}) p95 reaches 200 ms at {knee_text}",
        f"  the whole machine's CPU per request at {v['f']['cpu_rate']:,.0f} req/s: "
        f"{v['f']['machine_cpu_ms']:.2f} ms (the gateway's workers "
        f"{v['f']['gateway_cpu_ms']:.2f} ms): its "
        f"{os.cpu_count()} cores serve at most ~{v['f']['ceiling_rps']:,} req/s of this mix",
        verdict(
            "f",
            f"p95 {v['f']['p95_ms']:.1f} ms at {v['f']['rate']:,.0f} req/s, "
            f"{v['f']['errors']} errors, knee {knee_text}",
        ),
        line,
        *bench_planning.table_rows(r, v, planning, fmt_row, line),
        "  (wrk: HTTP load generator; asyncio: aiohttp clients in bench.py, for the "
        "logins, (e), (f) and (j); httpx/sql: one timed request or statement; CPU ms/req: user+system CPU of the server's workers per "
        "request, /proc; floor: scripts/bench_floor.py, the same PostgREST call and bytes "
        "without a framework, served the same way)",
    ]
    return "\n".join(out)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark the gateway against direct PostgREST in one run and print "
        "the ratios (see docs/performance.md).",
        epilog=(
            "examples:\n"
            "  ./scripts/dev start && scripts/bench.py      the full run (~5 minutes)\n"
            "  scripts/bench.py --quick                     smoke run, a few seconds per case\n"
            "  scripts/bench.py --workers 1 --duration 20   other server settings\n"
            "  scripts/bench.py --dashboard-cache off       every dashboard through PostgREST\n"
            "  scripts/bench.py --f-rates 400,900           (f) at 400 req/s, knee probe at 900\n\n"
            "Settings (SUPABASE_URL, keys, DATABASE_URL, JWT_SECRET) come from the\n"
            "environment or .env, exactly as the app reads them."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke mode: 2s per case, 1s warm-up, 5k expenses; for the test suite",
    )
    parser.add_argument("--duration", type=float, help="seconds per case (default 10; quick 2)")
    parser.add_argument(
        "--warmup", type=float, help="warm-up seconds per case, not measured (default 2; quick 1)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="concurrent connections/clients in every case (default 16)",
    )
    parser.add_argument(
        "--storm", type=int, default=16, help="concurrent login clients in case (d) (default 16)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="gunicorn workers (default: WEB_CONCURRENCY or gunicorn.conf.py's 2)",
    )
    parser.add_argument(
        "--dashboard-cache",
        choices=("on", "off"),
        help="start the API with DASHBOARD_CACHE on or off (dashboards from each "
        "worker's memory, invalidated by Postgres NOTIFY); default: as the "
        "environment or .env says (on by default)",
    )
    parser.add_argument(
        "--server",
        choices=("gunicorn", "granian"),
        default="gunicorn",
        help="what serves the API and the floor: the Procfile's gunicorn with uvicorn "
        "workers (default), or Granian with the same app and workers (the evaluation "
        "in docs/performance.md)",
    )
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--expenses",
        type=int,
        help="seed up to this many expenses first (default 100000; quick 5000)",
    )
    parser.add_argument("--no-seed", action="store_true", help="use the data as it is")
    parser.add_argument(
        "--no-start",
        action="store_true",
        help="fail instead of running `scripts/dev start` when the stack is down",
    )
    parser.add_argument(
        "--e-repeat",
        type=int,
        help="(e): calls of the unfiltered list per path (default 3; quick 1)",
    )
    parser.add_argument("--f-users", type=int, help="(f): simulated users (default 1000; quick 50)")
    parser.add_argument(
        "--f-rates",
        type=lambda text: [float(x) for x in text.split(",")],
        help="(f): offered req/s, the first is the target's, the rest look for "
        "the knee (default 400,800,1200,1600,2000,2400; quick 50,100)",
    )
    bench_planning.add_arguments(parser)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless every target (a)-(j) held"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=OUT_DIR,
        help="folder for the JSON results and the API log (default .bench/)",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.expenses = (
        args.expenses if args.expenses is not None else (5_000 if args.quick else 100_000)
    )
    args.e_repeat = args.e_repeat or (1 if args.quick else 3)
    args.f_users = args.f_users or (50 if args.quick else 1000)
    args.f_rates = args.f_rates or (
        [50.0, 100.0] if args.quick else [400.0, 800.0, 1200.0, 1600.0, 2000.0, 2400.0]
    )
    if (
        args.duration < 1
        or args.connections < 1
        or args.storm < 1
        or args.e_repeat < 1
        or args.f_users < 1
        or min(args.f_rates) <= 0
    ):
        parser.error("--duration must be at least 1 and the counts at least 1")
    bench_planning.settle_arguments(args, parser)
    return args


def run(args: argparse.Namespace) -> int:
    started = dt.datetime.now().astimezone()
    load_before = os.getloadavg()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    wrk_bin = ensure_wrk()
    stack = load_stack(start_if_down=not args.no_start)
    say(f"stack: {stack.supabase_url} (PostgREST answers)")
    added_after = max_expense_id(stack.dsn) if args.quick else None
    if not args.no_seed:
        seed(args.expenses)
    data = choose_data(stack.dsn)
    clear_login_limits(stack.dsn)
    settle(stack.dsn)

    log_path = args.out / f"api-{stamp}.log"
    # The API logs one JSON line per request (as in production); to a file here.
    cache_env = {"DASHBOARD_CACHE": str(args.dashboard_cache == "on").lower()}
    server = ApiServer(
        args.workers,
        log_path,
        cache_env if args.dashboard_cache else {},
        server=args.server,
    )
    say(f"API: {' '.join(server.command[1:])} with {server.workers} worker(s) on {server.base}")
    # (c) uncached: the same API with DASHBOARD_CACHE off, every dashboard reaches PostgREST
    uncached = ApiServer(
        args.workers,
        args.out / f"api-uncached-{stamp}.log",
        {"DASHBOARD_CACHE": "false"},
        server=args.server,
    )
    # the bare-ASGI floor of the uncached cases, served the same way
    floor = ApiServer(
        args.workers, args.out / f"floor-{stamp}.log", {}, FLOOR_APP, server=args.server
    )
    say(f"uncached API on {uncached.base}, bare-ASGI floor ({FLOOR_APP}) on {floor.base}")
    try:
        for each in (server, uncached, floor):
            each.wait_ready()
        token = login(server.base)
        sizes = check_equivalence(server.base, stack, token, data)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write(WRK_LUA)
        try:
            wrk = Wrk(wrk_bin, args.connections, args.wrk_threads, Path(lua.name))
            harness = planning_harness(args, server.base, stack, token, data, wrk)
            results, planning = run_async(
                every_case(
                    args, server.base, stack, token, data, wrk, server, uncached, floor, harness
                )
            )
        finally:
            os.unlink(lua.name)
    finally:
        for each in (server, uncached, floor):
            each.stop()
        if added_after is not None and not args.no_seed:
            removed = delete_expenses_after(stack.dsn, added_after)
            say(f"--quick: removed the {removed:,} expenses this run added")

    v = verdicts(results, args.f_rates) | bench_planning.verdicts(results)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "workers": server.workers,
        "server": args.server,
        "server_label": "gunicorn + uvicorn workers (uvloop, httptools)"
        if args.server == "gunicorn"
        else "Granian (asgi, uvloop)",
        "quick": args.quick,
        "storm_clients": args.storm,
        "wrk_threads": args.wrk_threads,
        "dashboard_cache": dashboard_cache_setting(args.dashboard_cache),
        "f_users": args.f_users,
        "f_rates": args.f_rates,
        "e_repeat": args.e_repeat,
        "import_rows": args.import_rows,
        "recurring": args.recurring,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "supabase_url": stack.supabase_url,
        "api_log": str(log_path.relative_to(ROOT))
        if log_path.is_relative_to(ROOT)
        else str(log_path),
    }
    report = table(results, v, data, meta, planning)
    print()
    print(report)
    payload = {
        "meta": meta,
        "data": asdict(data),
        "checked": sizes,
        "planning": planning,
        "verdicts": v,
        "targets": TARGETS | bench_planning.TARGETS,
        "results": {k: asdict(x) for k, x in results.items()},
        "table": report,
    }
    for path in (args.out / f"bench-{stamp}.json", args.out / "latest.json"):
        path.write_text(json.dumps(payload, indent=2, default=str))
    print()
    say(f"raw results: {(args.out / f'bench-{stamp}.json')}")
    if args.check and not all(x["ok"] for x in v.values()):
        missed = [k for k, x in v.items() if not x["ok"]]
        say(f"targets missed: {', '.join(missed)}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
