"""Smoke test of the benchmark: every row is there with sane positive numbers (no timing asserted), the
request counts are counted, and nothing is left mounted or running."""

from __future__ import annotations

import json
import subprocess
import sys

from ..conftest import REPO

ROWS = {"real", "c_floor", "c_floor_fp", "min_fusepy", "min_fusepy_fp", "fakeproc", "fakeproc_raw"}
COMMANDS = {"cat", "echo", "loop read", "loop write"}


def bench_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if "fakeproc-bench-" in line]


def test_bench_quick_reports_every_row():
    before = bench_mounts()
    # --no-install keeps it fast: tools/test installs libfuse3-dev; without it the C rows say "unavailable"
    # small machines for the ps, memory and start-up sections: their sizes are the bench's business, not the test's
    r = subprocess.run([sys.executable, str(REPO / "tools/bench.py"), "--quick", "--json", "--no-install",
                        "--ps-sizes", "200", "--rss-processes", "1000", "--startup-runs", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert {"kernel", "nproc", "date"} <= set(res["machine"])
    rows = res["servers"]
    assert set(rows) == ROWS
    for key, v in rows.items():
        if key.startswith("c_floor") and v["status"].startswith("unavailable"):
            continue
        assert v["status"] == "ok", (key, v["status"])
        for field in ("read_us", "write_us", "read_x_proc", "write_x_proc", "scale2_read", "scale2_write",
                      "scale2_own_read", "scale2_own_write"):
            assert 0 < v[field] < 1e6, (key, field, v[field])
        if key == "real":
            continue
        assert set(v["counts"]) == COMMANDS
        for cmd, counts in v["counts"].items():
            assert counts.get("open") == 1 and counts.get("release") == 1, (key, cmd, counts)
            if key == "fakeproc_raw":  # the kernel keeps the model's names after the warm-up: no LOOKUP
                assert counts.get("lookup", 0) == 0, (key, cmd, counts)
            else:  # a GETATTR at least for each permission check (fusepy's log shows LOOKUPs as getattr)
                assert counts.get("getattr", 0) >= 1, (key, cmd, counts)
        assert v["counts"]["cat"].get("read", 0) >= 1 and v["counts"]["echo"].get("write") == 1, key
    (ps,) = res["ps"]
    assert ps["processes"] == 200 and ps["rows"] >= 200 and 0 < ps["ps_s"] < ps["shell_s"], ps
    assert ps["us_per_process"] > 0
    (real,) = res["ps_real"]  # the same ps over the host's /proc with 200 more processes
    assert real["processes"] == 200 and real["rows"] >= 200 and real["ps_s"] > 0, real
    mem = res["memory"]
    assert mem["processes"] == 1000 and mem["rss_kib"] > 0 and mem["default_rss_kib"] > 0, mem
    assert mem["bytes_per_process"] > 0
    assert len(res["startup"]["runs_s"]) == 1 and res["startup"]["median_s"] > 0
    assert bench_mounts() == before, "the bench left a mount behind"


def test_bench_table_has_every_row():
    r = subprocess.run([sys.executable, str(REPO / "tools/bench.py"), "--seconds", "0.05", "--no-install",
                        "--ps-sizes", "100", "--rss-processes", "0", "--startup-runs", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("fakeproc bench: Linux ") and "nproc" in lines[0]
    for label in ("real /proc", "C floor (libfuse3 mt)", "C floor + fakeproc opts", "min fusepy (nothreads)",
                  "min fusepy + fakeproc opts", "fakeproc (fusepy)", "fakeproc (raw /dev/fuse)"):
        assert any(line.startswith(label) for line in lines), label
    assert any(line.startswith("FUSE callbacks") for line in lines)
    assert any(line.startswith("ps in fakeproc shell") for line in lines)
    assert any(line.startswith("start-up: `fakeproc mount --background`") for line in lines)
