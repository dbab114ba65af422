"""Smoke test of the benchmark: it runs, measures both sides, and reports ratios (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO


def test_bench_quick_reports_both_sides():
    r = subprocess.run([sys.executable, str(REPO / "tools/bench.py"), "--quick", "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert set(results) == {"read oom_score", "write oom_adj"}
    for v in results.values():
        assert v["real_us"] > 0 and v["fakeproc_us"] > 0 and v["ratio"] > 0
