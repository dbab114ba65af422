"""Why a process scores what it scores, and whom the killer would consider.

``explain()`` walks the era's badness formula for one task step by step, with the values that went
in; ``rank()`` lists the killer's candidates in its own order with each one's points, or the reason
it was passed over (``OomKiller.rank``: the killer's own definition of a candidate).  Both only
read the machine.  Their results are held equal to ``oom_score`` and to ``select_bad_process()`` by
the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernel.badness import legacy_badness, modern_oom_score
from .killer import Candidate
from .machine import Machine
from .task import PAGE_SIZE, Task


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
    why = m.killer.unkillable_reason(t)
    if why or mm is None:
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
    score = legacy_badness(m.killer.badness_inputs(p, current_mems), m.era.badness_adj_first, trace)
    children = iter([c for c in p.children if c.mm is not None and c.mm is not p.mm])
    steps = []
    for what, points in trace:
        if what.startswith("+ child:"):  # name the child the step counted (same order as children_vm)
            c = next(children)
            who = f"{c.tgid} ({c.comm})" if c.is_leader else f"{c.tgid}'s thread {c.tid} ({c.comm})"
            what = what.replace("+ child:", f"+ child {who}:", 1)
        steps.append(Step(what, points))
    return steps, score


def rank(m: Machine, current_mems: frozenset[int] | None = None) -> tuple[list[Candidate], Task | None]:
    """The killer's candidates in its walking order, and whom it would choose (``oom --dry-run``)."""
    sel = m.killer.select(current_mems)
    return m.killer.rank(current_mems), sel[0] if sel else None
