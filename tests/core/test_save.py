"""Saving a machine and loading it again, value for value.

(a) randomly built machines, every era: dump -> load -> dump gives the same text, and every OOM
    file of every thread reads the same on both machines, before and after the killer runs;
(tests/mount/test_save.py: `fakeproc save` and `--save-on-exit` through real mounts.)
"""

from __future__ import annotations

import pytest

from fakeproc.kernel.eras import ERAS, AdjHome
from fakeproc.machine import Caller, Machine, MachineError
from fakeproc.machine.scenario import ScenarioError, build_machine, dump_scenario, load_scenario
from fakeproc.machine.task import PAGE_SIZE, Mm

from ..conftest import Writer

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ERA_LIST = list(ERAS)


# --------------------------------------------------------------------------------------------------
# (a) property: random machines built with the Machine API


def reads(m: Machine) -> dict[int, tuple[bytes, ...]]:
    """Every OOM file of every thread, as the filesystem would serve it."""
    out = {}
    for tid in sorted(m.tasks):
        out[tid] = (m.read_oom_adj(tid), m.read_oom_score(tid), m.read_oom_score_adj(tid),
                    m.read_oom_score(tid, frozenset({0})), m.read_oom_score(tid, frozenset({1})))
    return out


def ps(m: Machine) -> list[dict[str, object]]:
    return sorted((m.describe(p) for p in m.iter_processes()), key=lambda r: r["pid"])


def assert_same(a: Machine, b: Machine) -> None:
    assert reads(a) == reads(b)
    assert ps(a) == ps(b)
    assert a.log.text() == b.log.text()
    assert (a.next_pid, a.deprecation_warned, a.uptime) == (b.next_pid, b.deprecation_warned, b.uptime)
    assert (a.halt.reason, a.sysctl.values) == (b.halt.reason, b.sysctl.values)


def pick(data, items, label):
    items = sorted(items, key=lambda t: t.tid)
    return data.draw(st.sampled_from(items), label=label) if items else None


def value_bytes(data, era_name: str, score_adj: bool) -> bytes:
    lo, hi = (-1000, 1000) if score_adj else (-17, 15)
    v = data.draw(st.one_of(st.integers(lo, hi), st.integers(lo - 5, hi + 5)), label="value")
    return data.draw(st.sampled_from([b"%d\n" % v, b"%d" % v, b" %d \n" % v, b"junk", b"%dx" % v]), label="bytes")


def build_random_machine(data, era_name: str) -> Machine:
    era = ERAS[era_name]
    m = Machine(era, ram=data.draw(st.integers(1, 1 << 20), label="ram pages") * PAGE_SIZE,
                swap=data.draw(st.integers(0, 1 << 18), label="swap pages") * PAGE_SIZE,
                hz=data.draw(st.sampled_from([100, 250, 300, 1000]), label="hz"),
                uptime=data.draw(st.one_of(st.integers(0, 10**6), st.floats(0, 1e6)), label="uptime"))
    late_init = data.draw(st.booleans(), label="init created late")
    if late_init:  # a process older than init, whose children init will adopt
        m.spawn("early", pid=50, mm=Mm(total_vm=100, rss_anon=50))
        m.fork(50, comm="early-child")
    rss = data.draw(st.integers(0, 500))
    m.spawn("init", pid=1, mm=Mm(total_vm=rss + data.draw(st.integers(0, 5000)), rss_anon=rss))
    if data.draw(st.booleans(), label="kthreadd"):
        m.spawn("kthreadd", pid=2, kthread=True)
    comms = st.text(st.characters(blacklist_categories=("Cs",)), max_size=18)
    for _ in range(data.draw(st.integers(0, 30), label="steps")):
        op = data.draw(st.sampled_from([
            "fork", "fork", "vfork", "vfork", "clone", "thread", "thread", "exec", "exit", "exit", "memory",
            "grow", "cpu", "tick", "store", "write", "write", "attrs", "oom", "spawn", "alloc", "clock"]), label="op")
        tasks = list(m.tasks.values())
        if not tasks:  # 2.6.31-rc's killer can take init too
            break
        procs = list(m.processes.values())
        user_tasks = [t for t in tasks if t.mm is not None]
        try:
            if op in ("fork", "vfork", "clone"):
                pt = pick(data, user_tasks if op != "fork" else tasks, "parent")
                if pt is None:
                    continue
                uid = data.draw(st.sampled_from([None, 0, 1000]), label="uid") if op == "fork" else None
                comm = data.draw(st.one_of(st.none(), comms), label="comm")
                m.fork(pt.tid, uid=uid, comm=comm, vfork=op == "vfork", share_vm=op == "clone")
            elif op == "thread":
                m.clone_thread(pick(data, tasks, "creator").tid)
            elif op == "exec":
                p = pick(data, [p for p in procs if not p.kthread], "execer")
                if p is not None:
                    m.exec(p.tid, data.draw(comms, label="new comm"),
                           vm=data.draw(st.integers(0, 1 << 30)), rss=data.draw(st.integers(0, 1 << 28)))
            elif op == "exit":
                m.exit(pick(data, tasks, "exiting").tid)
            elif op == "memory":
                p = pick(data, procs, "mem")
                fields = data.draw(st.dictionaries(
                    st.sampled_from(["total_vm", "rss_anon", "rss_file", "rss_shmem", "swap", "pgtables"]),
                    st.integers(0, 1 << 22)), label="fields")
                m.set_memory(p.tid, **fields)
            elif op == "grow":
                m.grow(pick(data, procs, "grower").tid, data.draw(st.integers(-(1 << 30), 1 << 30)))
            elif op == "cpu":
                m.charge_cpu(pick(data, tasks, "cpu").tid, data.draw(st.floats(0, 1e5)), data.draw(st.booleans()))
            elif op == "alloc":  # memory pressure: the next ticks may allocate and call the killer
                p = pick(data, [p for p in procs if p.mm is not None], "allocator")
                if p is not None:
                    m.set_alloc_rate(p.tid, data.draw(st.integers(0, 64 << 20), label="rate"))
            elif op == "clock":
                m.clock_scale = data.draw(st.sampled_from([0.0, 1.0, 60.0, 2.5]), label="clock")
            elif op == "tick":
                m.tick(data.draw(st.one_of(st.integers(0, 10**5), st.floats(0, 1e5)), label="tick"))
            elif op == "store":
                p = pick(data, procs, "store")
                if era.has_score_adj:
                    m.store_adj(p, data.draw(st.integers(-1000, 1000)),
                                data.draw(st.one_of(st.none(), st.integers(-1000, 1000))))
                else:
                    m.store_adj(p, data.draw(st.sampled_from([-17, *range(-16, 16)])))
            elif op == "write":
                t = pick(data, tasks, "written")
                writer = Writer(data.draw(st.booleans(), label="privileged"))
                if era.has_score_adj and data.draw(st.booleans(), label="oom_score_adj file"):
                    m.write_oom_score_adj(t.tid, value_bytes(data, era_name, True), writer)
                else:
                    m.write_oom_adj(t.tid, value_bytes(data, era_name, False), writer)
            elif op == "attrs":  # what `ctl set` changes, and what only a scenario sets; some on one thread
                t = pick(data, tasks, "attrs")
                who = t.signal.threads if data.draw(st.booleans(), label="whole process") else [t]
                nice = data.draw(st.one_of(st.none(), st.integers(-20, 19)), label="nice")
                caps = data.draw(st.one_of(st.none(), st.sampled_from([0, (1 << 41) - 1, 1 << 21, (1 << 24) | 1,
                                                                       (1 << 40) | (1 << 33)])), label="caps")
                comm = data.draw(st.one_of(st.none(), comms), label="comm")
                swapoff = data.draw(st.one_of(st.none(), st.booleans()), label="swapoff")
                mems = data.draw(st.one_of(st.none(), st.frozensets(st.integers(0, 3), max_size=3)), label="mems")
                start = data.draw(st.one_of(st.none(), st.floats(0, m.uptime)), label="start")
                for th in who:
                    th.nice = th.nice if nice is None else nice
                    th.caps = th.caps if caps is None else caps
                    th.comm = th.comm if comm is None else comm[:15]
                    th.oom_origin = th.oom_origin if swapoff is None else swapoff
                    th.mems = th.mems if mems is None else mems
                    th.start_time = th.start_time if start is None else start
            elif op == "oom":
                m.out_of_memory(Caller(0, 0, "test"), sysrq=data.draw(st.booleans(), label="sysrq"))
            elif op == "spawn":  # as run mode enters a process it never saw born, maybe under an old pid
                free = [pid for pid in range(1, m.next_pid) if pid not in m.tasks]
                pid = data.draw(st.one_of(st.none(), st.sampled_from(free)) if free else st.none(), label="pid")
                parent = pick(data, procs, "spawn parent") if data.draw(st.booleans()) else None
                rss = data.draw(st.integers(0, 9999))
                m.spawn(data.draw(comms, label="comm"), pid=pid, parent=parent, uid=data.draw(st.sampled_from([0, 7])),
                        mm=Mm(total_vm=rss + data.draw(st.integers(0, 99999)), rss_anon=rss,
                              pgtables=data.draw(st.integers(0, 99999))))
        except MachineError:
            pass
    return m


@pytest.mark.parametrize("era_name", ERA_LIST)
@settings(max_examples=50, deadline=None, database=None)
@given(data=st.data())
def test_dump_load_dump_is_the_same_machine(era_name, data):
    m = build_random_machine(data, era_name)
    # a scenario needs init; 2.6.31-rc's killer takes it along when it shares its mm with a vfork child
    assume(1 in m.processes)
    text = dump_scenario(m)
    loaded = build_machine(text, ERAS[era_name], "<dump>")
    assert dump_scenario(loaded) == text
    assert_same(m, loaded)
    # and they go on alike: the killer picks the same victims, forks get the same pids
    for _ in range(3):
        if m.halt.reason is not None:  # a panic (nothing killable, init killed) stops both alike
            with pytest.raises(MachineError):
                loaded.out_of_memory(Caller(0, 0, "test"))
            break
        ra = m.out_of_memory(Caller(0, 0, "test"))
        rb = loaded.out_of_memory(Caller(0, 0, "test"))
        assert [t.tid for t in ra.killed] == [t.tid for t in rb.killed]
        assert dump_scenario(m) == dump_scenario(loaded)
        assert_same(m, loaded)
    if 1 in m.processes:
        assert m.fork(1).tid == loaded.fork(1).tid


@pytest.mark.parametrize("era_name", ERA_LIST)
def test_the_default_scenario_round_trips(era_name):
    m = load_scenario(None, ERAS[era_name])
    text = dump_scenario(m)
    loaded = build_machine(text, ERAS[era_name])
    assert dump_scenario(loaded) == text
    assert_same(m, loaded)
    assert f'kernel = "{era_name}"' in text


def test_the_tricky_cases_by_hand():
    """vfork parents that exec'd or exited, a thread's own vfork child, clone_vm peers, odd sizes.

    in_vfork() (6.x include/linux/sched/mm.h) compares the child's mm with its *current* real parent's:
    v1's parent thread dies in a2's exec (de_thread()) and v1 goes to a2 (find_new_reaper(): the next live
    thread), whose exec gave it a new mm; v3's parent c exits and v3 goes to init; v4's parent thread exits
    and v4 goes to its process's leader, which still shares v4's mm."""
    m = load_scenario(None, ERAS["6.x"])
    a = m.fork(1, comm="a").tid
    m.set_memory(a, pgtables=1000)  # not whole pages
    t = m.clone_thread(a).tid
    v1 = m.fork(t, vfork=True, comm="v1").tid  # vfork()ed by a non-leader thread ...
    v2 = m.fork(a, vfork=True, comm="v2").tid
    m.exec(a, "a2")  # exec() ends that thread: v1 still shares the old mm; a2 (its new parent) has a new one
    c = m.fork(400, share_vm=True, comm="c").tid
    v3 = m.fork(c, vfork=True).tid
    m.exit(c)  # v3's vfork parent is gone but its mm lives on in v3
    b = m.fork(1, comm="b").tid
    bt = m.clone_thread(b).tid
    v4 = m.fork(bt, vfork=True, comm="v4").tid
    m.exit(bt)
    m.write_oom_adj(402, b"5", Writer(True))
    m.write_oom_score_adj(401, b"-100", Writer(True))
    text = dump_scenario(m)
    assert "pgtables_bytes = 1000" in text
    assert f"vfork_parent_exited = {a}" in text and f"vfork_parent_exited = {c}" in text
    assert f"vfork_parent = {a}" in text and f"vfork_parent_exited = {b}" in text
    assert "in_vfork" not in text  # it follows from the tree
    assert "oom_adj_deprecation_warned = true" in text and "[[dmesg]]" in text
    loaded = build_machine(text, ERAS["6.x"])
    assert dump_scenario(loaded) == text
    assert_same(m, loaded)
    assert m.task(v1).real_parent.tid == a and m.task(v3).real_parent.tid == 1 and m.task(v4).real_parent.tid == b
    for pid, in_vfork in ((v1, False), (v2, False), (v3, False), (v4, True)):
        assert loaded.task(pid).in_vfork is m.task(pid).in_vfork is in_vfork
        # 6.x: a task in vfork is unkillable (oom_badness() LONG_MIN)
        assert (loaded.killer.unkillable_reason(loaded.task(pid)) == "in vfork (shares its parent's mm)") is in_vfork
        assert loaded.describe(loaded.task(pid))["flags"] == m.describe(m.task(pid))["flags"]


def test_children_order_and_thread_parents_round_trip():
    """A child forked by a thread names the thread as its parent; a reaper's list keeps the order re-parenting
    gave it (list_move_tail() appends), which the file writes where the loader would not rebuild it."""
    m = Machine(ERAS["2.6.32"], uptime=100)
    m.spawn("init", pid=1)
    p = m.fork(1, comm="p")
    th = m.clone_thread(p.tid)
    k1 = m.fork(th.tid, comm="k1")  # hangs off the thread
    k2 = m.fork(p.tid, comm="k2")
    k1t = m.clone_thread(k1.tid)
    k3 = m.fork(th.tid, comm="k3")
    m.exit(th.tid)  # k1 (with its thread) and k3 go to p, after k2
    assert [c.comm for c in p.children] == ["k2", "k1", "k1", "k3"]
    text = dump_scenario(m)
    assert f"children = [{k2.tid}, {k1.tid}, {k1t.tid}, {k3.tid}]" in text
    loaded = build_machine(text, m.era)
    assert [c.tid for c in loaded.process(p.tid).children] == [c.tid for c in p.children]
    assert dump_scenario(loaded) == text
    m2 = Machine(ERAS["2.6.32"], uptime=100)
    m2.spawn("init", pid=1)
    q = m2.fork(1, comm="q")
    qt = m2.clone_thread(q.tid)
    kid = m2.fork(qt.tid, comm="kid")
    text2 = dump_scenario(m2)
    assert f"parent = {qt.tid}" in text2 and "children" not in text2
    assert build_machine(text2, m2.era).task(kid.tid).real_parent.tid == qt.tid
    with pytest.raises(ScenarioError, match="children of"):
        build_machine(text2.replace("comm = \"q\"", "comm = \"q\"\nchildren = [1]"), m2.era)


def test_a_re_parented_child_older_than_init_keeps_its_place():
    """Processes are written in creation order (for_each_process()'s); the child adopted by an init created
    after it names a parent listed later, attached once every process exists."""
    m = Machine(ERAS["2.6.32"], uptime=100)
    m.spawn("early", pid=50)
    child = m.fork(50, comm="kid")
    m.spawn("init", pid=1)
    m.exit(50)
    assert child.parent.tgid == 1 and list(m.processes) == [child.tid, 1]
    text = dump_scenario(m)
    loaded = build_machine(text, m.era)
    assert list(loaded.processes) == [child.tid, 1] and loaded.task(child.tid).real_parent.tid == 1
    assert [c.tid for c in loaded.task(1).children] == [child.tid]
    assert dump_scenario(loaded) == text
    assert_same(m, loaded)
    with pytest.raises(ScenarioError, match="parent 7 is not a process"):
        build_machine(text.replace("parent = 1", "parent = 7"), m.era)


def test_scenario_strings_are_escaped():
    m = Machine(ERAS["2.6.32"])
    m.spawn('in"it\\\n\x00\x7f\u00e9', pid=1)
    m.printk('a "quoted"\tline\r\n\x1b[0m')
    loaded = build_machine(dump_scenario(m), m.era)
    assert loaded.process(1).comm == m.process(1).comm
    assert loaded.log.text() == m.log.text()


def test_old_files_still_load_and_new_keys_are_checked():
    era = ERAS["2.6.32"]
    base = '[[process]]\npid = 1\ncomm = "init"\nvm = "1M"\n'
    with pytest.raises(ScenarioError, match="cpu/sys_cpu"):
        build_machine(base + 'threads = [{ tid = 5, utime = 3 }]\ncpu = "1s"\n', era)
    with pytest.raises(ScenarioError, match="takes its memory"):
        build_machine(base + '[[process]]\npid = 2\nparent = 1\ncomm = "x"\nmm = 1\nvm = "1M"\n', era)
    with pytest.raises(ScenarioError, match="exclude each other"):
        build_machine(base + '[[process]]\npid = 2\nparent = 1\ncomm = "x"\nvfork = true\nmm = 1\n', era)
    with pytest.raises(ScenarioError, match="kernel must be"):
        build_machine('[machine]\nkernel = "3.0"\n' + base, era)
    m = build_machine(base + 'threads = [7, { tid = 9, comm = "worker", start = 0 }]\ncaps = 0x3\n'
                      '[machine]\nnext_pid = 100\n', era)
    assert [t.tid for t in m.process(1).signal.threads] == [1, 7, 9]
    assert m.task(9).comm == "worker" and m.process(1).caps == 3 and m.fork(1).tid == 100


def test_a_saved_file_loads_under_another_era_with_converted_values():
    m = load_scenario(None, ERAS["2.6.32"])
    text = dump_scenario(m)
    modern = build_machine(text, ERAS["6.x"])
    assert modern.read_oom_score_adj(400) == b"-1000\n"  # oom_adj -17 becomes oom_score_adj -1000


def test_per_thread_values_of_2_6_31_are_kept():
    m = load_scenario(None, ERAS["2.6.31"])
    m.write_oom_adj(603, b"-17", Writer(True))
    m.charge_cpu(605, 90)
    m.tick(60)
    m.clone_thread(600)
    loaded = build_machine(dump_scenario(m), m.era)
    assert loaded.read_oom_adj(603) == b"-17\n" and loaded.read_oom_adj(600) == b"0\n"
    assert_same(m, loaded)
    assert m.era.adj_home is AdjHome.TASK
