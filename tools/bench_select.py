#!/usr/bin/env python3
"""Time one OOM selection (select_bad_process) over N simulated processes, per era.

For each era, in the same run:

* cold: the first selection, which scores every candidate (the per-task
  scores are then cached, see ``Scored`` in machine/task.py);
* warm: a selection after a few random changes made through the machine's
  API (memory, cpu time, oom_adj, a fork, an exit, a second of clock), which
  scores only what the changes touched;
* cpuset: a selection for an allocating task in cpuset node 0 (as an OOM from
  memory pressure passes), after ones with no cpuset (as the ``oom`` verb);
  every process here is in node 0, so no score changes;
* expiry: a selection after the clock passed the uptime at which every
  legacy score changes (here all processes started together, 1024 s of run
  time later int_sqrt(int_sqrt(run time >> 10)) becomes 1): the worst case,
  every candidate's score is recomputed (6.x scores do not depend on the clock);
* rescore: a selection after ``forget_scores()``, which forgets every cached
  score: the full cost of scoring every candidate, as cold, but with the
  memory of the cache already allocated;
* reference: the per-task specification (one badness() call per candidate)
  on the same state, checked equal to the warm choice;
* the model's memory per process, after building it and after the first
  selection filled the cache.

Ratios are what count on a noisy machine.

    tools/bench_select.py [-n 100000] [-n 1000000] [--no-reference]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fakeproc.kernel.eras import ERAS  # noqa: E402
from fakeproc.machine import Machine, MachineError  # noqa: E402
from fakeproc.machine.task import NODE0  # noqa: E402


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
    m.forget_scores()  # a full re-scoring: the honest cost of every score computed again
    return m


def mutate(m: Machine, rng: random.Random, count: int = 10) -> None:
    """A few changes of the kinds a daemon sees between two OOMs."""
    pids = list(m.processes)
    for _ in range(count):
        pid = rng.choice(pids[1:])
        if pid not in m.processes:
            continue
        what = rng.randrange(6)
        try:
            if what == 0:
                m.set_memory(pid, total_vm=rng.randrange(1, 10_000), rss_anon=rng.randrange(1, 5_000))
            elif what == 1:
                m.charge_cpu(pid, rng.random() * 100)
            elif what == 2:
                m.store_adj(m.process(pid), rng.randrange(-1000, 1001) if m.era.has_score_adj else
                            rng.randrange(-16, 16))
            elif what == 3:
                m.fork(pid)
            elif what == 4:
                m.exit(pid)
            else:
                m.grow(pid, rng.randrange(1, 64) << 20)
        except MachineError:
            pass
    m.tick(1)


def timed(f, *args):
    t0 = time.perf_counter()
    r = f(*args)
    return r, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, action="append", help="number of processes (repeatable; default 100000)")
    ap.add_argument("--no-reference", action="store_true", help="skip the (slow) per-task reference")
    a = ap.parse_args()
    rng = random.Random(6)
    print(f"# {os.uname().release}, {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}")
    print(f"{'era':10} {'processes':>10} {'cold':>8} {'warm':>8} {'cpuset':>8} {'expiry':>8} {'rescore':>8} "
          f"{'reference':>10} {'bytes/process':>14} {'+cache':>7}")
    for n in a.n or [100_000]:
        for era in ERAS:
            gc.collect()
            before = rss_kib()
            m = build(era, n)
            built = rss_kib()
            cold, t_cold = timed(m.select_bad_process)
            cached = rss_kib()
            mutate(m, rng)
            warm, t_warm = timed(m.select_bad_process)
            ref_txt = "-"
            if not a.no_reference:
                ref = m.select_bad_process_reference()
                assert (warm[0].tid, warm[1]) == (ref[0].tid, ref[1]), "the cached choice is not the reference's"
            in_node0, t_cpuset = timed(m.select_bad_process, NODE0)
            assert in_node0 == warm, "every process is in node 0: the same choice"
            m.select_bad_process()  # back to no cpuset (not timed)
            m.tick(1024)
            expired, t_expiry = timed(m.select_bad_process)
            if not a.no_reference:
                ref, t_ref = timed(m.select_bad_process_reference)
                assert (expired[0].tid, expired[1]) == (ref[0].tid, ref[1]), "after the tick: not the reference's"
                ref_txt = f"{t_ref * 1000:.0f}ms"
            m.forget_scores()
            rescored, t_rescore = timed(m.select_bad_process)
            assert rescored == expired, "rescoring everything: another choice"
            print(f"{era:10} {n:>10} {t_cold * 1000:>6.0f}ms {t_warm * 1000:>6.1f}ms {t_cpuset * 1000:>6.0f}ms "
                  f"{t_expiry * 1000:>6.0f}ms {t_rescore * 1000:>6.0f}ms {ref_txt:>10} "
                  f"{(built - before) * 1024 / n:>14.0f} {(cached - built) * 1024 / n:>7.0f}", flush=True)
            del m, cold, warm, in_node0, expired, rescored
    return 0


if __name__ == "__main__":
    sys.exit(main())
