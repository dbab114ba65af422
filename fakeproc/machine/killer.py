"""The OOM killer: select_bad_process() and oom_kill_process() of mm/oom_kill.c, era by era.

The era decides the candidates (threads or processes), who is passed over, how ties go, whether a
child dies first, when a chosen task is refused, who dies along with the victim, and the log lines.
Where the real kernel would retry forever (2.6.31's livelock), the simulation stops at the first
repeated choice and logs what the kernel would have done.

Who is a candidate is written once, in :meth:`OomKiller.skip_reason` (6.x's "unkillable" part of it
in :meth:`OomKiller.unkillable_reason`, which ``oom_score`` reads too); the selection, ``explain``,
``oom --dry-run`` and ``oom_score`` all ask it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from math import isqrt
from operator import attrgetter
from typing import NamedTuple, Protocol

from ..kernel.badness import (
    OOM_DISABLE,
    OOM_SCORE_ADJ_MIN,
    SHIFT_HZ,
    ULONG_MAX,
    LegacyInputs,
    ModernInputs,
    legacy_badness,
    modern_badness,
)
from ..kernel.caps import CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_SYS_RESOURCE
from ..kernel.eras import AdjHome, Era, Refusal, Sharers
from .clock import Clock
from .halt import Halt
from .journal import Journal
from .klog import KernelLog
from .memory import Memory
from .sysctls import VmSysctls
from .table import ProcessTable
from .task import NEVER, PAGE_SIZE, STALE, Caller, Task

LONG_MAX = (1 << 63) - 1
LONG_MIN = -(1 << 63)
#: distinct start times whose run-time root one selection remembers (a list of tasks started
#: together shares one entry; tasks all started apart would each compute their own anyway)
ROOT_MEMO_SIZE = 4096


def _as_signed_long(v: int) -> int:
    """``%li`` of an unsigned long: ULONG_MAX prints as -1."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _run_root(uptime: int, start_time: float) -> tuple[int, int]:
    """badness()'s int_sqrt(int_sqrt(run time >> 10)) for a task started at ``start_time`` (1 when
    the run time is under 1024 s: badness() does not divide), and the uptime at which it changes:
    when run time >> 10 reaches the next fourth power."""
    start = int(start_time)
    run = (uptime - start) >> 10 if uptime >= start else 0
    if not run:
        return 1, start + 1024
    root = isqrt(isqrt(run))
    return root, start + ((root + 1) ** 4 << 10)


#: Where each era keeps a task's value (AdjHome): the value's getter
ADJ_OF: dict[AdjHome, Callable[[Task], int]] = {
    AdjHome.TASK: attrgetter("_oom_adj"),  # 2.6.30/2.6.31: task->oomkilladj
    AdjHome.MM: lambda t: t._mm._oom_adj if t._mm is not None else OOM_DISABLE,  # 2.6.31-rc: mm->oom_adj
    AdjHome.SIGNAL: attrgetter("_signal._oom_adj"),  # 2.6.32: signal->oom_adj
    AdjHome.SIGNAL_SCORE_ADJ: attrgetter("_signal._oom_score_adj"),  # 6.x: signal->oom_score_adj
}


SkipRule = Callable[[Task, "frozenset[int] | None"], "str | None"]


def skip_rule(era: Era, unkillable: Callable[[Task], str | None]) -> SkipRule:
    """The era's select_bad_process() filter: who is passed over, and why (None: a candidate it scores).

    One closure per era, made once, with nothing left to ask of the era at each call: the selection asks
    it of every candidate whose score is stale (a million of them in a cold selection).
    """
    if era.scoring == "modern":
        def skip_6_x(p: Task, current_mems: frozenset[int] | None = None) -> str | None:
            # oom_evaluate_task(): oom_unkillable_task(), oom_cpuset_eligible(), then a task running
            # swapoff is taken at LONG_MAX, else oom_badness() at LONG_MIN is passed over
            if p.tgid == 1:
                return "init"
            if p._kthread:
                return "kernel thread"
            if current_mems is not None and not p._mems & current_mems:
                return "not in the allocating task's cpuset"
            if p._oom_origin and p._mm is not None:
                return None
            return unkillable(p)

        return skip_6_x
    disabled = ADJ_OF[era.adj_home] if era.skip_disabled else None
    # is_global_init() of 2.6.31/2.6.32 is ``tsk->pid == 1``: the thread id.  2.6.32 walks leaders only
    # (for_each_process()), but 2.6.31*'s do_each_thread() also meets init's other threads, and they are
    # candidates (spec §7)
    init_id = attrgetter("tgid") if era.per_process else attrgetter("tid")

    def skip_legacy(p: Task, current_mems: frozenset[int] | None = None) -> str | None:
        # 2.6.31*/2.6.32 select_bad_process(): no mm (kernel threads, a released mm), the init task, then
        # (2.6.31: the thread's, 2.6.32: the process's value) OOM_DISABLE
        if p._mm is None:
            return "kernel thread" if p._kthread else "no address space"
        if init_id(p) == 1:
            return "init"
        if disabled is not None and disabled(p) == OOM_DISABLE:
            return "oom_adj -17 (OOM_DISABLE)"
        return None

    return skip_legacy


class OomResult(NamedTuple):
    """What one call of the OOM killer did."""

    killed: list[Task]  # every thread that died
    victim: Task | None  # the task the report names as killed
    livelock: bool  # the kernel would have looped forever
    nothing_killable: bool


class OomObserver(Protocol):
    def before_oom(self) -> None: ...
    def after_oom(self, result: OomResult) -> None: ...


@dataclass(slots=True)
class Candidate:
    """One task the killer looked at: its points, or why it was passed over."""

    task: Task
    points: int | None
    skipped: str | None = None


class OomKiller:
    def __init__(self, era: Era, table: ProcessTable, memory: Memory, clock: Clock, klog: KernelLog,
                 journal: Journal, sysctl: VmSysctls, halt: Halt) -> None:
        self.era = era
        self.sysctl = sysctl
        self.halt = halt
        self.table = table
        self.memory = memory
        self.clock = clock
        self.klog = klog
        self.journal = journal
        self.observers: list[OomObserver] = []  # told before and after each OOM kill (run mode)
        # what the cached scores were computed for, the cpuset and the uptime of the last selection
        self._key: tuple[object, ...] | None = None
        self._mems: frozenset[int] | None = None
        self._uptime = 0
        #: the era's value of a task (oom_adj -17..15, or oom_score_adj -1000..1000 in 6.x), where it lives
        self.adj: Callable[[Task], int] = ADJ_OF[era.adj_home]
        self._modern = era.scoring == "modern"
        #: skip_reason(p, current_mems): why select_bad_process() passes over candidate ``p`` in this era (None:
        #: it is scored).  The one definition of a candidate, per era; the selection's loops and rank()
        #: (explain, oom --dry-run, the reference selection) all ask it
        self.skip_reason: SkipRule = skip_rule(era, self.unkillable_reason)

    # ------------------------------------------------------------- who is a candidate

    def set_domain(self, outside: Callable[[Task], str | None] | None) -> None:
        """Limit the candidates to a domain, as a memory cgroup's OOM scans only its cgroup's tasks
        (mem_cgroup_scan_tasks()): ``outside(task)`` names why a task is not in it (None: it is).  Run mode
        uses it to consider only the run's processes.  None: every task, the global OOM's view."""
        base = skip_rule(self.era, self.unkillable_reason)
        if outside is None:
            self.skip_reason = base
        else:
            def skip_outside(p: Task, current_mems: frozenset[int] | None = None) -> str | None:
                return base(p, current_mems) or outside(p)

            self.skip_reason = skip_outside
        self.forget_all()

    def candidates(self) -> Iterator[Task]:
        """for_each_process() (leaders) or do_each_thread() (every thread), in creation order."""
        if self.era.per_process:
            return self.table.iter_processes()
        return iter([th for p in self.table.iter_processes() for th in list(p.signal.threads)])

    def unkillable_reason(self, p: Task) -> str | None:
        """6.x: why oom_badness() returns LONG_MIN for ``p`` (oom_score then reads 0), or None.

        oom_unkillable_task() (init, kernel threads), find_lock_task_mm() finding no mm, oom_score_adj
        at OOM_SCORE_ADJ_MIN, and in_vfork().  Legacy eras: only a task without an mm.
        """
        if not self._modern:
            return "no address space" if p._mm is None else None
        if p.tgid == 1:
            return "init"
        if p._kthread:
            return "kernel thread"
        mm = p._mm
        if mm is None:
            return "no address space"
        if p._signal._oom_score_adj == OOM_SCORE_ADJ_MIN:
            return "oom_score_adj -1000"
        if p._vfork_parent is not None:  # in_vfork(): vfork_done set and the *current* real parent's mm
            rp = p._parent
            if rp is not None and rp._mm is mm:
                return "in vfork (shares its parent's mm)"
        return None

    def points(self, p: Task, current_mems: frozenset[int] | None = None) -> int:
        """The points of a candidate that is not skipped: badness() (legacy), oom_badness() (6.x; a task
        running swapoff: LONG_MAX)."""
        if self.era.scoring == "modern":
            if p.oom_origin:
                return LONG_MAX
            b = self.modern_badness(p)
            assert b is not None
            return b
        return self.badness(p, current_mems)

    # ------------------------------------------------------------- the formulas, per task

    def badness_inputs(self, p: Task, current_mems: frozenset[int] | None = None) -> LegacyInputs:
        """Gather what legacy badness() reads: the thread group's cpu time in 2.6.32, the thread's before."""
        mm = p.mm
        if self.era.per_process:  # thread_group_cputime(): an unsigned long sum (it wraps)
            cpu = (p.signal.dead_cputime + sum(th.utime + th.stime for th in p.signal.threads)) & ULONG_MAX
        else:
            cpu = (p.utime + p.stime) & ULONG_MAX
        children = p.children  # the task's own list: threads of children included, one entry each (§5.1)
        return LegacyInputs(
            oom_adj=self.adj(p),
            has_mm=mm is not None,
            total_vm=mm.total_vm if mm is not None else 0,
            oom_origin=p.oom_origin,
            children_vm=tuple(c.mm.total_vm for c in children if c.mm is not None and c.mm is not mm),
            cpu_jiffies=cpu,
            uptime_s=int(self.clock.uptime),
            start_time_s=int(p.start_time),
            nice=p.nice,
            cap_admin_or_resource=p.has_cap(CAP_SYS_ADMIN) or p.has_cap(CAP_SYS_RESOURCE),
            cap_rawio=p.has_cap(CAP_SYS_RAWIO),
            mems_intersect=current_mems is None or bool(p.mems & current_mems),
            hz=self.clock.hz,
        )

    def badness(self, p: Task, current_mems: frozenset[int] | None = None) -> int:
        """Legacy badness() of ``p``, as the specification computes it (kernel.badness)."""
        return legacy_badness(self.badness_inputs(p, current_mems), adj_first=self.era.badness_adj_first)

    def modern_badness(self, t: Task) -> int | None:
        """6.x oom_badness(): None is LONG_MIN (unkillable); PF_OOM_ORIGIN is the selection's business."""
        mm = t.mm
        return modern_badness(ModernInputs(
            unkillable=self.unkillable_reason(t) is not None,
            rss=mm.rss if mm else 0, swap=mm.swap if mm else 0, pgtables_bytes=mm.pgtables if mm else 0,
            oom_score_adj=t.signal.oom_score_adj, totalpages=self.memory.totalpages))

    # ------------------------------------------------------------ the cache

    # select_bad_process() keeps each candidate's score in Task.oom_points, valid while
    # int(uptime) < Task.oom_until.  Every field a score reads forgets the scores that read it when it
    # is set (task.py, Scored), so the cache is true by construction; what remains to check here is what
    # no field holds: the era, HZ, the memory size, the clock (a score's run-time root) and the cpuset
    # of the allocating task.

    def forget_all(self) -> None:
        """Forget every cached score (a scenario was loaded, or something changed wholesale)."""
        self._key = None

    def _revalidate(self, current_mems: frozenset[int] | None) -> int:
        """The uptime below which a cached score stays valid in this selection: NEVER for none.

        A score is only good for the era, HZ and memory size it was computed with, and for an uptime
        not before the one it was computed at (run mode sets the clock from the real one, which could
        be stepped back).  Another cpuset forgets only the scores it changes.
        """
        uptime = int(self.clock.uptime)
        key = (self.era, self.clock.hz, self.memory.totalpages)
        if key != self._key or uptime < self._uptime or uptime < 0:
            self._key = key
            self._mems = current_mems
            self._uptime = uptime
            return NEVER
        self._uptime = uptime
        if current_mems != self._mems:
            self._change_cpuset(current_mems)
        return uptime

    def _change_cpuset(self, current_mems: frozenset[int] | None) -> None:
        """The allocating task's cpuset differs from the last selection's: forget the scores it changes.

        A task's mems_allowed enters its score only through one question, whether it has a node in
        common with the allocating task's (``None``: no cpuset, every task has): legacy badness()
        divides by 8 when not, 6.x skips the task.  Where the two cpusets give the same answer the
        score is the same, so only the tasks whose answer differs are scored again; the answer is asked
        once per distinct mems set (usually one object, NODE0, shared by all).
        """
        old, self._mems = self._mems, current_mems
        tasks = self.table.tasks.values()
        differ = {ms for ms in set(map(attrgetter("_mems"), tasks))
                  if (old is None or bool(ms & old)) != (current_mems is None or bool(ms & current_mems))}
        if differ:
            for t in tasks:
                if t._mems in differ:
                    t.oom_until = STALE

    # ---------------------------------------------------------------- choice

    def select(self, current_mems: frozenset[int] | None = None) -> tuple[Task, int] | None:
        """select_bad_process(): the era's choice over every candidate.

        The hot loops below compute, inline, exactly what :meth:`points` computes for one task
        (the readable specification, used by ``oom_score`` reads and by :meth:`select_reference`;
        a property test holds the two equal), and only for the candidates whose cached score is
        stale: a selection after a few changes costs one pass over cached integers.  Whether a
        task is a candidate at all is :meth:`skip_reason`'s answer, asked once per stale score.
        """
        valid_below = self._revalidate(current_mems)
        if self.era.scoring == "modern":
            return self._select_modern(current_mems, valid_below)
        return self._select_legacy(current_mems, valid_below)

    def _select_modern(self, current_mems: frozenset[int] | None, valid_below: int) -> tuple[Task, int] | None:
        # 6.x oom_evaluate_task() + oom_badness(), for_each_process(); no score depends on the clock
        adj_unit = self.memory.totalpages // 1000
        page_size = PAGE_SIZE
        skip = self.skip_reason
        chosen: Task | None = None
        best = 0
        points: int | None
        for p in self.table.processes.values():
            if p.oom_until > valid_below:
                points = p.oom_points
            else:
                if skip(p, current_mems) is not None:
                    points = None  # never chosen
                elif p._oom_origin:
                    points = LONG_MAX
                else:
                    mm = p._mm
                    assert mm is not None
                    points = (mm._rss_anon + mm._rss_file + mm._rss_shmem + mm._swap + mm._pgtables // page_size
                              + p._signal._oom_score_adj * adj_unit)
                    if not LONG_MIN < points <= LONG_MAX:  # oom_badness()'s unsigned long and long sums wrap
                        points = modern_badness(ModernInputs(
                            False, mm._rss_anon + mm._rss_file + mm._rss_shmem, mm._swap, mm._pgtables,
                            p._signal._oom_score_adj, self.memory.totalpages))
                p.oom_points = points
                p.oom_until = NEVER
            if points is None:
                continue
            if chosen is None or points >= best:  # 6.x: the last of equal scores wins
                chosen, best = p, points
        return None if chosen is None else (chosen, best)

    def _select_legacy(self, current_mems: frozenset[int] | None, valid_below: int) -> tuple[Task, int] | None:
        # 2.6.31*/2.6.32 select_bad_process() + badness(), with the era's rules.
        #
        # badness() is  post(pre // int_sqrt(int_sqrt(run time >> 10)))  where ``pre`` (total_vm,
        # children's halves, / int_sqrt(cpu time)) does not depend on the clock and ``post``
        # only halves and doubles: * 2 when niced, / 4 per capability, / 8 outside the cpuset,
        # << or >> oom_adj.  Floors of divisions by powers of two compose (x // 4 // 4 // 8 is
        # x >> 7), so for oom_adj <= 0 post() is one right shift ``s`` (a doubling cancels one
        # halving while it cannot overflow ULONG_MAX).  A score keeps ``pre << 5 | s`` in
        # Task.oom_pre; when its run-time root steps (oom_until reached, nothing changed), the
        # new score is (pre // root) >> s, the full computation's result bit for bit.  Scores
        # with a doubling that could overflow, or a left shift (oom_adj > 0, which also turns 0
        # into 1), keep None there and are computed in full again.
        era = self.era
        home = era.adj_home
        adj_in_signal, adj_in_mm = home is AdjHome.SIGNAL, home is AdjHome.MM
        per_process, first_eligible = era.per_process, era.first_eligible
        # badness() of 2.6.31-rc/2.6.32 returns 0 at once for OOM_DISABLE (2.6.31 does not test it; its
        # candidates at -17 are skipped before badness())
        zero_disabled = era.badness_adj_first
        skip = self.skip_reason
        shift = SHIFT_HZ[self.clock.hz] + 3
        uptime = int(self.clock.uptime)
        admin_or_resource, rawio = 1 << CAP_SYS_ADMIN | 1 << CAP_SYS_RESOURCE, 1 << CAP_SYS_RAWIO
        half_ulong = ULONG_MAX >> 1
        # a score whose oom_until was reached is recomputed from oom_pre; one made STALE by a
        # change, or any after the cache was dropped (valid_below NEVER), in full
        expired_above = STALE if valid_below < NEVER else NEVER
        roots: dict[float, tuple[int, int]] = {}  # start_time -> _run_root() at this uptime
        memo_size = ROOT_MEMO_SIZE
        table = self.table
        candidates: Iterable[Task]
        if per_process or len(table.tasks) == len(table.processes):
            # for_each_process(); or do_each_thread() where no process has a second thread
            candidates = table.processes.values()
        else:  # do_each_thread(): a process's threads in creation order, then the next process
            candidates = [th for p in table.processes.values() for th in p._signal.threads]
        chosen: Task | None = None
        best = 0
        points: int | None
        for p in candidates:
            until = p.oom_until
            if until > valid_below:
                points = p.oom_points
            elif until > expired_above and (pre := p.oom_pre) is not None:  # the run-time root stepped
                start = p._start_time
                r = roots.get(start)
                if r is None:
                    if len(roots) >= memo_size:  # many distinct start times: keep the memo small
                        roots.clear()
                    r = roots[start] = _run_root(uptime, start)
                root, until = r
                points = (pre >> 5) // root >> (pre & 31)
                p.oom_points = points
                p.oom_until = until
            else:  # score p, and keep the score with the uptime at which it would change
                until = NEVER
                pre = None
                if skip(p, current_mems) is not None:
                    points = None
                else:
                    mm = p._mm
                    assert mm is not None
                    adj = p._signal._oom_adj if adj_in_signal else mm._oom_adj if adj_in_mm else p._oom_adj
                    if adj == OOM_DISABLE and zero_disabled:
                        points = 0
                    elif p._oom_origin:
                        points = ULONG_MAX
                    else:
                        points = mm._total_vm
                        children = p.children
                        if children:
                            for c in children:
                                cm = c._mm
                                if cm is not None and cm is not mm:
                                    points += cm._total_vm // 2 + 1
                            points &= ULONG_MAX  # an unsigned long sum: it wraps
                        if per_process:
                            sig = p._signal
                            threads = sig.threads
                            if len(threads) == 1:
                                cpu = sig._dead_cputime + p._utime + p._stime
                            else:
                                cpu = sig._dead_cputime
                                for th in threads:
                                    cpu += th._utime + th._stime
                        else:
                            cpu = p._utime + p._stime
                        cpu = (cpu & ULONG_MAX) >> shift
                        if cpu:
                            points //= isqrt(cpu)
                        start = p._start_time
                        r = roots.get(start)
                        if r is None:
                            if len(roots) >= memo_size:
                                roots.clear()
                            r = roots[start] = _run_root(uptime, start)
                        root, until = r
                        caps = p._caps
                        s = 2 if caps & admin_or_resource else 0  # / 4
                        if caps & rawio:
                            s += 2  # / 4
                        if current_mems is not None and not p._mems & current_mems:
                            s += 3  # / 8
                        nice = p._nice
                        if nice <= 0 and adj <= 0:
                            s -= adj
                            pre = points << 5 | s
                            points = points // root >> s
                        elif adj <= 0 and s - adj > 0 and 0 <= points <= half_ulong:
                            # niced: * 2 cannot reach the mask, and cancels one halving
                            s -= adj + 1
                            pre = points << 5 | s
                            points = points // root >> s
                        else:  # badness()'s steps as written
                            points //= root
                            if nice > 0:
                                points = (points * 2) & ULONG_MAX
                            points >>= s
                            if adj > 0:
                                points = (max(points, 1) << adj) & ULONG_MAX
                            elif adj < 0:
                                points >>= -adj
                p.oom_points = points
                p.oom_until = until
                p.oom_pre = pre
            if points is None:
                continue  # not a candidate
            if points > best or (first_eligible and chosen is None):  # the first of equal scores wins
                chosen, best = p, points
        return None if chosen is None else (chosen, best)

    def rank(self, current_mems: frozenset[int] | None = None) -> list[Candidate]:
        """Every candidate in the walking order with its points, or why it was passed over: what the
        loops above decide, one task at a time (``oom --dry-run``, and the specification the property
        tests hold the loops to)."""
        out = []
        for p in self.candidates():
            why = self.skip_reason(p, current_mems)
            out.append(Candidate(p, None if why else self.points(p, current_mems), why))
        return out

    def select_reference(self, current_mems: frozenset[int] | None = None) -> tuple[Task, int] | None:
        """The same choice as :meth:`select`, from :meth:`rank`: the era's comparison over the candidates."""
        era = self.era
        chosen: Task | None = None
        best = 0
        for c in self.rank(current_mems):
            if c.points is None:
                continue
            if chosen is None:
                if c.points > 0 or era.first_eligible or era.ties_replace:
                    chosen, best = c.task, c.points
            elif c.points > best or (era.ties_replace and c.points == best):
                chosen, best = c.task, c.points
        return None if chosen is None else (chosen, best)

    # ------------------------------------------------------------------ the report

    def _header(self, current: Caller, sysrq: bool) -> None:
        """The ``invoked oom-killer`` line (history E1): current's comm and value; a SysRq-f's current is
        the kernel worker that runs it (H4)."""
        era = self.era
        gfp = era.gfp_sysrq if sysrq else era.gfp_fault
        order = era.sysrq_order if sysrq else 0
        self.klog.printk(f"{current.comm} invoked oom-killer: gfp_mask={gfp}, order={order}, "
                         f"{era.header_adj_word}={current.oom_adj}")

    def dump_header(self, current: Caller, sysrq: bool, current_mems: frozenset[int] | None) -> None:
        """What follows the header (2.6.32 oom_kill_process(), 6.x dump_header()): 2.6.x's cpuset line,
        dump_stack() and show_mem() (each summarised in one line: the model has no stack and no zones),
        then the task table if vm.oom_dump_tasks is set."""
        printk = self.klog.printk
        self._header(current, sysrq)
        legacy = self.era.log_style == "legacy"
        if legacy:  # cpuset_print_task_mems_allowed(current): the root cpuset, current's nodes
            mems = current.task.mems if current.task is not None else self.nodes()
            printk(f"{current.comm} cpuset=/ mems_allowed={nodelist(mems)}")
        printk(f"fakeproc: dump_stack() of {current.comm} is not simulated (the kernel prints its call trace here)")
        free_ram, free_swap = self.memory.free_pages()
        k = PAGE_SIZE // 1024
        printk(f"fakeproc: show_mem() summarised: RAM {self.memory.ram_pages * k}kB, free {free_ram * k}kB; "
               f"swap {self.memory.swap_pages * k}kB, free {free_swap * k}kB")
        if self.sysctl["oom_dump_tasks"]:
            (self._dump_tasks_legacy if legacy else self._dump_tasks_6_x)(current_mems)

    def _dump_tasks_legacy(self, current_mems: frozenset[int] | None) -> None:
        """2.6.31/2.6.32 dump_tasks(): every thread-group leader with an mm, init included, its value as the
        era keeps it (2.6.31 p->oomkilladj, 2.6.31-rc mm->oom_adj, 2.6.32 p->signal->oom_adj)."""
        printk = self.klog.printk
        printk("[ pid ]   uid  tgid total_vm      rss cpu oom_adj name")
        for p in self.table.processes.values():
            mm = p.mm
            if mm is None:
                continue
            # get_mm_rss(): file_rss + anon_rss (2.6.32 has no separate shmem counter; the model's shmem is
            # part of the file pages there); task_cpu(): the model has one CPU
            rss = mm.rss_anon + mm.rss_file + mm.rss_shmem
            printk(f"[{p.tid:5d}] {p.uid:5d} {p.tgid:5d} {mm.total_vm:8d} {rss:8d} {0:3d}     {self.adj(p):3d} "
                   f"{p.comm}")

    def _dump_tasks_6_x(self, current_mems: frozenset[int] | None) -> None:
        """6.8+ dump_tasks()/dump_task(): every process but init and kernel threads, in the allocating
        task's cpuset, with an mm (the first thread that has one: the leader here)."""
        printk = self.klog.printk
        printk("Tasks state (memory values in pages):")
        printk("[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents "
               "oom_score_adj name")
        for p in self.table.processes.values():
            mm = p.mm
            if p.tgid == 1 or p.kthread or mm is None:
                continue
            if current_mems is not None and not p.mems & current_mems:
                continue
            printk(f"[{p.tid:7d}] {p.uid:5d} {p.tgid:5d} {mm.total_vm:8d} {mm.rss:8d} {mm.rss_anon:8d} "
                   f"{mm.rss_file:8d} {mm.rss_shmem:9d} {mm.pgtables:8d} {mm.swap:8d}         "
                   f"{p.signal.oom_score_adj:5d} {p.comm}")

    def nodes(self) -> frozenset[int]:
        """The machine's memory nodes: every node some task may use, and node 0."""
        return frozenset({0}).union(*{t._mems for t in self.table.tasks.values()})

    def constraint(self, current_mems: frozenset[int] | None) -> str:
        """constrained_alloc(): CONSTRAINT_CPUSET when the allocating task's cpuset leaves out a node of
        the machine, else CONSTRAINT_NONE (the model has no mempolicy and no memcg)."""
        if current_mems is not None and not self.nodes() <= current_mems:
            return "CONSTRAINT_CPUSET"
        return "CONSTRAINT_NONE"

    def worker(self) -> Caller:
        """The kernel worker a SysRq-f runs in (``events/0``, ``kworker/0:1``): the machine's kernel thread
        of that name if it has one, else one outside the table (pid 0 in the report)."""
        name = self.era.sysrq_worker
        for t in self.table.tasks.values():
            if t.kthread and t.comm == name:
                return Caller(t.tgid, 0, name, 0, t)
        return Caller(0, 0, name, 0)

    # ------------------------------------------------------------------ kill

    def out_of_memory(self, current: Caller, sysrq: bool = False,
                      current_mems: frozenset[int] | None = None) -> OomResult:
        """out_of_memory(): select, report, kill; what SysRq-f and a failing allocation run.

        Observers (run mode's mirror) see it before (to bring every real process in) and after (to
        send the real SIGKILL).
        """
        self.halt.check()
        for o in self.observers:
            o.before_oom()
        if sysrq:
            current, current_mems = self.worker(), None  # moom_callback() runs in a kernel worker
        if self.era.log_style == "modern":
            result = self._out_of_memory_6_x(current, sysrq, current_mems)
        else:
            result = self._out_of_memory_legacy(current, sysrq, current_mems)
        self.journal.note("oom", current=current.pid, comm=current.comm, sysrq=sysrq,
                          victim=result.victim.tid if result.victim is not None else None,
                          killed=[t.tid for t in result.killed if t.is_leader], livelock=result.livelock,
                          nothing_killable=result.nothing_killable, panic=self.halt.reason)
        for t in result.killed:
            if t.is_leader:
                self.journal.note("kill", pid=t.tgid, comm=t.comm,
                                  tids=[th.tid for th in result.killed if th.tgid == t.tgid])
        for o in self.observers:
            o.after_oom(result)
        return result

    def _out_of_memory_6_x(self, current: Caller, sysrq: bool, current_mems: frozenset[int] | None) -> OomResult:
        """6.18 mm/oom_kill.c out_of_memory()."""
        printk = self.klog.printk
        killed: list[Task] = []
        constraint = self.constraint(current_mems)
        # check_panic_on_oom(): 1 only for an unconstrained OOM, 2 always; never for SysRq-f (is_sysrq_oom())
        panic_on_oom = self.sysctl["panic_on_oom"]
        if panic_on_oom and (panic_on_oom == 2 or constraint == "CONSTRAINT_NONE") and not sysrq:
            self.dump_header(current, sysrq, current_mems)
            self.halt.panic(f"Out of memory: {'compulsory' if panic_on_oom == 2 else 'system-wide'} "
                            "panic_on_oom is enabled")
            return OomResult(killed, None, False, False)
        me = current.task
        if (self.sysctl["oom_kill_allocating_task"] and me is not None and me.mm is not None
                and me.tgid != 1 and not me.kthread and (current_mems is None or bool(me.mems & current_mems))
                and me.signal.oom_score_adj != OOM_SCORE_ADJ_MIN):
            victim = me.leader
            self._kill_6_x(victim, current, sysrq, current_mems, constraint,
                           "Out of memory (oom_kill_allocating_task)", killed)
            return OomResult(killed, victim, False, False)
        sel = self.select(current_mems)
        if sel is None:
            self.dump_header(current, sysrq, current_mems)
            printk("Out of memory and no killable processes...")
            if sysrq:  # moom_callback(): out_of_memory() returned false
                printk(f"{self.era.sysrq_prefix}OOM request ignored. No task eligible")
            else:
                self.halt.panic("System is deadlocked on memory")
            return OomResult(killed, None, False, True)
        victim = sel[0]
        self._kill_6_x(victim, current, sysrq, current_mems, constraint, "Out of memory", killed)
        return OomResult(killed, victim, False, False)

    def _kill_6_x(self, p: Task, current: Caller, sysrq: bool, current_mems: frozenset[int] | None,
                  constraint: str, message: str, killed: list[Task]) -> None:
        """oom_kill_process(): dump_header(), dump_oom_victim()'s summary, __oom_kill_process(), the reaper."""
        printk = self.klog.printk
        self.dump_header(current, sysrq, current_mems)
        mems = current.task.mems if current.task is not None else self.nodes()
        printk(f"oom-kill:constraint={constraint},nodemask=(null),cpuset=/,mems_allowed={nodelist(mems)},"
               f"global_oom,task_memcg=/,task={p.comm},pid={p.tid},uid={p.uid}")
        mm = p.mm
        assert mm is not None
        k = PAGE_SIZE // 1024
        printk(f"{message}: Killed process {p.tgid} ({p.comm}) total-vm:{mm.total_vm * k}kB, "
               f"anon-rss:{mm.rss_anon * k}kB, file-rss:{mm.rss_file * k}kB, "
               f"shmem-rss:{mm.rss_shmem * k}kB, UID:{p.uid} pgtables:{mm.pgtables // 1024}kB "
               f"oom_score_adj:{p.signal.oom_score_adj}")
        pinned = self._kill(p, killed)
        if not pinned:
            # oom_reap_task_mm(): the victim's private memory (anonymous, and private file mappings, which is
            # what the model's file pages are) is unmapped; shared memory (VM_SHARED) stays
            printk(f"oom_reaper: reaped process {p.tgid} ({p.comm}), now anon-rss:0kB, file-rss:0kB, "
                   f"shmem-rss:{mm.rss_shmem * k}kB")

    def _out_of_memory_legacy(self, current: Caller, sysrq: bool,
                              current_mems: frozenset[int] | None) -> OomResult:
        """2.6.31/2.6.32 mm/oom_kill.c out_of_memory() and __out_of_memory()."""
        era = self.era
        printk = self.klog.printk
        killed: list[Task] = []
        panic_on_oom = self.sysctl["panic_on_oom"]
        # panic_on_oom applies to SysRq-f too in 2.6.x (history H3), and no header comes first
        if panic_on_oom == 2:
            self.halt.panic("out of memory. Compulsory panic_on_oom is selected.")
            return OomResult(killed, None, False, False)
        if panic_on_oom and self.constraint(current_mems) == "CONSTRAINT_NONE":
            self.halt.panic("out of memory. panic_on_oom is selected")
            return OomResult(killed, None, False, False)
        if self.sysctl["oom_kill_allocating_task"] and (current.task is not None or sysrq):
            # oom_kill_process(current, ..., 0, "Out of memory (oom_kill_allocating_task)"); one that cannot
            # be killed (a kernel worker has no mm, a task at -17) falls through to the scan
            victim = self._kill_process(current.task, current, sysrq, current_mems, 0,
                                        "Out of memory (oom_kill_allocating_task)", killed)
            if victim is not None or self.halt.reason is not None:
                return OomResult(killed, victim, False, False)
        refused: set[int] = set()
        while True:  # __out_of_memory(): retry while oom_kill_process() refuses
            sel = self.select(current_mems)
            if sel is None:
                self.halt.panic("Out of memory and no killable processes...")
                return OomResult(killed, None, False, True)
            p, points = sel
            if p.tid in refused:
                printk(f"fakeproc: livelock: select_bad_process() chose {p.tid} ({p.comm}) again and "
                       f"oom_kill_task() refused it again ({era.refusal.value}); the real kernel "
                       "retries forever here and the machine hangs")
                return OomResult(killed, None, True, False)
            victim = self._kill_process(p, current, sysrq, current_mems, points, "Out of memory", killed)
            if victim is not None or self.halt.reason is not None:
                return OomResult(killed, victim, False, False)
            refused.add(p.tid)

    def _kill_process(self, p: Task | None, current: Caller, sysrq: bool, current_mems: frozenset[int] | None,
                      points: int, message: str, killed: list[Task]) -> Task | None:
        """2.6.32 oom_kill_process(): the report, then a child first (the first entry of p's children list
        with another mm that oom_kill_task() accepts; it may be a child's thread, and the ``Killed
        process`` line then names that thread: its SIGKILL ends the whole group), else p itself.  The
        task killed, or None when oom_kill_task() refused (no mm, OOM_DISABLE)."""
        printk = self.klog.printk
        self.dump_header(current, sysrq, current_mems)
        pid, comm = (p.tid, p.comm) if p is not None else (current.pid, current.comm)
        printk(f"{message}: kill process {pid} ({comm}) score {_as_signed_long(points)} or a child")
        if p is None:  # a kernel worker: oom_kill_task() finds no mm
            return None
        victim = None
        if self.era.child_first:
            for c in list(p.children):
                if c.mm is p.mm or self._refuses(c):
                    continue
                victim = c
                break
        if victim is None and not self._refuses(p):
            victim = p
        if victim is not None:
            printk(f"Killed process {victim.tid} ({victim.comm})")
            self._kill(victim, killed)
        return victim

    def _refuses(self, p: Task) -> bool:
        """oom_kill_task() returning 1: the chosen task may not be killed."""
        rule = self.era.refusal
        mm = p.mm
        if mm is None:
            return True
        if rule is Refusal.MM_DISABLED:
            return mm.oom_adj == OOM_DISABLE
        if rule is Refusal.ANY_SHARER_DISABLED:
            return any(q.oom_adj == OOM_DISABLE for q in mm.users)
        if rule is Refusal.PROCESS_DISABLED:
            return p.signal.oom_adj == OOM_DISABLE
        return False

    def _kill(self, p: Task, killed: list[Task]) -> bool:
        """SIGKILL to p's thread group, then (per era) to the others sharing its mm.  True when init pins
        the mm (6.x: the reaper leaves it alone).

        SIGKILL to init's group (2.6.31*: one of init's threads was chosen, or init shares the victim's mm
        through a vfork child) makes init exit, and the kernel panics (find_new_reaper(): "Attempted to
        kill init!")."""
        mm = p.mm
        sharers = self.table.sharers(mm) if mm is not None and self.era.sharers is not Sharers.NONE else []
        if p.tgid == 1:
            self.halt.panic("Attempted to kill init!")
            return False
        killed.extend(self.table.exit_group(p.leader))
        pinned = False
        for q in sharers:
            if q.tgid == p.tgid:
                continue
            if self.era.sharers is Sharers.USER:
                if q.tgid == 1:
                    self.klog.printk(f"oom killer {p.tgid} ({p.comm}) has mm pinned by {q.tgid} ({q.comm})")
                    pinned = True
                    continue
                if q.kthread:
                    continue
            elif q.tgid == 1:
                # 2.6.31*: force_sig(SIGKILL) reaches init too (a vfork child of init shares its mm)
                self.halt.panic("Attempted to kill init!")
                continue
            killed.extend(self.table.exit_group(q))
        return pinned

    def sysrq(self, key: bytes, current: Caller) -> None:
        """write_sysrq_trigger(): the first byte is the key; 'f' is sysrq_handle_moom(), which queues
        moom_callback() on a workqueue: the OOM killer then runs in a kernel worker (spec §7.1)."""
        if key == b"f":
            self.halt.check()
            self.klog.printk(f"{self.era.sysrq_prefix}Manual OOM execution")
            self.out_of_memory(current, sysrq=True)
        elif key and key not in b"\n":
            self.klog.printk(f"{self.era.sysrq_prefix}HELP : fakeproc simulates only 'f' (manual OOM), not {key!r}")


def nodelist(mems: frozenset[int]) -> str:
    """bitmap_scnlistprintf() / %*pbl: node numbers as ranges, ``0``, ``0-1``, ``0,2-3``."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(mems):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [n]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)
