"""The planning cases of scripts/bench.py (issue 23 item 6, issue 25 item 5): budgets,
import, recurring and token refresh. bench.py runs them after (a)-(f), with its API server,
its wrk and its token, and prints their rows and verdicts in its table; this module only
measures, judges and cleans up after itself.

    (g) GET /api/budgets?year&month   vs the budget_status RPC straight on PostgREST (wrk)
    (h) POST /api/expenses/import of N rows (a CSV in the export's columns; 100,000 in the
        full run)                     vs a plain COPY of the same rows into expenses
    (i) materialize_recurring() over a rule set with N due occurrences (10,000)
    (j) POST /api/auth/refresh, each client rotating its own refresh token (asyncio)

Every row (h) and (i) add is deleted afterwards, with the audit rows their inserts and
those deletes wrote, so a run leaves the data as it found it; (g) removes the budgets it
set, (j) revokes the sessions it opened.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx

from database import connect

PROG = "bench"
CASES = "ghij"
TARGETS = {
    "g": "gateway >= 85% of the budget_status RPC called directly, no failures",
    "h": "import <= 2x the time of a plain COPY of the same rows",
    "i": "10,000 occurrences materialised in < 1 s (each once)",
    "j": "no failures",
}
RECURRING_MONTHS = 100  # (i): each rule has this many monthly occurrences, all due
RECURRING_START = dt.date(2000, 1, 1)
RECURRING_END = dt.date(  # the last occurrence: start + 99 months
    RECURRING_START.year + (RECURRING_MONTHS - 1) // 12, 1 + (RECURRING_MONTHS - 1) % 12, 1
)
RECURRING_UNTIL = dt.date(2024, 12, 31)
RECURRING_DESCRIPTION = "bench recurring"
BUDGET_AMOUNT = 5000
IMPORT_COLUMNS = ("id", "date", "user", "category", "payment_method", "amount", "description")


class PlanningError(Exception):
    """A failure explained in one line (bench.py reports it like its own)."""


@dataclass
class Harness:
    """What bench.py lends these cases: the servers, the tools, the run's settings."""

    api: str  # the gateway under test
    rest: str  # PostgREST, /rest/v1
    dsn: str  # DATABASE_URL (the owner: cleanup, COPY, materialize_recurring)
    service_headers: dict[str, str]  # service key + the session header of `jwt`
    jwt: dict[str, str]  # Authorization of the run's demo login
    user_id: int  # whose login that is
    accounts: list[str]  # demo logins for (j), one per client in turn
    password: str
    month: tuple[int, int]  # (g): the busiest month of the data
    wrk: Any  # bench.Wrk
    result: Callable[..., Any]  # bench.Result
    closed_loop: Callable[..., Awaitable[Any]]  # bench.closed_loop
    say: Callable[[str], None]
    seconds: float
    warmup: float
    connections: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import-rows",
        type=int,
        help="(h): rows of the imported CSV and of the COPY (default 100000; quick 2000)",
    )
    parser.add_argument(
        "--recurring",
        type=int,
        help=f"(i): due occurrences to materialise, a multiple of {RECURRING_MONTHS} "
        "(default 10000; quick 1000)",
    )


def settle_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    args.import_rows = args.import_rows or (2_000 if args.quick else 100_000)
    args.recurring = args.recurring or (1_000 if args.quick else 10_000)
    if args.import_rows < 1 or args.recurring < RECURRING_MONTHS:
        parser.error(
            f"--import-rows must be at least 1 and --recurring at least {RECURRING_MONTHS}"
        )
    if args.recurring % RECURRING_MONTHS:
        parser.error(f"--recurring must be a multiple of {RECURRING_MONTHS}")


@contextmanager
def cursor(dsn: str) -> Iterator[Any]:
    """One transaction on its own connection, committed when the block ends."""
    with connect(dsn, application_name=PROG, timeout=10) as conn, conn, conn.cursor() as cur:
        yield cur


def high_water(dsn: str) -> tuple[int, int]:
    """The highest expense id and audit row id now: what a case adds comes after."""
    with cursor(dsn) as cur:
        cur.execute(
            "select (select coalesce(max(id), 0) from public.expenses), "
            "(select coalesce(max(id), 0) from public.audit_log)"
        )
        return cur.fetchone()


def forget_added(dsn: str, expenses_after: int, audit_after: int) -> int:
    """Delete the expenses added after `expenses_after`, then every audit row written since
    `audit_after` about them (their creation, the recurring note, this deletion)."""
    with cursor(dsn) as cur:
        cur.execute("delete from public.expenses where id > %s", (expenses_after,))
        removed = cur.rowcount
        cur.execute(
            "delete from public.audit_log where id > %s and target_id > %s and action in "
            "('expense.create', 'expense.recurring', 'expense.delete')",
            (audit_after, expenses_after),
        )
        return removed


# --------------------------------------------------------------------------------------
# (g) budgets
# --------------------------------------------------------------------------------------
@contextmanager
def budgets_for(dsn: str, year: int, month: int) -> Iterator[None]:
    """A budget for every category from the month on (where none starts then), removed
    afterwards: the status then has budgets, spending and both joins to show."""
    first = dt.date(year, month, 1)
    with cursor(dsn) as cur:
        cur.execute(
            "insert into public.budgets (category_id, month, amount) "
            "select id, %s, %s from public.categories on conflict do nothing "
            "returning category_id",
            (first, BUDGET_AMOUNT),
        )
        added = [row[0] for row in cur.fetchall()]
    try:
        yield
    finally:
        with cursor(dsn) as cur:
            cur.execute(
                "delete from public.budgets where month = %s and category_id = any(%s)",
                (first, added),
            )


async def budgets(h: Harness, results: dict[str, Any]) -> dict[str, Any]:
    year, month = h.month
    gateway = f"{h.api}/api/budgets?" + urlencode({"year": year, "month": month})
    direct = f"{h.rest}/rpc/budget_status?" + urlencode({"p_year": year, "p_month": month})
    # budget_status returns the domain "application/json": PostgREST's media type handler
    # answers it as it is when asked for that type, as the gateway asks
    direct_headers = {**h.service_headers, "Accept": "application/json"}
    async with httpx.AsyncClient(timeout=30) as client:
        mine = await client.get(gateway, headers=h.jwt)
        theirs = await client.get(direct, headers=direct_headers)
    if mine.status_code != 200 or theirs.status_code != 200 or mine.json() != theirs.json():
        raise PlanningError(
            "/api/budgets and budget_status on PostgREST return different data: "
            f"{mine.status_code} {mine.text[:200]!r} / {theirs.status_code} {theirs.text[:200]!r}"
        )
    categories = len(mine.json())
    h.say(f"(g) budgets of {year}-{month:02d} ({categories} categories): wrk")
    results["g_direct"] = await h.wrk.run("g_direct", direct, h.seconds, direct_headers, h.warmup)
    results["g_gateway"] = await h.wrk.run("g_gateway", gateway, h.seconds, h.jwt, h.warmup)
    return {"categories": categories, "month": f"{year}-{month:02d}"}


# --------------------------------------------------------------------------------------
# (h) import vs COPY
# --------------------------------------------------------------------------------------
def import_rows(dsn: str, count: int, actor_id: int) -> tuple[bytes, bytes, int]:
    """The `count` newest expenses (repeated when there are fewer) as the import's CSV (the
    export's columns, names for references) and as COPY text (ids; recorded by `actor_id`,
    the member whose login imports them, as the import records them)."""
    with cursor(dsn) as cur:
        cur.execute(
            "select e.date::text, u.name, c.name, coalesce(m.name, ''), e.amount::text, "
            "coalesce(e.description, ''), e.user_id, e.category_id, e.payment_method_id "
            "from public.expenses e join public.users u on u.id = e.user_id "
            "join public.categories c on c.id = e.category_id "
            "left join public.payment_methods m on m.id = e.payment_method_id "
            "order by e.id desc limit %s",
            (count,),
        )
        rows = cur.fetchall()
    if not rows:
        raise PlanningError("(h) needs expenses to copy; seed some first")
    rows = (rows * (count // len(rows) + 1))[:count]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(IMPORT_COLUMNS)
    for date, user, category, method, amount, description, *_ in rows:
        writer.writerow(("", date, user, category, method, amount, description))
    copy = io.StringIO()
    for date, _u, _c, _m, amount, description, user_id, category_id, method_id in rows:
        fields = (user_id, category_id, method_id, amount, description or None, date, actor_id)
        copy.write("\t".join(r"\N" if f is None else copy_text(str(f)) for f in fields) + "\n")
    return text.getvalue().encode(), copy.getvalue().encode(), len(rows)


def copy_text(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def added_summary(dsn: str, after: int) -> tuple[int, str]:
    with cursor(dsn) as cur:
        cur.execute(
            "select count(*), coalesce(sum(amount), 0)::text from public.expenses where id > %s",
            (after,),
        )
        return cur.fetchone()


def copy_into_expenses(dsn: str, data: bytes) -> float:
    """A plain COPY of the rows, committed: the time from the first byte to the commit."""
    with connect(dsn, application_name=PROG, timeout=10) as conn:
        with conn.cursor() as cur:
            started = time.perf_counter()
            cur.copy_expert(
                "copy public.expenses (user_id, category_id, payment_method_id, amount, "
                "description, date, created_by) from stdin",
                io.BytesIO(data),
            )
            conn.commit()
            return time.perf_counter() - started


async def import_vs_copy(h: Harness, count: int, results: dict[str, Any]) -> dict[str, Any]:
    csv_body, copy_body, rows = import_rows(h.dsn, count, h.user_id)
    h.say(f"(h) import of {rows:,} rows ({len(csv_body) / 2**20:.1f} MB of CSV) vs COPY")
    expenses_before, audit_before = high_water(h.dsn)
    timeout = aiohttp.ClientTimeout(total=600)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            started = time.perf_counter()
            async with session.post(
                f"{h.api}/api/expenses/import",
                data=csv_body,
                headers={**h.jwt, "Content-Type": "text/csv"},
            ) as response:
                answer = await response.read()
            import_s = time.perf_counter() - started
        if response.status != 201:
            raise PlanningError(f"the import answered {response.status}: {answer[:300]!r}")
        imported = added_summary(h.dsn, expenses_before)
    finally:
        forget_added(h.dsn, expenses_before, audit_before)
    expenses_before, audit_before = high_water(h.dsn)
    try:
        copy_s = copy_into_expenses(h.dsn, copy_body)
        copied = added_summary(h.dsn, expenses_before)
    finally:
        forget_added(h.dsn, expenses_before, audit_before)
    if imported != copied or imported[0] != rows:
        raise PlanningError(f"(h) the import added {imported}, the COPY {copied} (rows, sum)")
    for key, seconds, url in (
        ("h_copy", copy_s, "COPY public.expenses"),
        ("h_import", import_s, f"{h.api}/api/expenses/import"),
    ):
        results[key] = single(h, key, url, seconds, rows=rows, bytes=len(csv_body))
    return {"rows": rows, "csv_bytes": len(csv_body), "sum": imported[1]}


def single(h: Harness, key: str, url: str, seconds: float, **extra: Any) -> Any:
    """One timed operation as a result row: 1 request, its time as every percentile."""
    ms = round(seconds * 1000, 1)
    result = h.result(
        name=key,
        tool="sql" if url.startswith(("COPY", "select")) else "httpx",
        url=url,
        connections=1,
        duration_s=round(seconds, 3),
        requests=1,
        rps=round(1 / seconds, 2) if seconds else 0.0,
        p50_ms=ms,
        p95_ms=ms,
        p99_ms=ms,
        mean_ms=ms,
        max_ms=ms,
    )
    result.extra.update(extra)
    return result


# --------------------------------------------------------------------------------------
# (i) recurring
# --------------------------------------------------------------------------------------
def materialise(h: Harness, occurrences: int, results: dict[str, Any]) -> dict[str, Any]:
    """occurrences / 100 monthly rules of 100 due months each, inserted and materialised in
    one transaction (the API servers' recurring leader cannot see them before), timed from
    the call to its commit; then the rules, their expenses and audit rows go."""
    rules = occurrences // RECURRING_MONTHS
    h.say(f"(i) materialize_recurring: {rules} rules x {RECURRING_MONTHS} months")
    expenses_before, audit_before = high_water(h.dsn)
    rule_ids: list[int] = []
    try:
        with connect(h.dsn, application_name=PROG, timeout=10) as conn:
            with conn.cursor() as cur:
                cur.execute(
                    "insert into public.recurring_expenses (user_id, category_id, amount, "
                    "frequency, start_date, end_date, description) "
                    "select u.ids[1 + g %% cardinality(u.ids)], c.ids[1 + g %% cardinality(c.ids)], "
                    "10 + g, 'monthly', %s, %s, %s "
                    "from generate_series(1, %s) g, "
                    "(select array_agg(id order by id) as ids from public.users) u, "
                    "(select array_agg(id order by id) as ids from public.categories) c "
                    "returning id",
                    (
                        RECURRING_START,
                        RECURRING_END,
                        RECURRING_DESCRIPTION,
                        rules,
                    ),
                )
                rule_ids = [row[0] for row in cur.fetchall()]
                started = time.perf_counter()
                cur.execute("select public.materialize_recurring(%s)", (RECURRING_UNTIL,))
                created = cur.fetchone()[0]
                conn.commit()
                seconds = time.perf_counter() - started
                cur.execute(
                    "select count(*), count(distinct (o.rule_id, o.occurs_on)) "
                    "from public.recurring_occurrences o where o.rule_id = any(%s)",
                    (rule_ids,),
                )
                claimed, distinct = cur.fetchone()
    finally:
        with cursor(h.dsn) as cur:
            cur.execute(
                "delete from public.expenses where id in (select expense_id from "
                "public.recurring_occurrences where rule_id = any(%s))",
                (rule_ids,),
            )
            cur.execute("delete from public.recurring_expenses where id = any(%s)", (rule_ids,))
            cur.execute(
                "delete from public.audit_log where id > %s and target_id > %s and action in "
                "('expense.create', 'expense.recurring', 'expense.delete')",
                (audit_before, expenses_before),
            )
    results["i_recurring"] = single(
        h,
        "i_recurring",
        "select public.materialize_recurring()",
        seconds,
        occurrences=created,
        claimed=claimed,
        distinct=distinct,
        rules=rules,
    )
    return {"occurrences": occurrences, "created": created}


# --------------------------------------------------------------------------------------
# (j) token refresh
# --------------------------------------------------------------------------------------
async def refresh(h: Harness, results: dict[str, Any]) -> dict[str, Any]:
    """Each client logs in once (POST /api/auth/token) and then refreshes back to back,
    presenting the refresh token its previous refresh returned (a spent one presented again
    would end the session: issue 22's rotation)."""
    tokens: list[str] = []
    sessions: list[str] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for index in range(h.connections):  # one at a time: the login limit counts in flight
            response = await client.post(
                f"{h.api}/api/auth/token",
                json={"email": h.accounts[index % len(h.accounts)], "password": h.password},
            )
            if response.status_code != 200:
                raise PlanningError(f"(j) login answered {response.status_code}")
            tokens.append(response.json()["refresh_token"])
            sessions.append(response.json()["access_token"])
    url = f"{h.api}/api/auth/refresh"

    async def call(session: aiohttp.ClientSession, index: int) -> bool | str:
        async with session.post(url, json={"refresh_token": tokens[index]}) as response:
            body = await response.read()
            if response.status != 200:
                return f"http {response.status}"
            tokens[index] = json.loads(body)["refresh_token"]
            return True

    h.say(f"(j) token refresh: {h.connections} clients, {h.seconds:g}s")
    try:
        if h.warmup:
            await h.closed_loop("j_warmup", url, h.connections, h.warmup, call)
        results["j_refresh"] = await h.closed_loop("j_refresh", url, h.connections, h.seconds, call)
    finally:
        async with httpx.AsyncClient(timeout=30) as client:  # the sessions end with the case
            for access in sessions:
                await client.post(
                    f"{h.api}/api/auth/logout", headers={"Authorization": f"Bearer {access}"}
                )
    return {"clients": h.connections}


# --------------------------------------------------------------------------------------
# The cases, their verdicts and their rows of the table
# --------------------------------------------------------------------------------------
async def run_cases(h: Harness, args: argparse.Namespace) -> tuple[dict[str, Any], dict]:
    """(g), (j), (i), (h): the heaviest last, so their dead rows disturb nothing after."""
    results: dict[str, Any] = {}
    year, month = h.month
    notes: dict[str, Any] = {}
    with budgets_for(h.dsn, year, month):
        notes["g"] = await budgets(h, results)
    notes["j"] = await refresh(h, results)
    notes["i"] = await asyncio.to_thread(materialise, h, args.recurring, results)
    notes["h"] = await import_vs_copy(h, args.import_rows, results)
    return results, notes


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def verdicts(r: dict[str, Any]) -> dict[str, dict]:
    g = ratio(r["g_gateway"].rps, r["g_direct"].rps)
    h_ratio = ratio(r["h_import"].duration_s, r["h_copy"].duration_s)
    i = r["i_recurring"]
    occurrences = i.extra["occurrences"]
    per_10k = round(i.duration_s * 10_000 / occurrences, 3) if occurrences else 0.0
    j = r["j_refresh"]
    return {
        "g": {
            "ratio": g,
            "p95_ms": r["g_gateway"].p95_ms,
            "ok": g >= 0.85 and r["g_gateway"].failures == 0 and r["g_direct"].failures == 0,
        },
        "h": {
            "ratio": h_ratio,
            "import_s": r["h_import"].duration_s,
            "copy_s": r["h_copy"].duration_s,
            "rows": r["h_import"].extra["rows"],
            "ok": 0 < h_ratio <= 2.0,
        },
        "i": {
            "seconds": i.duration_s,
            "occurrences": occurrences,
            "seconds_per_10k": per_10k,
            "ok": occurrences
            == i.extra["claimed"]
            == i.extra["distinct"]
            == i.extra["rules"] * RECURRING_MONTHS
            and per_10k < 1.0,
        },
        "j": {
            "rps": j.rps,
            "p95_ms": j.p95_ms,
            "errors": j.failures,
            "ok": j.failures == 0 and j.requests > 0,
        },
    }


def table_rows(
    r: dict[str, Any], v: dict[str, dict], notes: dict[str, Any], fmt_row, line: str
) -> list[str]:
    def verdict(key: str, text: str) -> str:
        return f"  => {text}   target: {TARGETS[key]}   {'OK' if v[key]['ok'] else 'MISS'}"

    h, i = v["h"], v["i"]
    scaled = (
        "" if i["occurrences"] == 10_000 else f" (scaled to 10,000: {i['seconds_per_10k']:.3f} s)"
    )
    return [
        fmt_row("(g) PostgREST rpc budget_status", r["g_direct"]),
        fmt_row("(g) gateway /api/budgets", r["g_gateway"]),
        f"  ({notes['g']['month']}, {notes['g']['categories']} categories) "
        f"gateway/direct = {v['g']['ratio']:.0%}",
        verdict("g", f"gateway/direct = {v['g']['ratio']:.0%}, p95 {v['g']['p95_ms']:.1f} ms"),
        line,
        fmt_row(f"(h) COPY into expenses, {h['rows']:,} rows", r["h_copy"]),
        fmt_row(f"(h) gateway import, {h['rows']:,} rows", r["h_import"]),
        f"  ({notes['h']['csv_bytes'] / 2**20:.1f} MB of CSV; the rows added are deleted "
        f"afterwards) import {h['import_s']:.2f} s, COPY {h['copy_s']:.2f} s",
        verdict("h", f"import/COPY time = {h['ratio']:.2f}x"),
        line,
        fmt_row(f"(i) materialize_recurring, {i['occurrences']:,}", r["i_recurring"]),
        verdict("i", f"{i['occurrences']:,} occurrences in {i['seconds']:.3f} s{scaled}"),
        line,
        fmt_row("(j) gateway /api/auth/refresh", r["j_refresh"]),
        verdict(
            "j",
            f"{v['j']['rps']:,.1f} refreshes/s, p95 {v['j']['p95_ms']:.1f} ms, "
            f"{v['j']['errors']} errors",
        ),
    ]
