"""Random machines against a reference that keeps its own process tree (issue #14, spec §5.1, §5.2).

The reference replays the same control lines on a shadow of the kernel's task list, written from the
kernel's code and nothing of fakeproc's: copy_process() (``p->real_parent = current``, or
``current->real_parent`` for CLONE_THREAD; ``list_add_tail(&p->sibling, &p->real_parent->children)``
for every task), find_new_reaper() and forget_original_parent() (the next live thread after the exiting
one in its group, else init; ``list_move_tail`` of each child), de_thread() at exec, and the
credentials of cap_bprm_set_creds() and cap_emulate_setxuid().  From that tree and the machine's
memory and CPU figures it computes each process's badness() (kernel.badness, the spec's formula),
chooses as select_bad_process() does and kills as oom_kill_process() does, child first along the
list.  ``oom_score``, ``explain``, ``oom --dry-run`` and ``oom`` must agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fakeproc.control import Control  # noqa: E402
from fakeproc.kernel.badness import LegacyInputs, legacy_badness  # noqa: E402
from fakeproc.kernel.caps import CAP_ALL, CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_SYS_RESOURCE  # noqa: E402
from fakeproc.kernel.eras import ERAS  # noqa: E402
from fakeproc.machine import Machine  # noqa: E402
from fakeproc.machine.explain import explain, rank  # noqa: E402


@dataclass
class Shadow:
    tgid: int
    rp: int | None  # real_parent's tid
    uid: int
    caps: int
    children: list[int] = field(default_factory=list)
    vfork_done: bool = False


class Tree:
    """The kernel's task list, kept apart from fakeproc's."""

    def __init__(self) -> None:
        self.t: dict[int, Shadow] = {}
        self.processes: list[int] = []  # for_each_process(): leaders in creation order
        self.groups: dict[int, list[int]] = {}  # tgid -> the thread list, the leader first

    def add(self, tid: int, tgid: int, rp: int | None, uid: int, caps: int) -> None:
        self.t[tid] = Shadow(tgid, rp, uid, caps)
        if tid == tgid:
            self.processes.append(tid)
        self.groups.setdefault(tgid, []).append(tid)
        if rp is not None:
            self.t[rp].children.append(tid)

    def fork(self, new: int, by: int, uid: int | None, vfork: bool) -> None:
        me = self.t[by]
        self.add(new, new, by, me.uid, me.caps)  # p->real_parent = current
        if uid is not None and uid != me.uid:
            self.setuid(new, uid)
        self.t[new].vfork_done = vfork

    def thread(self, new: int, by: int) -> None:
        me = self.t[by]
        self.add(new, me.tgid, me.rp, me.uid, me.caps)  # CLONE_THREAD: current->real_parent

    def setuid(self, tid: int, uid: int) -> None:
        s = self.t[tid]
        if s.uid == 0 and uid != 0:  # cap_emulate_setxuid(): leaving root clears the sets
            s.caps = 0
        s.uid = uid

    def release(self, tid: int, exiting: set[int]) -> None:
        s = self.t[tid]
        if s.children:
            group = self.groups[s.tgid]
            i = group.index(tid)
            reaper = next((th for th in group[i + 1:] + group[:i] if th not in exiting), 1 if 1 in self.t else None)
            for c in s.children:
                self.t[c].rp = reaper
                if reaper is not None:
                    self.t[reaper].children.append(c)
            s.children = []
        self.groups[s.tgid].remove(tid)
        if s.rp is not None and s.rp in self.t:
            self.t[s.rp].children.remove(tid)
        if tid == s.tgid:
            self.processes.remove(tid)
        del self.t[tid]

    def exit_group(self, tgid: int) -> None:
        threads = list(self.groups[tgid])
        for th in threads:
            self.release(th, set(threads))

    def exec(self, pid: int) -> None:
        others = self.groups[pid][1:]
        for th in list(others):
            self.release(th, set(others))
        s = self.t[pid]
        s.caps = CAP_ALL if s.uid == 0 else 0  # cap_bprm_set_creds()
        s.vfork_done = False


OPS = st.lists(st.tuples(st.sampled_from(["fork", "fork", "fork", "forkuid", "vfork", "thread", "thread",
                                          "thread", "exec", "exit", "exit", "exit", "setuid", "caps", "mem", "cpu",
                                          "oom", "adj"]),
                         st.integers(0, 10_000), st.integers(0, 10_000)), min_size=5, max_size=60)


def reference_badness(m: Machine, tree: Tree, tid: int) -> int:
    t, s = m.task(tid), tree.t[tid]
    mm = t.mm
    kids = [m.task(c).mm for c in s.children]
    per_process = m.era.per_process
    cpu = sum(m.task(th).utime + m.task(th).stime for th in tree.groups[s.tgid]) + t.signal.dead_cputime \
        if per_process else t.utime + t.stime
    return legacy_badness(LegacyInputs(
        oom_adj=m.killer.adj(t), has_mm=mm is not None, total_vm=mm.total_vm if mm else 0, oom_origin=t.oom_origin,
        children_vm=tuple(k.total_vm for k in kids if k is not None and k is not mm), cpu_jiffies=cpu,
        uptime_s=int(m.uptime), start_time_s=int(t.start_time), nice=t.nice,
        cap_admin_or_resource=bool(s.caps >> CAP_SYS_ADMIN & 1 or s.caps >> CAP_SYS_RESOURCE & 1),
        cap_rawio=bool(s.caps >> CAP_SYS_RAWIO & 1), mems_intersect=True, hz=m.hz), adj_first=m.era.badness_adj_first)


def reference_choice(m: Machine, tree: Tree) -> tuple[int, int] | None:
    """select_bad_process() of 2.6.32 (leaders) or 2.6.31 (every thread; init's other threads too)."""
    era = m.era
    candidates = tree.processes if era.per_process else [th for p in tree.processes for th in tree.groups[p]]
    chosen = None
    for tid in candidates:
        t = m.task(tid)
        if t.mm is None or (tid if not era.per_process else t.tgid) == 1 or m.killer.adj(t) == -17:
            continue
        points = reference_badness(m, tree, tid)
        if chosen is None or points > chosen[1]:
            chosen = (tid, points)
    return chosen


def reference_victim(m: Machine, tree: Tree, tid: int) -> int:
    """2.6.32/2.6.31 oom_kill_process(): the first entry of the chosen task's list with another mm that
    oom_kill_task() accepts, else the task itself."""
    mm = m.task(tid).mm
    for c in tree.t[tid].children:
        ct = m.task(c)
        if ct.mm is not mm and not m.killer._refuses(ct):
            return c
    return tid


def check(m: Machine, tree: Tree) -> None:
    assert {tid: s.rp for tid, s in tree.t.items()} == {tid: t.real_parent.tid if t.real_parent else None
                                                       for tid, t in m.tasks.items()}
    assert {tid: s.children for tid, s in tree.t.items()} == {tid: [c.tid for c in t.children]
                                                             for tid, t in m.tasks.items()}
    assert {tid: s.caps for tid, s in tree.t.items()} == {tid: t.caps for tid, t in m.tasks.items()}
    for tid in (tree.processes if m.era.per_process else list(tree.t)):
        t = m.task(tid)
        if t.mm is None or (t.tgid if m.era.per_process else tid) == 1:
            continue
        score = int(m.read_oom_score(tid))
        assert score == reference_badness(m, tree, tid), tid
        assert explain(m, tid, None)[1] == score
    ranked, chosen = rank(m, None)
    ref = reference_choice(m, tree)
    assert (chosen.tid if chosen is not None else None) == (ref[0] if ref else None)


def start(era: str) -> tuple[Machine, Tree, Control]:
    """A machine of init alone, its reference tree, and the control verbs that change both."""
    m = Machine(ERAS[era], ram=1 << 30, swap=256 << 20, uptime=5000)
    tree = Tree()
    m.spawn("init", pid=1)
    tree.add(1, 1, None, 0, CAP_ALL)
    return m, tree, Control(m)


def exit_both(ctl: Control, tree: Tree, tid: int, pid: int) -> None:
    """``exit TID``: exit_group() of a process, exit() of a thread, in the machine and in the tree."""
    ctl.run_line(None, f"exit {tid}")
    if tid == pid:
        tree.exit_group(pid)
    else:
        tree.release(tid, {tid})


@pytest.mark.parametrize("era", ["2.6.32", "2.6.31"])
@settings(max_examples=120, deadline=None)
@given(ops=OPS)
def test_the_tree_scores_and_victims_equal_the_reference(era, ops):
    m, tree, ctl = start(era)
    for op, a, b in ops:
        tids = sorted(tree.t)
        tid = tids[a % len(tids)]
        pid = tree.t[tid].tgid
        if op in ("fork", "forkuid", "vfork"):
            uid = 1000 + b % 2 if op == "forkuid" else None
            if op == "vfork" and m.task(tid).mm is None:
                continue
            line = f"{'vfork' if op == 'vfork' else 'fork'} {tid}" + (f" --uid {uid}" if uid is not None else "")
            new = int(ctl.run_line(None, line))
            tree.fork(new, tid, uid, op == "vfork")
        elif op == "thread":
            new = int(ctl.run_line(None, f"thread {tid}"))
            tree.thread(new, tid)
        elif op == "exec":
            ctl.run_line(None, f"exec {pid} job --vm {(a % 97) + 13}M --rss {a % 13}M")
            tree.exec(pid)
        elif op == "exit":
            if tid == 1:
                continue
            exit_both(ctl, tree, tid, pid)
        elif op == "setuid":
            uid = 0 if b % 3 == 0 else 1000
            ctl.run_line(None, f"set {pid} --uid {uid}")
            for th in tree.groups[pid]:
                tree.setuid(th, uid)
        elif op == "caps":
            names = [n for bit, n in ((1, "sys_admin"), (2, "sys_resource"), (4, "sys_rawio")) if b & bit]
            ctl.run_line(None, f"set {pid} --caps {','.join(names) or 'none'}")
            for th in tree.groups[pid]:
                tree.t[th].caps = m.task(th).caps
        elif op == "mem":
            if m.task(pid).mm is not None:
                ctl.run_line(None, f"mem {pid} --vm {a * 37 + b}K --rss 0")
        elif op == "cpu":
            ctl.run_line(None, f"cpu {tid} {a / 7:.3f}")
        elif op == "adj":
            m.store_adj(m.task(pid), -17 if b % 5 == 0 else b % 32 - 16)
        elif op == "oom":
            ref = reference_choice(m, tree)
            if ref is None:
                break  # 2.6.x panics on no candidate: the machine stops (tested elsewhere)
            expected = reference_victim(m, tree, ref[0])
            result = m.out_of_memory(m.caller_of(m.task(1)))
            if m.halt.reason is not None:  # 2.6.31: init's thread, or init shares the victim's mm (a vfork child)
                assert m.halt.reason == "Attempted to kill init!"
                assert tree.t[expected].tgid == 1 or m.task(1).mm is result.killed[0].mm
                break
            if result.livelock:  # 2.6.31: oom_kill_task() refuses while a sharer of the mm is at -17, forever
                assert era == "2.6.31" and m.killer._refuses(m.task(expected))
                break
            assert result.victim is not None and result.victim.tid == expected
            for t in result.killed:
                if t.is_leader:
                    tree.exit_group(t.tgid)
        check(m, tree)


@settings(max_examples=120, deadline=None)
@given(ops=OPS)
def test_6_x_in_vfork_follows_the_current_real_parent(ops):
    """in_vfork(): ``tsk->vfork_done && real_parent->mm == tsk->mm``, with the parent the reference's tree
    names after every re-parenting."""
    m, tree, ctl = start("6.x")
    for op, a, _b in ops:
        tids = sorted(tree.t)
        tid = tids[a % len(tids)]
        pid = tree.t[tid].tgid
        if op in ("fork", "forkuid", "vfork"):
            new = int(ctl.run_line(None, f"{'vfork' if op == 'vfork' else 'fork'} {tid}"))
            tree.fork(new, tid, None, op == "vfork")
        elif op == "thread":
            tree.thread(int(ctl.run_line(None, f"thread {tid}")), tid)
        elif op == "exec":
            ctl.run_line(None, f"exec {pid} job")
            tree.exec(pid)
        elif op in ("exit", "oom") and tid != 1:
            exit_both(ctl, tree, tid, pid)
        for t_id, s in tree.t.items():
            t = m.task(t_id)
            rp = s.rp
            expected = s.vfork_done and rp is not None and m.task(rp).mm is t.mm and t.mm is not None
            assert t.in_vfork is expected, t_id
            if t.is_leader and t.tgid != 1:
                assert (m.killer.unkillable_reason(t) == "in vfork (shares its parent's mm)") is expected
