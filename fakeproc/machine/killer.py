"""The OOM killer: select_bad_process() and oom_kill_process() of mm/oom_kill.c, era by era.

The era decides the candidates (threads or processes), who is skipped, how
ties go, whether a child dies first, when a chosen task is refused, who dies
along with the victim, and the log lines.  Where the real kernel would retry
forever (2.6.31's livelock), the simulation stops at the first repeated
choice and logs what the kernel would have done.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from math import isqrt
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ..kernel.badness import OOM_DISABLE, SHIFT_HZ, ULONG_MAX, LegacyInputs
from ..kernel.caps import CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_SYS_RESOURCE
from ..kernel.eras import AdjHome, Refusal, Sharers
from .task import NEVER, PAGE_SIZE, STALE, Caller, Mm, Task

if TYPE_CHECKING:
    from .machine import Machine

LONG_MAX = (1 << 63) - 1
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


class OomResult(NamedTuple):
    """What one call of the OOM killer did."""

    killed: list[Task]  # every thread that died
    victim: Task | None  # the task the report names as killed
    livelock: bool  # the kernel would have looped forever
    nothing_killable: bool


class OomObserver(Protocol):
    def before_oom(self) -> None: ...
    def after_oom(self, result: OomResult) -> None: ...


class KillerMixin:
    # ------------------------------------------------------------- badness()

    def badness_inputs(self: Machine, p: Task, current_mems: frozenset[int] | None = None) -> LegacyInputs:
        """Gather what legacy badness() reads: the thread group's cpu time in 2.6.32, the thread's before."""
        mm = p.mm
        if self.era.per_process:
            cpu = p.signal.dead_cputime + sum(th.utime + th.stime for th in p.signal.threads)
        else:
            cpu = p.utime + p.stime
        children = p.children if p.is_leader else []
        return LegacyInputs(
            oom_adj=self.get_adj(p),
            has_mm=mm is not None,
            total_vm=mm.total_vm if mm is not None else 0,
            oom_origin=p.oom_origin,
            children_vm=tuple(c.mm.total_vm for c in children if c.mm is not None and c.mm is not mm),
            cpu_jiffies=cpu,
            uptime_s=int(self.uptime),
            start_time_s=int(p.start_time),
            nice=p.nice,
            cap_admin_or_resource=p.has_cap(CAP_SYS_ADMIN) or p.has_cap(CAP_SYS_RESOURCE),
            cap_rawio=p.has_cap(CAP_SYS_RAWIO),
            mems_intersect=current_mems is None or bool(p.mems & current_mems),
            hz=self.hz,
        )

    # ------------------------------------------------------------ the cache

    # select_bad_process() keeps each candidate's score in Task.oom_points, valid while
    # int(uptime) < Task.oom_until.  The scores read fields of the task, of its thread group
    # (signal_struct, the other threads' cpu time), of its mm (which threads, a vfork child and
    # clone(CLONE_VM) processes share) and of its children's mms.  So every place that changes
    # one of those fields calls touch() or touch_mm(); tests/test_select_fast.py checks that no
    # assignment in fakeproc/ lacks one, and that the cached choice is always the reference's.

    def touch(self: Machine, t: Task) -> None:
        """t's fields changed: forget the cached scores that read them.

        Those are t's own, its leader's (2.6.32's badness() sums the cpu time of every thread
        of the group; the leader stands for the process in for_each_process()) and its parent's
        (legacy badness() adds half of each child's total_vm, and skips a child sharing its mm).
        """
        t.oom_until = STALE
        threads = t.signal.threads
        leader = threads[0] if threads else t
        leader.oom_until = STALE
        parent = leader.parent
        if parent is not None:
            parent.oom_until = STALE

    def touch_mm(self: Machine, mm: Mm, user: Task | None = None) -> None:
        """mm's fields changed (memory, 2.6.31-rc's oom_adj): forget the scores of all its users.

        When ``user`` is its only user (mm_users == 1) that is ``user`` alone; otherwise the
        users (threads, a vfork child, clone(CLONE_VM) processes) are looked for at the next
        selection, in one pass over every task.
        """
        if user is not None and user.mm is mm and mm.users == 1:
            self.touch(user)
        else:
            self._oom_dirty_mms.add(mm)

    def touch_all(self: Machine) -> None:
        """Forget every cached score (a scenario was loaded, or something changed wholesale)."""
        self._oom_key = None

    def _revalidate(self: Machine, current_mems: frozenset[int] | None) -> int:
        """The uptime below which a cached score stays valid in this selection: NEVER for none.

        A score is only good for the era, HZ and memory size it was computed with, and for an
        uptime not before the one it was computed at (mirror.py sets the clock from the real
        one, which could be stepped back).  Another cpuset forgets only the scores it changes.
        """
        uptime = int(self.uptime)
        key = (self.era, self.hz, self.totalpages)
        dirty = self._oom_dirty_mms
        if key != self._oom_key or uptime < self._oom_uptime or uptime < 0:
            self._oom_key = key
            self._oom_mems = current_mems
            self._oom_uptime = uptime
            dirty.clear()
            return NEVER
        self._oom_uptime = uptime
        if current_mems != self._oom_mems:
            self._change_cpuset(current_mems)
        if dirty:
            for t in self.tasks.values():
                if t.mm in dirty:
                    self.touch(t)
            dirty.clear()
        return uptime

    def _change_cpuset(self: Machine, current_mems: frozenset[int] | None) -> None:
        """The allocating task's cpuset differs from the last selection's: forget the scores it changes.

        A task's mems_allowed enters its score only through one question, whether it has a node
        in common with the allocating task's (``None``: no cpuset, every task has): legacy
        badness() divides by 8 when not, 6.x skips the task.  Where the two cpusets give the same
        answer the score is the same, so only the tasks whose answer differs are scored again;
        the answer is asked once per distinct mems set (usually one object, NODE0, shared by all).
        """
        old, self._oom_mems = self._oom_mems, current_mems
        tasks = self.tasks.values()
        differ = {ms for ms in set(map(attrgetter("mems"), tasks))
                  if (old is None or bool(ms & old)) != (current_mems is None or bool(ms & current_mems))}
        if differ:
            for t in tasks:
                if t.mems in differ:
                    t.oom_until = STALE

    # ---------------------------------------------------------------- choice

    def _candidates(self: Machine) -> Iterator[Task]:
        """for_each_process() (leaders) or do_each_thread() (every thread), in creation order."""
        if self.era.per_process:
            return self.iter_processes()
        return iter([th for p in self.iter_processes() for th in list(p.signal.threads)])

    def select_bad_process(self: Machine, current_mems: frozenset[int] | None = None) -> tuple[Task, int] | None:
        """select_bad_process(): the era's choice over every candidate.

        The hot loops below compute, inline, exactly what ``badness_inputs()``
        + ``kernel.badness`` compute for one task (which stays the readable
        specification, used by ``oom_score`` reads and by
        ``select_bad_process_reference``; a property test holds the two equal),
        and only for the candidates whose cached score is stale (see ``touch``):
        a selection after a few changes costs one pass over cached integers.
        """
        valid_below = self._revalidate(current_mems)
        if self.era.scoring == "modern":
            return self._select_modern(current_mems, valid_below)
        return self._select_legacy(current_mems, valid_below)

    def _select_modern(self: Machine, current_mems: frozenset[int] | None, valid_below: int
                       ) -> tuple[Task, int] | None:
        # 6.x oom_evaluate_task() + oom_badness(), for_each_process(); no score depends on the clock
        adj_unit = self.totalpages // 1000
        page_size = PAGE_SIZE
        chosen: Task | None = None
        best = 0
        for p in self.processes.values():
            if p.oom_until > valid_below:
                points = p.oom_points
            else:
                mm = p.mm
                if mm is None or p.tgid == 1 or p.kthread:
                    points = None
                elif current_mems is not None and not p.mems & current_mems:
                    points = None  # oom_cpuset_eligible()
                elif p.oom_origin:
                    points = LONG_MAX
                else:
                    adj = p.signal.oom_score_adj
                    vfork_parent = p._vfork_parent  # the field behind Task.vfork_parent (a property)
                    if adj == -1000 or (vfork_parent is not None and vfork_parent.mm is mm):
                        points = None  # oom_badness() returns LONG_MIN: never chosen
                    else:
                        points = (mm.rss_anon + mm.rss_file + mm.rss_shmem + mm.swap + mm.pgtables // page_size
                                  + adj * adj_unit)
                p.oom_points = points
                p.oom_until = NEVER
            if points is None:
                continue
            if chosen is None or points >= best:  # 6.x: the last of equal scores wins
                chosen, best = p, points
        return None if chosen is None else (chosen, best)

    def _select_legacy(self: Machine, current_mems: frozenset[int] | None, valid_below: int
                       ) -> tuple[Task, int] | None:
        # 2.6.31*/2.6.32 select_bad_process() + badness(), with the era's rules.
        #
        # badness() is  post(pre // int_sqrt(int_sqrt(run time >> 10)))  where ``pre`` (total_vm,
        # children's halves, / int_sqrt(cpu time)) does not depend on the clock and ``post``
        # only halves and doubles: * 2 when niced, / 4 per capability, / 8 outside the cpuset,
        # << or >> oom_adj.  Floors of divisions by powers of two compose (x // 4 // 4 // 8 is
        # x >> 7), so for oom_adj <= 0 post() is one right shift ``s`` (a doubling cancels one
        # halving while it cannot overflow ULONG_MAX).  A score keeps ``pre << 5 | s`` in
        # Task.oom_pre; when its run-time root steps (oom_until reached, nothing touched), the
        # new score is (pre // root) >> s, the full computation's result bit for bit.  Scores
        # with a doubling that could overflow, or a left shift (oom_adj > 0, which also turns 0
        # into 1), keep None there and are computed in full again.
        era = self.era
        home = era.adj_home
        adj_in_signal, adj_in_mm = home is AdjHome.SIGNAL, home is AdjHome.MM
        per_process, adj_first = era.per_process, era.badness_adj_first
        skip_disabled, first_eligible = era.skip_disabled, era.first_eligible
        shift = SHIFT_HZ[self.hz] + 3
        uptime = int(self.uptime)
        admin_or_resource, rawio = 1 << CAP_SYS_ADMIN | 1 << CAP_SYS_RESOURCE, 1 << CAP_SYS_RAWIO
        half_ulong = ULONG_MAX >> 1
        # a score whose oom_until was reached is recomputed from oom_pre; one made STALE by a
        # change, or any after the cache was dropped (valid_below NEVER), in full
        expired_above = STALE if valid_below < NEVER else NEVER
        roots: dict[float, tuple[int, int]] = {}  # start_time -> _run_root() at this uptime
        memo_size = ROOT_MEMO_SIZE
        if per_process or len(self.tasks) == len(self.processes):
            # for_each_process(); or do_each_thread() where no process has a second thread
            candidates: Iterable[Task] = self.processes.values()
        else:  # do_each_thread(): a process's threads in creation order, then the next process
            candidates = [th for p in self.processes.values() for th in p.signal.threads]
        chosen: Task | None = None
        best = 0
        for p in candidates:
            until = p.oom_until
            if until > valid_below:
                points = p.oom_points
            elif until > expired_above and (pre := p.oom_pre) is not None:  # the run-time root stepped
                start = p.start_time
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
                mm = p.mm
                if mm is None or p.tgid == 1:
                    points = None  # kernel threads, a released mm; the init task
                else:
                    adj = p.signal.oom_adj if adj_in_signal else mm.oom_adj if adj_in_mm else p.oom_adj
                    if adj == OOM_DISABLE and (skip_disabled or adj_first):
                        points = None if skip_disabled else 0
                    elif p.oom_origin:
                        points = ULONG_MAX
                    else:
                        points = mm.total_vm
                        children = p.children
                        if children and p.tgid == p.tid:
                            for c in children:
                                cm = c.mm
                                if cm is not None and cm is not mm:
                                    points += cm.total_vm // 2 + 1
                        if per_process:
                            sig = p.signal
                            threads = sig.threads
                            if len(threads) == 1:
                                cpu = sig.dead_cputime + p.utime + p.stime
                            else:
                                cpu = sig.dead_cputime
                                for th in threads:
                                    cpu += th.utime + th.stime
                        else:
                            cpu = p.utime + p.stime
                        cpu >>= shift
                        if cpu:
                            points //= isqrt(cpu)
                        start = p.start_time
                        r = roots.get(start)
                        if r is None:
                            if len(roots) >= memo_size:
                                roots.clear()
                            r = roots[start] = _run_root(uptime, start)
                        root, until = r
                        caps = p.caps
                        s = 2 if caps & admin_or_resource else 0  # / 4
                        if caps & rawio:
                            s += 2  # / 4
                        if current_mems is not None and not p.mems & current_mems:
                            s += 3  # / 8
                        nice = p.nice
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
                continue  # not a candidate, or skipped at OOM_DISABLE
            if points > best or (first_eligible and chosen is None):  # the first of equal scores wins
                chosen, best = p, points
        return None if chosen is None else (chosen, best)

    def select_bad_process_reference(self: Machine, current_mems: frozenset[int] | None = None
                                     ) -> tuple[Task, int] | None:
        """The same choice, one ``badness()`` call per candidate: the specification the loops follow."""
        era = self.era
        chosen: Task | None = None
        best: int | None = None
        for p in self._candidates():
            if era.scoring == "modern":  # oom_evaluate_task()
                if p.tgid == 1 or p.kthread:
                    continue
                if current_mems is not None and not p.mems & current_mems:
                    continue  # oom_cpuset_eligible()
                if p.oom_origin and p.mm is not None:
                    points = LONG_MAX
                else:
                    b = self.modern_badness(p)
                    if b is None or (best is not None and b < best):
                        continue
                    points = b
                if best is None or points >= best:
                    chosen, best = p, points
                continue
            if p.mm is None or p.tgid == 1:  # kernel threads, released mm; the init task
                continue
            if era.skip_disabled and self.get_adj(p) == OOM_DISABLE:
                continue
            points = self.badness(p, current_mems)
            if points > (best or 0) or (era.first_eligible and chosen is None) or (
                    era.ties_replace and chosen is not None and points == best):
                chosen, best = p, points
        return None if chosen is None else (chosen, best or 0)

    # ------------------------------------------------------------------ kill

    def _refuses(self: Machine, p: Task) -> bool:
        """oom_kill_task() returning 1: the chosen task may not be killed."""
        rule = self.era.refusal
        if p.mm is None:
            return True
        if rule is Refusal.MM_DISABLED:
            return p.mm.oom_adj == OOM_DISABLE
        if rule is Refusal.ANY_SHARER_DISABLED:
            return any(q.mm is p.mm and q.oom_adj == OOM_DISABLE for q in self.tasks.values())
        if rule is Refusal.PROCESS_DISABLED:
            return p.signal.oom_adj == OOM_DISABLE
        return False

    def _kill(self: Machine, p: Task, killed: list[Task]) -> None:
        """SIGKILL to p's thread group, then (per era) to the others sharing its mm."""
        mm = p.mm
        victim_group = p.leader
        killed.extend(self._exit_group(victim_group))
        if self.era.sharers is Sharers.NONE or mm is None:
            return
        for q in list(self.iter_processes()):
            if not any(th.mm is mm for th in q.signal.threads):
                continue
            if self.era.sharers is Sharers.USER:
                if q.tgid == 1:
                    self.printk(f"oom killer {p.tgid} ({p.comm}) has mm pinned by {q.tgid} ({q.comm})")
                    continue
                if q.kthread:
                    continue
            elif q.tgid == 1:
                # 2.6.31*: force_sig(SIGKILL) reaches init too (a vfork child of init shares its mm):
                # init dies and do_exit() panics
                self.printk("Kernel panic - not syncing: Attempted to kill init!")
                self.printk("fakeproc: the real kernel would have stopped here; the simulation goes on "
                            "and init lives")
                continue
            killed.extend(self._exit_group(q))

    def _header(self: Machine, current: Caller, gfp: str) -> None:
        self.printk(f"{current.comm} invoked oom-killer: gfp_mask={gfp}, order=0, "
                    f"{self.era.header_adj_word}={current.oom_adj}")

    def out_of_memory(self: Machine, current: Caller, sysrq: bool = False,
                      current_mems: frozenset[int] | None = None) -> OomResult:
        """out_of_memory(): select, report, kill; what SysRq-f and a failing allocation run.

        Observers (run mode's mirror) see it before (to bring every real
        process in) and after (to send the real SIGKILL).
        """
        for o in self.observers:
            o.before_oom()
        result = self._out_of_memory(current, sysrq, current_mems)
        self.note("oom", current=current.pid, comm=current.comm, sysrq=sysrq,
                  victim=result.victim.tid if result.victim is not None else None,
                  killed=[t.tid for t in result.killed if t.is_leader], livelock=result.livelock,
                  nothing_killable=result.nothing_killable)
        for t in result.killed:
            if t.is_leader:
                self.note("kill", pid=t.tgid, comm=t.comm, tids=[th.tid for th in result.killed if th.tgid == t.tgid])
        for o in self.observers:
            o.after_oom(result)
        return result

    def _out_of_memory(self: Machine, current: Caller, sysrq: bool,
                       current_mems: frozenset[int] | None) -> OomResult:
        era = self.era
        gfp = era.gfp_sysrq if sysrq else era.gfp_fault
        message = "Out of memory"
        killed: list[Task] = []
        if era.log_style == "modern":
            sel = self.select_bad_process(current_mems)
            if sel is None:
                self._header(current, gfp)
                self.printk("Out of memory and no killable processes...")
                if not sysrq:
                    self.printk("Kernel panic - not syncing: System is deadlocked on memory")
                    self.printk("fakeproc: the real kernel would have stopped here; the simulation goes on")
                return OomResult(killed, None, False, True)
            p, _ = sel
            self._header(current, gfp)
            mm = p.mm
            k = PAGE_SIZE // 1024
            self.printk(f"{message}: Killed process {p.tgid} ({p.comm}) total-vm:{mm.total_vm * k}kB, "
                        f"anon-rss:{mm.rss_anon * k}kB, file-rss:{mm.rss_file * k}kB, "
                        f"shmem-rss:{mm.rss_shmem * k}kB, UID:{p.uid} pgtables:{mm.pgtables // 1024}kB "
                        f"oom_score_adj:{p.signal.oom_score_adj}")
            self._kill(p, killed)
            return OomResult(killed, p, False, False)

        refused: set[int] = set()
        while True:  # __out_of_memory(): retry while oom_kill_process() refuses
            sel = self.select_bad_process(current_mems)
            if sel is None:
                self.printk("Kernel panic - not syncing: Out of memory and no killable processes...")
                self.printk("fakeproc: the real kernel would have stopped here; the simulation goes on")
                return OomResult(killed, None, False, True)
            p, points = sel
            if p.tid in refused:
                self.printk(f"fakeproc: livelock: select_bad_process() chose {p.tid} ({p.comm}) again and "
                            f"oom_kill_task() refused it again ({era.refusal.value}); the real kernel "
                            "retries forever here and the machine hangs")
                return OomResult(killed, None, True, False)
            self._header(current, gfp)
            self.printk(f"{message}: kill process {p.tid} ({p.comm}) score {_as_signed_long(points)} "
                        "or a child")
            victim = None
            if era.child_first:
                for c in list(p.children if p.is_leader else []):
                    if c.mm is p.mm or self._refuses(c):
                        continue
                    victim = c
                    break
            if victim is None and not self._refuses(p):
                victim = p
            if victim is not None:
                self.printk(f"Killed process {victim.tid} ({victim.comm})")
                self._kill(victim, killed)
                return OomResult(killed, victim, False, False)
            refused.add(p.tid)
