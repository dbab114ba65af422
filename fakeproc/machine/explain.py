"""Why a process scores what it scores, and whom the killer would consider.

``explain()`` walks the era's badness formula for one task step by step,
with the values that went in; ``rank()`` lists the killer's candidates in
its own order with each one's points, or the reason it was skipped.  Both
only read the machine.  Their results are held equal to ``oom_score`` and
to ``select_bad_process()`` by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..kernel.badness import OOM_DISABLE, legacy_badness, modern_oom_score
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
    # mm/oom_kill.c badness() of 2.6.31-rc, 2.6.31, 2.6.32: the specification itself, traced
    trace: list[tuple[str, int]] = []
    score = legacy_badness(m.badness_inputs(p, current_mems), m.era.badness_adj_first, trace)
    children = iter([c for c in (p.children if p.is_leader else []) if c.mm is not None and c.mm is not p.mm])
    steps = []
    for what, points in trace:
        if what.startswith("+ child:"):  # name the child the step counted (same order as children_vm)
            c = next(children)
            what = what.replace("+ child:", f"+ child {c.tgid} ({c.comm}):", 1)
        steps.append(Step(what, points))
    return steps, score


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
