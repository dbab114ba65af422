"""Why a process scores what it scores, and whom the killer would consider.

``explain()`` walks the era's badness formula for one task step by step,
with the values that went in; ``rank()`` lists the killer's candidates in
its own order with each one's points, or the reason it was skipped.  Both
only read the machine.  Their results are held equal to ``oom_score`` and
to ``select_bad_process()`` by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt
from typing import TYPE_CHECKING

from ..kernel.badness import OOM_DISABLE, SHIFT_HZ, ULONG_MAX, modern_oom_score
from .task import PAGE_SIZE, Task

if TYPE_CHECKING:
    from .machine import Machine


@dataclass(slots=True)
class Step:
    """One line of an explanation: what was done, and the points after it."""

    what: str
    points: int | None


def explain(m: Machine, tid: int, current_mems: frozenset[int] | None = None) -> tuple[list[Step], int]:
    """The steps of ``oom_score`` for ``tid`` in the machine's era; returns (steps, oom_score)."""
    t = m.task(tid)
    if m.era.scoring == "modern":
        return _explain_modern(m, t)
    return _explain_legacy(m, t.leader if m.era.per_process else t, current_mems)


def _explain_modern(m: Machine, t: Task) -> tuple[list[Step], int]:
    # mm/oom_kill.c oom_badness() and fs/proc/base.c proc_oom_score(), 6.x
    steps: list[Step] = []
    mm, adj, total = t.mm, t.signal.oom_score_adj, m.totalpages
    why = ("it is init" if t.tgid == 1 else "it is a kernel thread" if t.kthread else
           "it has no address space" if mm is None else "oom_score_adj is -1000 (OOM_SCORE_ADJ_MIN)"
           if adj == -1000 else "it is a vfork child still sharing its parent's mm" if t.in_vfork else None)
    if why:
        steps.append(Step(f"unkillable: {why}; oom_badness() returns LONG_MIN, oom_score reads 0", None))
        return steps, 0
    points = mm.rss
    steps.append(Step(f"rss: anon {mm.rss_anon} + file {mm.rss_file} + shmem {mm.rss_shmem} pages", points))
    points += mm.swap
    steps.append(Step(f"+ swap entries {mm.swap}", points))
    points += mm.pgtables // PAGE_SIZE
    steps.append(Step(f"+ page tables {mm.pgtables} bytes / {PAGE_SIZE}", points))
    points += adj * (total // 1000)
    steps.append(Step(f"+ oom_score_adj {adj} * (totalpages {total} / 1000)", points))
    score = modern_oom_score(points, total)
    steps.append(Step(f"oom_score = (1000 + {points} * 1000 / {total}) * 2 / 3", score))
    return steps, score


def _explain_legacy(m: Machine, p: Task, current_mems: frozenset[int] | None) -> tuple[list[Step], int]:
    # mm/oom_kill.c badness() of 2.6.31-rc, 2.6.31, 2.6.32
    i = m.badness_inputs(p, current_mems)
    steps: list[Step] = []
    if m.era.badness_adj_first and i.oom_adj == OOM_DISABLE:
        steps.append(Step("oom_adj is -17 (OOM_DISABLE): badness() returns 0 at once", 0))
        return steps, 0
    if not i.has_mm:
        steps.append(Step("no address space (kernel thread): 0", 0))
        return steps, 0
    points = i.total_vm
    steps.append(Step(f"total_vm of its mm: {i.total_vm} pages", points))
    if i.oom_origin:
        steps.append(Step("running swapoff (PF_OOM_ORIGIN): ULONG_MAX", ULONG_MAX))
        return steps, ULONG_MAX
    for c, vm in zip([c for c in (p.children if p.is_leader else []) if c.mm is not None and c.mm is not p.mm],
                     i.children_vm, strict=True):
        points += vm // 2 + 1
        steps.append(Step(f"+ child {c.tgid} ({c.comm}): its own total_vm {vm} / 2 + 1", points))
    shift = SHIFT_HZ[i.hz] + 3
    cpu = i.cpu_jiffies >> shift
    if cpu:
        points //= isqrt(cpu)
        steps.append(Step(f"/ int_sqrt(cpu time {i.cpu_jiffies} jiffies >> {shift} = {cpu}) = {isqrt(cpu)}",
                          points))
    else:
        steps.append(Step(f"cpu time {i.cpu_jiffies} jiffies >> {shift} is 0: no division", points))
    run = (i.uptime_s - i.start_time_s) >> 10 if i.uptime_s >= i.start_time_s else 0
    if run:
        points //= isqrt(isqrt(run))
        steps.append(Step(f"/ int_sqrt(int_sqrt(run time {i.uptime_s - i.start_time_s} s >> 10 = {run})) "
                          f"= {isqrt(isqrt(run))}", points))
    else:
        steps.append(Step("run time >> 10 is 0: no division", points))
    if i.nice > 0:
        points = (points * 2) & ULONG_MAX
        steps.append(Step(f"* 2: niced ({i.nice})", points))
    if i.cap_admin_or_resource:
        points //= 4
        steps.append(Step("/ 4: CAP_SYS_ADMIN or CAP_SYS_RESOURCE", points))
    if i.cap_rawio:
        points //= 4
        steps.append(Step("/ 4: CAP_SYS_RAWIO", points))
    if not i.mems_intersect:
        points //= 8
        steps.append(Step("/ 8: no memory node in common with the allocating task", points))
    if i.oom_adj > 0:
        points = (max(points, 1) << i.oom_adj) & ULONG_MAX
        steps.append(Step(f"<< oom_adj {i.oom_adj}", points))
    elif i.oom_adj < 0:
        points >>= -i.oom_adj
        steps.append(Step(f">> -oom_adj {-i.oom_adj}", points))
    return steps, points


@dataclass(slots=True)
class Candidate:
    """One task the killer looked at: its points, or why it was passed over."""

    task: Task
    points: int | None
    skipped: str | None = None


def rank(m: Machine, current_mems: frozenset[int] | None = None) -> tuple[list[Candidate], Task | None]:
    """The killer's candidates in its walking order, and whom it would choose (``oom --dry-run``)."""
    era = m.era
    out: list[Candidate] = []
    for p in m._candidates():
        why = None
        if p.kthread:
            why = "kernel thread"
        elif p.tgid == 1:
            why = "init"
        elif p.mm is None:
            why = "no address space"
        elif era.scoring == "modern":
            if current_mems is not None and not p.mems & current_mems:
                why = "not in the allocating task's cpuset"
            elif p.signal.oom_score_adj == -1000 and not p.oom_origin:
                why = "oom_score_adj -1000"
            elif p.in_vfork and not p.oom_origin:
                why = "in vfork (shares its parent's mm)"
        elif era.skip_disabled and m.get_adj(p) == OOM_DISABLE:
            why = "oom_adj -17 (OOM_DISABLE)"
        if why:
            out.append(Candidate(p, None, why))
            continue
        if era.scoring == "modern":
            points = (1 << 63) - 1 if p.oom_origin else m.modern_badness(p)
        else:
            points = m.badness(p, current_mems)
        out.append(Candidate(p, points))
    sel = m.select_bad_process(current_mems)
    return out, sel[0] if sel else None
