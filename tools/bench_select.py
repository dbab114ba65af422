#!/usr/bin/env python3
"""Time one OOM selection (select_bad_process) over N simulated processes, per era.

Prints the inlined loop the killer uses and the per-task reference
(one badness() call per candidate) in the same run, and the model's memory
per process.  Ratios are what count on a noisy machine.

    tools/bench_select.py [-n 100000] [-n 1000000]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fakeproc.kernel.eras import ERAS  # noqa: E402
from fakeproc.machine import Machine  # noqa: E402


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def build(era: str, n: int) -> Machine:
    m = Machine(ERAS[era], ram=24 << 30, uptime=86400)
    m.spawn("init", pid=1)
    for i in range(n):
        p = m.fork(1, comm="worker")
        p.mm.total_vm = 1000 + i % 5000
        p.mm.rss_anon = 500 + (i * 7) % 3000
        p.utime = i % 100000
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, action="append", help="number of processes (repeatable; default 100000)")
    a = ap.parse_args()
    print(f"# {os.uname().release}, {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}")
    print(f"{'era':10} {'processes':>10} {'fast':>9} {'reference':>10} {'ratio':>6} {'bytes/process':>14}")
    for n in a.n or [100_000]:
        for era in ERAS:
            gc.collect()
            before = rss_kib()
            m = build(era, n)
            per_process = (rss_kib() - before) * 1024 / n
            t0 = time.perf_counter()
            fast = m.select_bad_process()
            t_fast = time.perf_counter() - t0
            t0 = time.perf_counter()
            ref = m.select_bad_process_reference()
            t_ref = time.perf_counter() - t0
            assert (fast[0].tid, fast[1]) == (ref[0].tid, ref[1]), "the two selections disagree"
            print(f"{era:10} {n:>10} {t_fast * 1000:>7.0f}ms {t_ref * 1000:>8.0f}ms {t_ref / t_fast:>5.1f}x "
                  f"{per_process:>14.0f}")
            del m
    return 0


if __name__ == "__main__":
    sys.exit(main())
