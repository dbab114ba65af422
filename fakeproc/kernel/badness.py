"""OOM badness formulas, as pure integer arithmetic on plain numbers.

The simulated machine gathers the inputs (``LegacyInputs``/``ModernInputs``)
from its tasks; these functions only compute, so a test can check them by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from math import isqrt
from typing import NamedTuple

from .limits import ULONG_MAX, as_long, as_ulong

OOM_DISABLE = -17
OOM_ADJUST_MIN = -16
OOM_ADJUST_MAX = 15
OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000

#: kernel/timeconst: SHIFT_HZ for the HZ values a 2.6 kernel could be built with.
SHIFT_HZ = {100: 7, 250: 8, 300: 8, 1000: 10}


def int_sqrt(x: int) -> int:
    """lib/int_sqrt.c: floor of the square root."""
    return isqrt(x)


class LegacyInputs(NamedTuple):
    """What mm/oom_kill.c badness() reads (2.6.31-rc, 2.6.31, 2.6.32)."""

    oom_adj: int
    has_mm: bool
    total_vm: int  # pages of the task's mm
    oom_origin: bool  # running swapoff (PF_OOM_ORIGIN in 2.6.32)
    children_vm: tuple[int, ...]  # total_vm of each child whose mm is its own
    cpu_jiffies: int  # utime + stime
    uptime_s: int
    start_time_s: int
    nice: int
    cap_admin_or_resource: bool  # CAP_SYS_ADMIN or CAP_SYS_RESOURCE
    cap_rawio: bool
    mems_intersect: bool  # cpuset memory nodes intersect the allocating task's
    hz: int = 250


def legacy_badness(i: LegacyInputs, adj_first: bool = True, trace: list[tuple[str, int]] | None = None) -> int:
    """badness() of 2.6.31/2.6.32, step by step as in mm/oom_kill.c.

    ``adj_first``: 2.6.32 returns 0 for OOM_DISABLE before looking at the mm;
    2.6.31 does not test OOM_DISABLE inside badness() at all (its caller does)
    and lets the final shift by 17 bring small scores to 0.
    ``trace``: if given, each step is appended as (what was done, points after it)
    (``fakeproc explain``).
    """
    def step(what: Callable[[], str], points: int) -> int:  # the text is made only when tracing
        if trace is not None:
            trace.append((what(), points))
        return points

    if adj_first and i.oom_adj == OOM_DISABLE:
        return step(lambda: "oom_adj is -17 (OOM_DISABLE): badness() returns 0 at once", 0)
    if not i.has_mm:
        return step(lambda: "no address space (kernel thread): 0", 0)
    points = step(lambda: f"total_vm of its mm: {i.total_vm} pages", i.total_vm)
    if i.oom_origin:
        return step(lambda: "running swapoff (PF_OOM_ORIGIN): ULONG_MAX", ULONG_MAX)
    for vm in i.children_vm:
        # unsigned long: the sum wraps as the kernel's does
        points = step(partial("+ child: its own total_vm {} / 2 + 1".format, vm), (points + vm // 2 + 1) & ULONG_MAX)
    shift = SHIFT_HZ[i.hz] + 3
    cpu_time = i.cpu_jiffies >> shift
    run_time = (i.uptime_s - i.start_time_s) >> 10 if i.uptime_s >= i.start_time_s else 0
    if cpu_time:
        points = step(lambda: f"/ int_sqrt(cpu time {i.cpu_jiffies} jiffies >> {shift} = {cpu_time}) = "
                      f"{int_sqrt(cpu_time)}", points // int_sqrt(cpu_time))
    else:
        step(lambda: f"cpu time {i.cpu_jiffies} jiffies >> {shift} is 0: no division", points)
    if run_time:
        points = step(lambda: f"/ int_sqrt(int_sqrt(run time {i.uptime_s - i.start_time_s} s >> 10 = {run_time})) = "
                      f"{int_sqrt(int_sqrt(run_time))}", points // int_sqrt(int_sqrt(run_time)))
    else:
        step(lambda: "run time >> 10 is 0: no division", points)
    if i.nice > 0:
        points = step(lambda: f"* 2: niced ({i.nice})", (points * 2) & ULONG_MAX)
    if i.cap_admin_or_resource:
        points = step(lambda: "/ 4: CAP_SYS_ADMIN or CAP_SYS_RESOURCE", points // 4)
    if i.cap_rawio:
        points = step(lambda: "/ 4: CAP_SYS_RAWIO", points // 4)
    if not i.mems_intersect:
        points = step(lambda: "/ 8: no memory node in common with the allocating task", points // 8)
    if i.oom_adj > 0:
        points = step(lambda: f"<< oom_adj {i.oom_adj}", (max(points, 1) << i.oom_adj) & ULONG_MAX)
    elif i.oom_adj < 0:
        points = step(lambda: f">> -oom_adj {-i.oom_adj}", points >> -i.oom_adj)
    return points


class ModernInputs(NamedTuple):
    """What mm/oom_kill.c oom_badness() reads (6.x)."""

    unkillable: bool
    rss: int  # pages: anon + file + shmem
    swap: int  # swap entries (pages)
    pgtables_bytes: int
    oom_score_adj: int
    totalpages: int  # RAM pages + swap pages
    page_size: int = 4096


def modern_badness(i: ModernInputs) -> int | None:
    """oom_badness() of 6.x: None stands for LONG_MIN (unkillable)."""
    if i.unkillable:
        return None
    # get_mm_rss() + swap entries + page tables: unsigned longs, summed into a long; then the adjustment
    points = as_long(as_ulong(i.rss + i.swap + i.pgtables_bytes // i.page_size))
    return as_long(points + i.oom_score_adj * (i.totalpages // 1000))


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def modern_oom_score(badness: int | None, totalpages: int) -> int:
    """fs/proc/base.c proc_oom_score() of 6.x: ``(1000 + points*1000/totalpages)*2/3``."""
    if badness is None:
        return 0
    # long arithmetic, printed with %lu: a long that wrapped prints as a large unsigned number
    points = as_long(1000 + _c_div(as_long(badness * 1000), totalpages))
    return as_ulong(_c_div(as_long(points * 2), 3))
