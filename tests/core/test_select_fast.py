"""The killer's inlined selection loops choose exactly what the per-task badness() specification chooses."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fakeproc.kernel.caps import CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_SYS_RESOURCE  # noqa: E402
from fakeproc.kernel.eras import ERAS  # noqa: E402
from fakeproc.machine import Machine, MachineError  # noqa: E402

from ..conftest import Writer  # noqa: E402

OPS = st.lists(st.tuples(st.sampled_from(["fork", "vfork", "clone", "thread", "exec", "exit", "mem", "cpu", "nice",
                                          "caps", "adj", "tick", "swapoff", "mems"]),
                         st.integers(0, 10_000), st.integers(-1000, 1000)), max_size=60)


def build(era: str, ops) -> Machine:
    m = Machine(ERAS[era], ram=1 << 30, swap=256 << 20, uptime=3600)
    m.spawn("init", pid=1)
    m.spawn("kthreadd", pid=2, kthread=True)
    for op, a, b in ops:
        pids = list(m.tasks)
        tid = pids[a % len(pids)]
        try:
            if op in ("fork", "vfork", "clone"):
                m.fork(tid, vfork=op == "vfork", share_vm=op == "clone")
            elif op == "thread":
                m.clone_thread(tid)
            elif op == "exec":
                m.exec(tid, "job", vm=(a % 97) << 20, rss=(a % 13) << 20)
            elif op == "exit":
                m.exit(tid)
            elif op == "mem":
                m.set_memory(tid, total_vm=a * 37 + abs(b), rss_anon=a * 5, rss_file=abs(b), swap=a % 300,
                             pgtables=a * 8)
            elif op == "cpu":
                m.charge_cpu(tid, a / 7, system=b > 0)
            elif op == "nice":
                m.task(tid).nice = b % 40 - 20
            elif op == "caps":
                m.task(tid).caps = (b & 1) << CAP_SYS_ADMIN | (b >> 1 & 1) << CAP_SYS_RESOURCE | (
                    b >> 2 & 1) << CAP_SYS_RAWIO
            elif op == "adj":
                t = m.task(tid)
                if m.era.has_score_adj:
                    m.store_adj(t, b)
                else:
                    m.store_adj(t, -17 if b < -900 else b % 32 - 16)
            elif op == "tick":
                m.tick(a * 3)
            elif op == "swapoff":
                m.task(tid).oom_origin = b > 900
            elif op == "mems":
                m.task(tid).mems = frozenset({b % 2})
        except MachineError:
            pass
    return m


@pytest.mark.parametrize("era", list(ERAS))
@settings(max_examples=150, deadline=None)
@given(ops=OPS, mems=st.sampled_from([None, frozenset({0}), frozenset({1})]))
def test_fast_selection_equals_the_reference(era, ops, mems):
    m = build(era, ops)
    fast, ref = m.select_bad_process(mems), m.select_bad_process_reference(mems)
    assert (fast and (fast[0].tid, fast[1])) == (ref and (ref[0].tid, ref[1]))


# ---------------------------------------------------------------------------------------------------
# The cache of scores (Task.oom_points / oom_until): selections interleaved with every kind of change,
# each made through the code a user reaches (control verbs, OOM file writes, the killer itself).

STEPS = st.lists(st.tuples(st.sampled_from(["fork", "fork", "vfork", "clone", "thread", "exec", "exit", "mem",
                                            "mem", "grow", "cpu", "cpu", "nice", "caps", "swapoff", "start",
                                            "adj", "write", "mems", "tick", "tick", "bigtick", "select",
                                            "select", "oom", "alloc", "direct", "direct"]),
                           st.integers(0, 10_000), st.integers(-1000, 1000)), max_size=80)


def _step(m: Machine, ctl, op: str, a: int, b: int) -> None:
    tids = list(m.tasks)
    shared = [t for t, th in m.tasks.items() if th.mm is not None and len(th.mm.users) > 1]
    if shared and b % 3 == 0:  # often a task whose mm is shared: a thread, a vfork pair, clone(CLONE_VM) peers
        tids = shared
    tid = tids[a % len(tids)]
    pid = m.tasks[tid].tgid
    if op in ("fork", "vfork", "clone", "thread"):
        ctl.run_line(None, f"{op} {tid if op != 'thread' else pid}")
    elif op == "exec":
        ctl.run_line(None, f"exec {pid} job --vm {(a % 97) + 1}M --rss {a % 13}M")
    elif op == "exit":
        ctl.run_line(None, f"exit {tid}")
    elif op == "mem":  # a process with threads, a vfork child or a clone(CLONE_VM) peer shares its mm
        ctl.run_line(None, f"mem {pid} --vm {(a * 37 + abs(b)) * 4}K --rss {a * 5 * 4}K --file-rss {abs(b) * 4}K "
                           f"--swap {(a % 300) * 4}K --pgtables {a * 8}")
    elif op == "grow":
        ctl.run_line(None, f"{'grow' if b >= 0 else 'shrink'} {pid} {a % 50}M")
    elif op == "cpu":
        ctl.run_line(None, f"cpu {tid} {a / 7:.3f}" + (" --system" if b > 0 else ""))
    elif op == "nice":
        ctl.run_line(None, f"set {pid} --nice {b % 40 - 20}")
    elif op == "caps":
        caps = [n for bit, n in ((1, "sys_admin"), (2, "sys_resource"), (4, "sys_rawio")) if b & bit]
        ctl.run_line(None, f"set {pid} --caps {','.join(caps) or 'none'}")
    elif op == "swapoff":
        ctl.run_line(None, f"set {pid} --swapoff {'on' if b > 800 else 'off'}")
    elif op == "start":
        ctl.run_line(None, f"set {pid} --start {int(m.uptime * (a % 100) / 100)}")
    elif op == "adj":  # scenario loading's path
        t = m.task(tid)
        m.store_adj(t, b if m.era.has_score_adj else (-17 if b < -900 else b % 32 - 16))
    elif op == "write":  # the OOM files, as a privileged writer
        if m.era.has_score_adj and b % 2:
            m.write_oom_score_adj(tid, str(b).encode(), Writer(True))
        else:
            m.write_oom_adj(tid, str(-17 if b < -900 else b % 32 - 16).encode(), Writer(True))
    elif op == "mems":  # no verb sets a cpuset: a direct change
        m.task(tid).mems = frozenset({b % 2})
    elif op == "direct":  # any field a score reads, assigned directly, as careless code would
        t = m.task(tid)
        field = DIRECT[a % len(DIRECT)]
        owner = t.mm if field in MM_FIELDS else t.signal if field in SIGNAL_FIELDS else t
        if owner is not None:
            setattr(owner, field, abs(b) * 977 if field not in ("oom_adj", "nice", "oom_score_adj") else
                    (b % 32 - 16 if field != "oom_score_adj" else b))
    elif op == "tick":
        ctl.run_line(None, f"tick {a % 2000}")
    elif op == "bigtick":  # past the next int_sqrt(int_sqrt(run time >> 10)) step: 1024 s, 16384 s, 82944 s...
        ctl.run_line(None, f"tick {a * 13}")
    elif op == "oom":
        ctl.run_line(None, "oom")
    elif op == "alloc":  # memory pressure: the next ticks allocate (and may call the killer)
        ctl.run_line(None, f"alloc {pid} {a * 1000}")


def _same(m: Machine, mems) -> None:
    fast, ref = m.select_bad_process(mems), m.select_bad_process_reference(mems)
    assert (fast and (fast[0].tid, fast[1])) == (ref and (ref[0].tid, ref[1]))


@pytest.mark.parametrize("era", list(ERAS))
@settings(max_examples=120, deadline=None)
@given(steps=STEPS, setup=OPS, mems=st.sampled_from([None, None, frozenset({0}), frozenset({1})]))
def test_cached_selection_equals_the_reference_under_changes(era, steps, setup, mems):
    from fakeproc.control import Control
    m = build(era, setup)
    ctl = Control(m)
    _same(m, mems)
    for op, a, b in steps:
        try:
            _step(m, ctl, op, a, b)
        except (MachineError, SystemExit):
            pass
        if op == "select":
            _same(m, mems if b > -500 else None)  # another cpuset now and then: the cache starts again
    _same(m, mems)


@pytest.mark.parametrize("era", ["2.6.32", "2.6.31"])
def test_a_cached_legacy_score_expires_with_the_run_time(era):
    """int_sqrt(int_sqrt(run time >> 10)) steps from 1 to 2 at 16384 s of run time: the score halves."""
    m = Machine(ERAS[era], uptime=0)
    m.spawn("init", pid=1)
    p = m.fork(1, uid=1000)  # no capabilities: no division by 4
    m.set_memory(p.tgid, total_vm=1000)
    m.tick(16383)
    assert m.select_bad_process() == (p, 1000)
    m.tick(1)
    assert m.select_bad_process() == (p, 500) == m.select_bad_process_reference()


def test_a_clock_stepped_back_drops_the_cache():
    """Run mode sets the uptime from the real clock; scores cached for a later uptime are not reused."""
    m = Machine(ERAS["2.6.32"], uptime=20000)
    m.spawn("init", pid=1)
    p = m.fork(1, pid=50, uid=1000)
    p.start_time = 0
    m.set_memory(50, total_vm=1000)
    assert m.select_bad_process() == (p, 500)
    m.uptime = 1000
    assert m.select_bad_process() == (p, 1000) == m.select_bad_process_reference()


# ---------------------------------------------------------------------------------------------------
# Every field a score reads is a Scored attribute (machine/task.py): assigning it forgets the scores
# that read it, so code that changes it directly ("direct" above) cannot leave a stale score behind.

MM_FIELDS = ("total_vm", "rss_anon", "rss_file", "rss_shmem", "swap", "pgtables", "oom_adj")
SIGNAL_FIELDS = ("oom_score_adj", "dead_cputime")
DIRECT = ("utime", "stime", "nice", "caps", "start_time", "oom_adj", "oom_origin") + MM_FIELDS[:-1] + SIGNAL_FIELDS


def test_every_field_a_score_reads_forgets_the_score_when_set():
    """Each input of kernel.badness that lives in a field: setting it makes the cached scores that read it
    stale (the task's own, its leader's, its parent's; an mm's: every user's)."""
    from fakeproc.machine.task import NEVER, STALE

    m = Machine(ERAS["2.6.32"], uptime=100)
    m.spawn("init", pid=1)
    p = m.fork(1, pid=10)
    th = m.clone_thread(10, tid=11)
    values = {"nice": 5, "caps": 0, "utime": 7, "stime": 7, "start_time": 1.0, "kthread": False, "oom_origin": True,
              "oom_adj": -3, "mems": frozenset({1}), "mm": p.mm, "real_parent": m.task(1), "vfork_parent": None}
    for field, value in values.items():
        for t in (m.task(1), p, th):
            t.oom_until = NEVER
        setattr(th, field, value)
        assert (th.oom_until, p.oom_until, m.task(1).oom_until) == (STALE, STALE, STALE), field
    for owner, fields in ((p.mm, MM_FIELDS), (p.signal, SIGNAL_FIELDS + ("oom_adj",))):
        for field in fields:
            for t in (m.task(1), p, th):
                t.oom_until = NEVER
            setattr(owner, field, 3)
            stale = [t.oom_until == STALE for t in (p, m.task(1))]
            assert stale == [True, True], (owner, field)


@pytest.mark.parametrize("era", ["2.6.31", "2.6.31-rc"])
def test_do_each_thread_order_decides_a_tie_with_a_later_process(era):
    """A thread started after process B still comes before B in do_each_thread(): it wins the tie."""
    m = Machine(ERAS[era], uptime=0)
    m.spawn("init", pid=1)
    a = m.fork(1, pid=10, uid=1000)
    b = m.fork(1, pid=20, uid=1000)
    for p in (a, b):
        m.set_memory(p.tgid, total_vm=1000)
    t = m.clone_thread(10, tid=30)  # shares a's mm: the same 1000 pages
    m.charge_cpu(10, 3600)  # only the leader has run: its score drops below its thread's
    assert m.select_bad_process() == (t, 1000) == m.select_bad_process_reference()
    m.exit(30)
    assert m.select_bad_process() == (b, 1000) == m.select_bad_process_reference()


def test_a_write_shared_with_a_clone_vm_peer_rescores_the_peer():
    """6.x __set_oom_adj() copies oom_score_adj to the processes sharing the mm: their scores change too."""
    m = Machine(ERAS["6.x"], uptime=0)
    m.spawn("init", pid=1)
    m.fork(1, pid=10)
    m.set_memory(10, total_vm=1000, rss_anon=1000)
    peer = m.fork(10, pid=11, share_vm=True)  # clone(CLONE_VM): its own process on a's mm
    c = m.fork(1, pid=12)
    m.set_memory(12, total_vm=10, rss_anon=10)
    assert m.select_bad_process() == (peer, 1000)  # the last of equal scores
    m.write_oom_score_adj(10, b"-1000", Writer(True))
    assert m.select_bad_process() == (c, 10) == m.select_bad_process_reference()


def test_exec_by_a_vfork_parent_makes_its_child_killable():
    """6.x in_vfork() compares the child's mm with the parent's: a new mm in the parent ends it."""
    m = Machine(ERAS["6.x"], uptime=0)
    m.spawn("init", pid=1)
    a = m.fork(1, pid=10)
    m.set_memory(10, total_vm=1000, rss_anon=1000)
    child = m.fork(10, pid=11, vfork=True)
    assert m.select_bad_process() == (a, 1000)  # the vfork child is skipped
    m.exec(10, "next", vm=1 << 20, rss=4096)
    assert m.select_bad_process() == (child, 1000) == m.select_bad_process_reference()


# ---------------------------------------------------------------------------------------------------
# Every cached legacy score, not only the chosen one, is badness()'s: after the run-time root steps
# (recomputed from Task.oom_pre), after a cpuset switch (only the tasks it changes are scored again),
# with doublings and shifts near ULONG_MAX, niced and capable tasks, oom_adj of every sign.

ULONG_MAX = (1 << 64) - 1
_VM = st.one_of(st.integers(0, 5_000), st.integers(0, 1 << 40), st.integers((1 << 63) - 4096, (1 << 63) + 4096),
                st.integers(ULONG_MAX - 4096, ULONG_MAX))
_PROC = st.tuples(_VM,  # total_vm
                  st.one_of(st.just(0), st.integers(0, 1 << 30)),  # cpu jiffies
                  st.integers(-20, 19),  # nice
                  st.integers(0, 7),  # caps: sys_admin, sys_resource, sys_rawio
                  st.one_of(st.integers(-17, 15), st.sampled_from([-17, -16, -1, 0, 1, 15])),  # oom_adj
                  st.integers(0, 400_000),  # start time
                  st.integers(0, 2),  # mems: {0}, {1}, {0, 1}
                  st.integers(0, 10),  # parent: init, or an earlier process (its total_vm counts half)
                  st.integers(0, 30))  # 0: swapoff (oom_origin)
_MEMS = st.sampled_from([None, frozenset({0}), frozenset({1}), frozenset({0, 1})])


@pytest.mark.parametrize("era", ["2.6.32", "2.6.31-rc", "2.6.31"])
@settings(max_examples=300, deadline=None)
@given(procs=st.lists(_PROC, min_size=1, max_size=8), uptime=st.integers(0, 300_000),
       hz=st.sampled_from([100, 250, 1000]),
       steps=st.lists(st.tuples(st.one_of(st.integers(0, 2000), st.integers(0, 2_000_000)), _MEMS), min_size=1,
                      max_size=8), memo=st.sampled_from([1, 4096]))
def test_every_cached_legacy_score_is_badness(era, procs, uptime, hz, steps, memo):
    from fakeproc.machine import killer
    saved, killer.ROOT_MEMO_SIZE = killer.ROOT_MEMO_SIZE, memo  # 1: the memo of run-time roots overflows
    try:
        _check_every_cached_legacy_score(era, procs, uptime, hz, steps)
    finally:
        killer.ROOT_MEMO_SIZE = saved


def _check_every_cached_legacy_score(era, procs, uptime, hz, steps):
    from fakeproc.kernel.caps import CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_SYS_RESOURCE
    m = Machine(ERAS[era], uptime=uptime, hz=hz)
    m.spawn("init", pid=1)
    made = []
    for vm, cpu, nice, caps, adj, start, node, parent, origin in procs:
        ppid = made[parent - 1].tgid if 0 < parent <= len(made) else 1
        p = m.fork(ppid, uid=1000)
        p.mm.total_vm = vm
        p.utime, p.nice, p.start_time = cpu, nice, start
        p.caps = (caps & 1) << CAP_SYS_ADMIN | (caps >> 1 & 1) << CAP_SYS_RESOURCE | (caps >> 2 & 1) << CAP_SYS_RAWIO
        p.mems = (frozenset({0}), frozenset({1}), frozenset({0, 1}))[node]
        p.oom_origin = origin == 0
        m.store_adj(p, adj)
        made.append(p)
    for seconds, mems in steps:
        m.tick(seconds)
        fast, ref = m.select_bad_process(mems), m.select_bad_process_reference(mems)
        assert (fast and (fast[0].tid, fast[1])) == (ref and (ref[0].tid, ref[1]))
        for p in made:
            if p.oom_points is not None:
                assert p.oom_points == m.badness(p, mems), (p, p.oom_pre)
