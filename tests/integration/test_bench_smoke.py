"""scripts/bench.py --quick runs end to end against the test stack, so the benchmark
cannot rot. Timings are not asserted here: the suite shares the machine with other work;
the targets are checked by the full run (README, Performance)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_bench_quick_prints_the_table_and_writes_the_json(tmp_path):
    env = {**os.environ, "BENCH_NO_REEXEC": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--no-start",
         "--duration", "1", "--warmup", "0", "--expenses", "2000", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for row in ("(a) gateway /api/categories", "(b) gateway /api/expenses (JWT)",
                "(c) gateway monthly dashboard", "(c) legacy yearly (fetch+sum)",
                "(d) /api/categories, login storm", "gateway/direct = "):
        assert row in proc.stdout
    result = json.loads((tmp_path / "latest.json").read_text())
    assert set(result["results"]) == {
        "a_direct", "a_gateway", "b_direct", "b_gateway", "c_monthly_gateway",
        "c_monthly_legacy", "c_yearly_gateway", "c_yearly_legacy", "d_gateway_storm",
        "d_logins"}
    assert all(r["requests"] > 0 for r in result["results"].values())
    assert set(result["verdicts"]) == {"a", "b", "c", "d"}
