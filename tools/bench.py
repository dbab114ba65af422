#!/usr/bin/env python3
"""Benchmark fakeproc against the real /proc, in the same run.

Measures, per operation, one client looping on:
  - read:  open + read + close of PID/oom_score
  - write: open + write("0") + close of PID/oom_adj
through a fresh fakeproc mount and through the machine's real /proc (a
throwaway `sleep` as the target), and prints µs/op, ops/s and the ratio
fakeproc / real.  Only ratios mean anything on a noisy machine.

    tools/bench.py [--seconds 3] [--kernel 2.6.32] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

FAKEPROC = [sys.executable, "-m", "fakeproc"]


def loop_read(path: str, seconds: float) -> tuple[int, float]:
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(100):
            fd = os.open(path, os.O_RDONLY)
            os.read(fd, 64)
            os.close(fd)
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n, now - t0


def loop_write(path: str, seconds: float, payload: bytes = b"0") -> tuple[int, float]:
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(100):
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, payload)
            os.close(fd)
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n, now - t0


def measure(root: str, pid: int, seconds: float) -> dict[str, float]:
    out = {}
    for name, fn, f in (("read oom_score", loop_read, "oom_score"), ("write oom_adj", loop_write, "oom_adj")):
        fn(f"{root}/{pid}/{f}", min(0.2, seconds))  # warm up
        n, dt = fn(f"{root}/{pid}/{f}", seconds)
        out[name] = dt / n * 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    ap.add_argument("--kernel", default="2.6.32", help="era of the fakeproc mount")
    ap.add_argument("--quick", action="store_true", help="0.3 s per measurement (smoke test)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = ap.parse_args()
    seconds = 0.3 if a.quick else a.seconds

    base = tempfile.mkdtemp(prefix="fakeproc-bench-")
    mp = os.path.join(base, "mnt")
    r = subprocess.run(FAKEPROC + ["mount", mp, "--background", "--kernel", a.kernel, "--log",
                                   os.path.join(base, "daemon.log")], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return 1
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        pid = int(subprocess.run(FAKEPROC + ["ctl", "-m", mp, "fork", "1"], capture_output=True, text=True,
                                 check=True).stdout.split()[-1])
        real = measure("/proc", sleeper.pid, seconds)
        fake = measure(mp, pid, seconds)
    finally:
        sleeper.kill()
        subprocess.run(FAKEPROC + ["umount", mp], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    rows = {op: {"real_us": real[op], "fakeproc_us": fake[op], "ratio": fake[op] / real[op]} for op in real}
    if a.json:
        print(json.dumps({"seconds": seconds, "kernel": a.kernel, "results": rows}))
        return 0
    print(f"{'operation':<16} {'real /proc':>12} {'fakeproc':>12} {'ratio':>8}   (µs per open+op+close, "
          f"{seconds:g} s each)")
    for op, v in rows.items():
        print(f"{op:<16} {v['real_us']:>10.1f}µs {v['fakeproc_us']:>10.1f}µs {v['ratio']:>7.1f}x   "
              f"({1e6 / v['fakeproc_us']:,.0f} ops/s through fakeproc)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
