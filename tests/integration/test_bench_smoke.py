"""scripts/bench.py --quick runs end to end against the test stack, so the benchmark
cannot rot. Timings are not asserted here: the suite shares the machine with other work;
the targets are checked by the full run (docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, count_rows, sql

pytestmark = pytest.mark.slow


def test_bench_quick_prints_the_table_and_writes_the_json(tmp_path):
    env = {**os.environ, "BENCH_NO_REEXEC": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "--quick",
            "--no-start",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--expenses",
            "2000",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for row in (
        "(a) gateway /api/categories",
        "(b) gateway /api/expenses, ",
        "(b) floor (bare ASGI), ",
        "(c) gateway monthly (",
        "(c) gateway monthly (uncached)",
        "(c) floor (bare ASGI) monthly",
        "CPU/request gateway/floor = ",
        "CPU/request uncached/floor = ",
        "(c) PostgREST rpc yearly",
        "(d) /api/categories, login storm",
        "(e) gateway /api/expenses (all)",
        "(e) old path: 1,000-row pages",
        "(f) open loop, 50 req/s offered",
        "gateway/direct = ",
        "p95 reaches 200 ms at",
        # the planning cases (scripts/bench_planning.py) at --quick's sizes
        "(g) PostgREST rpc budget_status",
        "(g) gateway /api/budgets",
        "(h) COPY into expenses, 2,000 rows",
        "(h) gateway import, 2,000 rows",
        "import/COPY time = ",
        "(i) materialize_recurring, 1,000",
        "1,000 occurrences in ",
        "(j) gateway /api/auth/refresh",
    ):
        assert row in proc.stdout
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith("  => ")]
    assert len(verdicts) == 10  # (a)-(j), each ending in OK or MISS
    assert all(line.endswith(("   OK", "   MISS")) for line in verdicts)
    result = json.loads((tmp_path / "latest.json").read_text())
    assert {
        "a_direct",
        "a_gateway",
        "b_direct",
        "b_gateway",
        "b_month_direct",
        "b_month_gateway",
        "b_floor",
        "b_month_floor",
        "c_monthly_direct",
        "c_monthly_gateway",
        "c_monthly_uncached",
        "c_monthly_floor",
        "c_yearly_direct",
        "c_yearly_gateway",
        "c_yearly_uncached",
        "c_yearly_floor",
        "d_gateway_storm",
        "d_logins",
        "e_direct",
        "e_gateway",
        "e_paging",
        "f_50",
        "g_direct",
        "g_gateway",
        "h_copy",
        "h_import",
        "i_recurring",
        "j_refresh",
    } <= set(result["results"])
    assert all(r["requests"] > 0 for r in result["results"].values())
    # every uncached case carries the worker CPU per request of the gateway and of the
    # bare-ASGI floor beside it (scripts/bench_floor.py), and the table prints that column
    assert " CPU ms/req " in proc.stdout
    for key in ("b", "b_month"):
        for side in ("gateway", "floor"):
            assert result["results"][f"{key}_{side}"]["extra"]["cpu_ms_per_request"] > 0
    for kind in ("monthly", "yearly"):
        for side in ("uncached", "floor"):
            assert result["results"][f"c_{kind}_{side}"]["extra"]["cpu_ms_per_request"] > 0
    assert "cpu_ms_per_request" not in result["results"]["b_direct"]["extra"]
    assert result["verdicts"]["b"]["cpu_vs_floor_small"] > 0
    floor_row = next(ln for ln in proc.stdout.splitlines() if "(b) floor (bare ASGI)" in ln)
    assert float(floor_row.split()[-2]) > 0  # the CPU ms/req column, before the tool
    assert set(result["verdicts"]) == set("abcdefghij")
    # (h) and (i) did what they measure: every row imported and copied, every occurrence
    # made once; (j) rotated its refresh tokens without a refusal
    assert result["results"]["h_import"]["extra"]["rows"] == 2000
    assert result["results"]["i_recurring"]["extra"]["occurrences"] == 1000
    assert result["results"]["i_recurring"]["extra"]["distinct"] == 1000
    assert result["verdicts"]["j"]["errors"] == 0 and result["verdicts"]["j"]["ok"]
    assert (
        result["results"]["e_gateway"]["extra"]["bytes"]
        == result["results"]["e_direct"]["extra"]["bytes"]
        > 2
    )
    assert result["results"]["e_gateway"]["extra"]["rss_peak"] > 0
    # (f): the whole machine's CPU per request of the mix (the load generator, the API,
    # PostgREST, Postgres) bounds the rate two cores can serve; the gateway is a part of it
    f = result["verdicts"]["f"]
    assert f["machine_cpu_ms"] > f["gateway_cpu_ms"] > 0
    assert f["ceiling_rps"] == round((os.cpu_count() or 1) * 1000 / f["machine_cpu_ms"])
    assert "cores serve at most ~" in proc.stdout


def test_bench_quick_leaves_the_expenses_as_it_found_them(tmp_path, dsn):
    before = count_rows(dsn, "expenses")
    with sql(dsn) as cur:
        cur.execute("select coalesce(max(id), 0) from public.audit_log")
        audit_before = cur.fetchone()[0]
    rules_before = count_rows(dsn, "recurring_expenses")
    budgets_before = count_rows(dsn, "budgets")
    env = {**os.environ, "BENCH_NO_REEXEC": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "--quick",
            "--no-start",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--expenses",
            str(before + 1500),
            "--f-rates",
            "50",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "--quick: removed the 1,500 expenses this run added" in proc.stdout
    assert count_rows(dsn, "expenses") == before
    # (h) and (i) remove what they add, with its audit rows; (g) its budgets
    assert count_rows(dsn, "recurring_expenses") == rules_before
    assert count_rows(dsn, "budgets") == budgets_before
    with sql(dsn) as cur:  # what stays is the seeding's trail: 1,500 creates and deletes
        cur.execute(
            "select action, count(*) from public.audit_log where id > %s "
            "and action like 'expense.%%' group by 1 order by 1",
            (audit_before,),
        )
        assert cur.fetchall() == [("expense.create", 1500), ("expense.delete", 1500)]
