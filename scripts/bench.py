#!/usr/bin/env python3
"""Benchmark: the gateway against direct PostgREST, in one run, as ratios.

    scripts/bench.py              full run (10 s per case, 16 connections): ~3 minutes
    scripts/bench.py --quick      smoke run (2 s per case, small data set): ~40 seconds

What it does, in order:
  1. uses the running stack (settings from the environment or .env, like the app), or
     starts it with `scripts/dev start` when PostgREST does not answer;
  2. tops the expenses table up to 100k rows (scripts/seed_demo.py; only the difference);
  3. starts the API the way production runs it - the Procfile's gunicorn with uvicorn
     workers (gunicorn.conf.py, WEB_CONCURRENCY workers) - on a free loopback port;
  4. measures every case for the same duration at the same concurrency:
       (a) GET /api/categories          vs PostgREST /rest/v1/categories (anon key)
       (b) GET /api/expenses, one user and date window (~30-100 rows, JWT)
                                        vs the same PostgREST query with its embedding
                                           (service key)
       (c) monthly and yearly dashboards of the busiest user
                                        vs the legacy way: fetch every row of that user
                                           and period from PostgREST (1000-row pages) and
                                           sum in Python (an asyncio loop: wrk cannot page)
       (d) GET /api/categories alone    vs during a login storm (16 clients logging in
                                           continuously with the demo credentials)
     HTTP cases use wrk (installed with apt-get when missing); the legacy loop and the
     login storm are asyncio/aiohttp clients in this process;
  5. prints one table with every figure, the ratios and the targets, and writes the raw
     results to .bench/bench-<time>.json and .bench/latest.json (git-ignored).

Exit status: 0 when the run completed (with --check: and every target held), 1 with a
one-line reason otherwise. The API's own log goes to .bench/api-<time>.log.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
# Run inside the project's virtualenv (created by scripts/dev) whatever python started us.
if VENV_PY.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() \
        and not os.environ.get("BENCH_NO_REEXEC"):
    os.execv(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]])
sys.path.insert(0, str(ROOT))

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
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
import psycopg2

PROG = "bench"
OUT_DIR = ROOT / ".bench"
DEMO_LOGIN = {"email": "alok@example.com", "password": "password123"}
# The storm's clients are spread over the four demo accounts: the login limit is per client
# address and account and reserves an attempt while the password is checked, so one
# account logging in 16 times at once from one address would be (rightly) refused.
STORM_ACCOUNTS = ["alok@example.com", "amol@example.com", "atul@example.com",
                  "rashmi@example.com"]
BUSIEST_USER = "Alok"
EXPENSE_SELECT = ("id,user_id,amount,category_id,payment_method_id,description,date,created_at,"
                  "users(name),categories(name),payment_methods(name)")
EXPENSE_ROWS_WANTED = (30, 100)  # (b): a window with this many rows
LEGACY_PAGE = 1000

# Targets of the issue: (case, metric) -> threshold, checked by --check and shown in the table.
TARGETS = {
    "a": "gateway >= 100% of direct",
    "b": "gateway >= 50% of direct (aim 70%)",
    "c": "p95 < 50 ms and >= 10x legacy",
    "d": "storm keeps >= 50% req/s, p95 < 200 ms, no failures",
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
    tool: str                      # "wrk" or "asyncio"
    url: str
    connections: int
    duration_s: float
    requests: int = 0
    failures: int = 0              # non-2xx/3xx answers, socket errors, timeouts
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
    result.p50_ms, result.p95_ms, result.p99_ms = (round(percentile(values, p), 2)
                                                   for p in (50, 95, 99))
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
            raise BenchError(f"`{' '.join(cmd)}` failed ({tail[0]}); install wrk "
                             "(`sudo apt-get install -y wrk`) and run again")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get installed wrk but it is not on PATH")
    return found


class Wrk:
    def __init__(self, binary: str, connections: int, threads: int, lua: Path):
        self.binary, self.connections, self.threads, self.lua = binary, connections, threads, lua

    def command(self, url: str, seconds: float, headers: dict[str, str]) -> list[str]:
        cmd = [self.binary, f"-t{self.threads}", f"-c{self.connections}",
               f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(self.lua)]
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        return cmd + [url]

    async def run(self, name: str, url: str, seconds: float, headers: dict[str, str],
                  warmup: float = 0) -> Result:
        if warmup:
            await self._exec(url, warmup, headers)
        data = await self._exec(url, seconds, headers)
        errors = data["errors"]
        lat = data["latency_us"]
        elapsed = data["duration_us"] / 1e6
        failures = sum(errors.values())
        ok = data["requests"] - errors["status"]
        return Result(
            name=name, tool="wrk", url=url, connections=self.connections,
            duration_s=round(elapsed, 3), requests=data["requests"], failures=failures,
            failure_detail={k: v for k, v in errors.items() if v},
            rps=round(ok / elapsed, 1) if elapsed else 0.0,
            p50_ms=lat["p50"] / 1000, p95_ms=lat["p95"] / 1000, p99_ms=lat["p99"] / 1000,
            mean_ms=round(lat["mean"] / 1000, 3), max_ms=lat["max"] / 1000,
            extra={"bytes": data["bytes"]})

    async def _exec(self, url: str, seconds: float, headers: dict[str, str]) -> dict:
        proc = await asyncio.create_subprocess_exec(
            *self.command(url, seconds, headers), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        for line in text.splitlines():
            if line.startswith("BENCH_JSON "):
                return json.loads(line.removeprefix("BENCH_JSON "))
        raise BenchError(f"wrk printed no summary for {url}: {text.strip()[-300:]}")


# --------------------------------------------------------------------------------------
# asyncio load loops: the legacy dashboard and the login storm
# --------------------------------------------------------------------------------------
async def closed_loop(name: str, url: str, concurrency: int, seconds: float,
                      one_call, stop: asyncio.Event | None = None) -> Result:
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
    result = Result(name=name, tool="asyncio", url=url, connections=concurrency,
                    duration_s=seconds, failures=sum(failures.values()),
                    failure_detail=dict(failures))
    return from_latencies(result, latencies, elapsed)


def legacy_dashboard_call(rest: str, service_key: str, user_id: int, start: dt.date,
                          end: dt.date, yearly: bool):
    """The legacy way: every row of the user and period, all pages, summed in Python."""
    headers = {"apikey": service_key, "Authorization": f"Bearer {service_key}"}
    base = (f"{rest}/expenses?select=amount,date,categories(name)&user_id=eq.{user_id}"
            f"&date=gte.{start.isoformat()}&date=lt.{end.isoformat()}&order=id")

    async def call(session: aiohttp.ClientSession, _client: int):
        rows: list[dict] = []
        while True:
            async with session.get(f"{base}&limit={LEGACY_PAGE}&offset={len(rows)}",
                                   headers=headers) as response:
                if response.status != 200:
                    return f"http {response.status}"
                batch = await response.json()
            rows.extend(batch)
            if len(batch) < LEGACY_PAGE:
                break
        call.last = legacy_aggregate(rows, yearly)  # type: ignore[attr-defined]
        return True
    call.last = None  # type: ignore[attr-defined]
    return call


def legacy_aggregate(rows: list[dict], yearly: bool) -> dict:
    total = Decimal(0)
    by_category: defaultdict[str, Decimal] = defaultdict(Decimal)
    by_month: defaultdict[int, Decimal] = defaultdict(Decimal)
    for row in rows:
        amount = Decimal(str(row["amount"]))
        total += amount
        by_category[row["categories"]["name"]] += amount
        if yearly:
            by_month[int(row["date"][5:7])] += amount
    breakdown = sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))
    out: dict[str, Any] = {"total_spent": float(total), "category_breakdown": [
        {"category": name, "amount": float(amount),
         "percentage": round(float(amount / total * 100), 1) if total else 0}
        for name, amount in breakdown]}
    out["top_categories"] = out["category_breakdown"][:5]
    if yearly:
        out["monthly_trends"] = [{"month": m, "amount": float(by_month.get(m, 0))}
                                 for m in range(1, 13)]
    return out


def login_call(api: str):
    async def call(session: aiohttp.ClientSession, client: int):
        # a fixed account per client: at most ceil(16 / 4) logins of one account in flight
        body = {"email": STORM_ACCOUNTS[client % len(STORM_ACCOUNTS)],
                "password": DEMO_LOGIN["password"]}
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
    stack = Stack(settings.supabase_url, settings.supabase_anon_key.get_secret_value(),
                  settings.supabase_service_role_key.get_secret_value(),
                  settings.database_url.get_secret_value())
    if not postgrest_answers(stack):
        if not start_if_down:
            raise BenchError(f"PostgREST at {stack.rest} does not answer; run ./scripts/dev start")
        start_stack()
        if not postgrest_answers(stack):
            raise BenchError(f"PostgREST at {stack.rest} still does not answer after "
                             "`scripts/dev start`")
    return stack


def postgrest_answers(stack: Stack) -> bool:
    try:
        response = httpx.get(f"{stack.rest}/categories?select=id&limit=1", timeout=3,
                             headers={"apikey": stack.anon_key,
                                      "Authorization": f"Bearer {stack.anon_key}"})
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
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "seed_demo.py"),
                           "--expenses", str(target)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise BenchError(f"seeding failed: {tail[0]}")
    for line in proc.stdout.strip().splitlines()[-1:]:
        say(line.removeprefix("seed_demo: "))


@dataclass
class DataChoice:
    user_id: int
    expenses_total: int
    window: tuple[str, str]        # (b): inclusive date_from, date_to
    window_rows: int
    month: tuple[int, int]         # (c): year, month
    month_rows: int
    year: int
    year_rows: int


def choose_data(dsn: str) -> DataChoice:
    """The busiest demo user; for (b) the latest window (one month, narrowed when the
    month holds more than 100 rows) with 30-100 rows; for (c) its fullest year and month."""
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name=PROG)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select id from public.users where lower(name) = lower(%s)",
                        (BUSIEST_USER,))
            row = cur.fetchone()
            if row is None:
                raise BenchError(f"demo user {BUSIEST_USER} is missing; run scripts/seed_demo.py")
            user_id = row[0]
            cur.execute("select count(*) from public.expenses")
            total = cur.fetchone()[0]
            cur.execute("select date, count(*) from public.expenses where user_id = %s "
                        "group by date order by date", (user_id,))
            per_day = cur.fetchall()
    finally:
        conn.close()
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
    return DataChoice(user_id=user_id, expenses_total=total,
                      window=(start.isoformat(), end.isoformat()), window_rows=count(start, end),
                      month=month, month_rows=by_month[month], year=year, year_rows=by_year[year])


def clear_login_limits(dsn: str) -> None:
    """Forget earlier login attempts of the demo accounts from this machine (an interrupted
    run or a typo would otherwise lock the storm's accounts out for the limit's window)."""
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name=PROG)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("delete from public.rate_limits where key like %s and "
                        "split_part(key, '/', 4) = any(%s)",
                        ("LIMITER/login/127.0.0.1/%", STORM_ACCOUNTS))
    finally:
        conn.close()


class ApiServer:
    """The Procfile's command on a free loopback port; stopped (its process group) on exit."""

    def __init__(self, workers: int | None, log_path: Path, extra_env: dict[str, str]):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **extra_env}
        if workers:
            env["WEB_CONCURRENCY"] = str(workers)
        self.workers = int(env.get("WEB_CONCURRENCY", "2"))
        self.command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
                        "main:create_app()"]
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.log_path = log_path

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the API exited with {self.proc.returncode}; "
                                 f"see {self.log_path.relative_to(ROOT)}")
            try:
                if httpx.get(f"{self.base}/health/ready", timeout=3).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise BenchError(f"the API did not become ready within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------
def check_equivalence(api: str, stack: Stack, token: str, data: DataChoice) -> dict:
    """Each pair must return the same data, or the comparison means nothing."""
    anon = {"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"}
    service = {"apikey": stack.service_key, "Authorization": f"Bearer {stack.service_key}"}
    jwt = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as client:
        gateway = client.get(f"{api}/api/categories").json()
        direct = client.get(f"{stack.rest}/categories?select=id,name,description&order=id",
                            headers=anon).json()
        if gateway != direct:
            raise BenchError("/api/categories and PostgREST return different categories")
        gateway = client.get(expenses_url(api, data), headers=jwt).json()
        direct = client.get(direct_expenses_url(stack, data), headers=service).json()
        if [r["id"] for r in gateway] != [r["id"] for r in direct]:
            raise BenchError("/api/expenses and PostgREST return different rows")
        return {"categories": len(direct), "expenses_rows": len(direct)}


def expenses_url(api: str, data: DataChoice) -> str:
    return f"{api}/api/expenses?" + urlencode(
        {"user_id": data.user_id, "date_from": data.window[0], "date_to": data.window[1]})


def direct_expenses_url(stack: Stack, data: DataChoice) -> str:
    return f"{stack.rest}/expenses?" + urlencode(
        [("select", EXPENSE_SELECT), ("user_id", f"eq.{data.user_id}"),
         ("date", f"gte.{data.window[0]}"), ("date", f"lte.{data.window[1]}"),
         ("order", "date.desc,id.desc")], safe="(),")


def period_bounds(year: int, month: int | None) -> tuple[dt.date, dt.date]:
    if month is None:
        return dt.date(year, 1, 1), dt.date(year + 1, 1, 1)
    end = dt.date(year + (month == 12), month % 12 + 1, 1)
    return dt.date(year, month, 1), end


async def run_cases(args, api: str, stack: Stack, token: str, data: DataChoice,
                    wrk: Wrk) -> dict[str, Result]:
    seconds, warmup, conns = args.duration, args.warmup, args.connections
    anon = {"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"}
    service = {"apikey": stack.service_key, "Authorization": f"Bearer {stack.service_key}"}
    jwt = {"Authorization": f"Bearer {token}"}
    results: dict[str, Result] = {}

    async def wrk_case(key: str, url: str, headers: dict[str, str]) -> None:
        say(f"  {key}: wrk {conns} connections, {seconds:g}s")
        results[key] = await wrk.run(key, url, seconds, headers, warmup)

    say("(a) reference data")
    await wrk_case("a_direct", f"{stack.rest}/categories?select=id,name,description&order=id", anon)
    await wrk_case("a_gateway", f"{api}/api/categories", {})

    say(f"(b) expenses of user {data.user_id}, {data.window[0]}..{data.window[1]} "
        f"({data.window_rows} rows)")
    await wrk_case("b_direct", direct_expenses_url(stack, data), service)
    await wrk_case("b_gateway", expenses_url(api, data), jwt)

    year, month = data.month
    for kind, params, bounds in (
            ("monthly", {"year": year, "month": month}, period_bounds(year, month)),
            ("yearly", {"year": data.year}, period_bounds(data.year, None))):
        rows = data.month_rows if kind == "monthly" else data.year_rows
        say(f"(c) {kind} dashboard of user {data.user_id} {params} ({rows:,} rows)")
        await wrk_case(f"c_{kind}_gateway",
                       f"{api}/api/dashboard/{data.user_id}/{kind}?{urlencode(params)}", jwt)
        say(f"  c_{kind}_legacy: asyncio loop, {conns} clients, {seconds:g}s")
        call = legacy_dashboard_call(stack.rest, stack.service_key, data.user_id, *bounds,
                                     yearly=kind == "yearly")
        results[f"c_{kind}_legacy"] = await closed_loop(
            f"c_{kind}_legacy", f"{stack.rest}/expenses (all pages of user {data.user_id}, "
            f"{bounds[0]}..{bounds[1]})", conns, seconds, call)
        results[f"c_{kind}_legacy"].extra["rows"] = rows
        check_legacy_matches(api, jwt, data.user_id, kind, params, call.last)

    say(f"(d) /api/categories during a login storm ({args.storm} clients logging in)")
    stop = asyncio.Event()
    storm = asyncio.create_task(closed_loop(
        "d_logins", f"{api}/api/auth/login", args.storm, seconds + warmup + 60,
        login_call(api), stop))
    await asyncio.sleep(min(2.0, warmup + 0.5))        # the storm is in full swing
    await wrk_case("d_gateway_storm", f"{api}/api/categories", {})
    stop.set()
    results["d_logins"] = await storm
    return results


def check_legacy_matches(api: str, jwt: dict, user_id: int, kind: str, params: dict,
                         legacy: dict | None) -> None:
    """The legacy loop must compute what the dashboard answers (totals to the cent)."""
    if legacy is None:
        raise BenchError(f"the legacy {kind} loop completed no call")
    answer = httpx.get(f"{api}/api/dashboard/{user_id}/{kind}", params=params, headers=jwt,
                       timeout=30).json()
    if round(answer["total_spent"], 2) != round(legacy["total_spent"], 2) or \
            [c["category"] for c in answer["category_breakdown"]] != \
            [c["category"] for c in legacy["category_breakdown"]]:
        raise BenchError(f"the legacy {kind} aggregation differs from the dashboard "
                         f"({legacy['total_spent']} vs {answer['total_spent']})")


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


def verdicts(r: dict[str, Result]) -> dict[str, dict]:
    out = {}
    a = ratio(r["a_gateway"].rps, r["a_direct"].rps)
    out["a"] = {"ratio": a, "ok": a >= 1.0 and r["a_gateway"].failures == 0}
    b = ratio(r["b_gateway"].rps, r["b_direct"].rps)
    out["b"] = {"ratio": b, "ok": b >= 0.5 and r["b_gateway"].failures == 0}
    c: dict[str, Any] = {}
    for kind in ("monthly", "yearly"):
        g, legacy = r[f"c_{kind}_gateway"], r[f"c_{kind}_legacy"]
        c[kind] = {"ratio": ratio(g.rps, legacy.rps), "p95_ms": g.p95_ms}
    out["c"] = {"ratio": min(v["ratio"] for v in c.values()), **c,
                "ok": all(v["p95_ms"] < 50 and v["ratio"] >= 10 for v in c.values())
                and all(r[f"c_{k}_gateway"].failures == 0 for k in c)}
    d = ratio(r["d_gateway_storm"].rps, r["a_gateway"].rps)
    out["d"] = {"ratio": d, "p95_ms": r["d_gateway_storm"].p95_ms,
                "ok": d >= 0.5 and r["d_gateway_storm"].p95_ms < 200
                and r["d_gateway_storm"].failures == 0 and r["d_logins"].failures == 0}
    return out


def fmt_row(label: str, res: Result) -> str:
    fails = f"{res.failures}" + (f" {res.failure_detail}" if res.failures else "")
    return (f"  {label:<34} {res.rps:>9,.1f} {res.p50_ms:>8.1f} {res.p95_ms:>8.1f} "
            f"{res.p99_ms:>8.1f} {res.requests:>9,} {fails:>6}  {res.tool}")


def table(r: dict[str, Result], v: dict[str, dict], data: DataChoice, meta: dict) -> str:
    head = (f"  {'case':<34} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
            f"{'requests':>9} {'fails':>6}  tool")
    line = "  " + "-" * (len(head) - 2)

    def verdict(key: str, text: str) -> str:
        return f"  => {text}   target: {TARGETS[key]}   {'OK' if v[key]['ok'] else 'MISSED'}"

    y, m = data.month
    out = [f"Benchmark {meta['started']} on {meta['machine']}",
           f"  {meta['connections']} connections, {meta['duration_s']:g}s per case "
           f"(+{meta['warmup_s']:g}s warm-up), API: gunicorn {meta['workers']} uvicorn workers, "
           f"{data.expenses_total:,} expenses",
           f"  load average (1 min) before/after: {meta['loadavg_before'][0]:.1f} / "
           f"{meta['loadavg_after'][0]:.1f} (other work on the machine skews every figure)",
           head, line,
           fmt_row("(a) PostgREST /categories (anon)", r["a_direct"]),
           fmt_row("(a) gateway /api/categories", r["a_gateway"]),
           verdict("a", f"gateway/direct = {v['a']['ratio']:.0%}"), line,
           fmt_row("(b) PostgREST /expenses (service)", r["b_direct"]),
           fmt_row("(b) gateway /api/expenses (JWT)", r["b_gateway"]),
           f"  ({data.window_rows} rows: user {data.user_id}, {data.window[0]}..{data.window[1]})",
           verdict("b", f"gateway/direct = {v['b']['ratio']:.0%}"), line]
    for kind, what in (("monthly", f"{y}-{m:02d}, {data.month_rows:,} rows"),
                       ("yearly", f"{data.year}, {data.year_rows:,} rows")):
        out += [fmt_row(f"(c) legacy {kind} (fetch+sum)", r[f"c_{kind}_legacy"]),
                fmt_row(f"(c) gateway {kind} dashboard", r[f"c_{kind}_gateway"]),
                f"  ({what}) gateway/legacy = {v['c'][kind]['ratio']:,.1f}x"]
    out += [verdict("c", f"min gateway/legacy = {v['c']['ratio']:,.1f}x, p95 "
                          f"{v['c']['monthly']['p95_ms']:.1f} / {v['c']['yearly']['p95_ms']:.1f} ms"),
            line,
            fmt_row("(d) /api/categories alone", r["a_gateway"]),
            fmt_row("(d) /api/categories, login storm", r["d_gateway_storm"]),
            fmt_row("(d) the storm's logins", r["d_logins"]),
            verdict("d", f"storm/alone = {v['d']['ratio']:.0%}, p95 {v['d']['p95_ms']:.1f} ms"),
            "  (wrk: HTTP load generator; asyncio: aiohttp clients in bench.py, for the legacy "
            "paging loop and the logins)"]
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
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark the gateway against direct PostgREST in one run and print "
                    "the ratios (see the README, Performance).",
        epilog=("examples:\n"
                "  ./scripts/dev start && scripts/bench.py      the full run (~3 minutes)\n"
                "  scripts/bench.py --quick                     smoke run, a few seconds per case\n"
                "  scripts/bench.py --workers 1 --duration 20   other server settings\n\n"
                "Settings (SUPABASE_URL, keys, DATABASE_URL, JWT_SECRET) come from the\n"
                "environment or .env, exactly as the app reads them."))
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: 2s per case, 1s warm-up, 5k expenses; for the test suite")
    parser.add_argument("--duration", type=float, help="seconds per case (default 10; quick 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per case, not measured "
                                                      "(default 2; quick 1)")
    parser.add_argument("--connections", type=int, default=16,
                        help="concurrent connections/clients in every case (default 16)")
    parser.add_argument("--storm", type=int, default=16,
                        help="concurrent login clients in case (d) (default 16)")
    parser.add_argument("--workers", type=int,
                        help="gunicorn workers (default: WEB_CONCURRENCY or gunicorn.conf.py's 2)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--expenses", type=int,
                        help="seed up to this many expenses first (default 100000; quick 5000)")
    parser.add_argument("--no-seed", action="store_true", help="use the data as it is")
    parser.add_argument("--no-start", action="store_true",
                        help="fail instead of running `scripts/dev start` when the stack is down")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless every target (a)-(d) held")
    parser.add_argument("--out", type=Path, default=OUT_DIR,
                        help="folder for the JSON results and the API log (default .bench/)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.expenses = args.expenses if args.expenses is not None else \
        (5_000 if args.quick else 100_000)
    if args.duration < 1 or args.connections < 1 or args.storm < 1:
        parser.error("--duration must be at least 1 and the counts at least 1")
    return args


def run(args: argparse.Namespace) -> int:
    started = dt.datetime.now().astimezone()
    load_before = os.getloadavg()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    wrk_bin = ensure_wrk()
    stack = load_stack(start_if_down=not args.no_start)
    say(f"stack: {stack.supabase_url} (PostgREST answers)")
    if not args.no_seed:
        seed(args.expenses)
    data = choose_data(stack.dsn)
    clear_login_limits(stack.dsn)

    log_path = args.out / f"api-{stamp}.log"
    # The API logs one JSON line per request (as in production); to a file here.
    server = ApiServer(args.workers, log_path, {})
    say(f"API: {' '.join(server.command[1:])} with {server.workers} worker(s) on {server.base}")
    try:
        server.wait_ready()
        token = login(server.base)
        sizes = check_equivalence(server.base, stack, token, data)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write(WRK_LUA)
        try:
            wrk = Wrk(wrk_bin, args.connections, args.wrk_threads, Path(lua.name))
            results = asyncio.run(run_cases(args, server.base, stack, token, data, wrk))
        finally:
            os.unlink(lua.name)
    finally:
        server.stop()

    v = verdicts(results)
    meta = {"started": started.isoformat(timespec="seconds"), "machine": machine(),
            "connections": args.connections, "duration_s": args.duration,
            "warmup_s": args.warmup, "workers": server.workers, "quick": args.quick,
            "storm_clients": args.storm, "wrk_threads": args.wrk_threads,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "supabase_url": stack.supabase_url, "api_log": str(log_path.relative_to(ROOT))
            if log_path.is_relative_to(ROOT) else str(log_path)}
    report = table(results, v, data, meta)
    print()
    print(report)
    payload = {"meta": meta, "data": asdict(data), "checked": sizes, "verdicts": v,
               "targets": TARGETS, "results": {k: asdict(x) for k, x in results.items()},
               "table": report}
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
