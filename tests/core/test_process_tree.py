"""The process tree the killer walks, credentials, SysRq-f and panics (issue #14; spec §5.1, §5.2, §7.1).

Every expected value is computed by hand from the kernel lines quoted beside it.  The machine is
``MINIMAL``: init (pid 1) and kthreadd (pid 2), so the first fork is pid 3; 4 GiB of RAM and 1 GiB of
swap; uptime 0 and no CPU time, so 2.6.32 badness() divides by nothing for time.  Every process is
root with every capability unless a test says otherwise, so 2.6.32 divides by 4 for CAP_SYS_ADMIN
and by 4 again for CAP_SYS_RAWIO (16 in all).

(tests/mount/test_process_tree.py drives the same rules through a real mount with ctl, sh and cat.)
"""

from __future__ import annotations

import errno

import pytest

from fakeproc.kernel.eras import ERAS
from fakeproc.machine import Caller, Machine

MINIMAL = """
[machine]
ram = "4G"
swap = "1G"
[[process]]
pid = 1
comm = "init"
vm = "20M"
rss = "40k"
[[process]]
pid = 2
comm = "kthreadd"
kthread = true
"""


@pytest.fixture
def m32(core_factory):
    return core_factory("2.6.32", text=MINIMAL)


def kill_lines(out: str) -> list[str]:
    """The lines of an OOM report that say who is chosen and killed."""
    lines = [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith("[")]
    return [line for line in lines if line.startswith(("Out of memory", "Killed process", "Kernel panic"))]


def run(mnt, script: str) -> None:
    for line in script.split(";"):
        mnt.ctl(*line.split())


# ------------------------------------------------------------------ 1. the children list of copy_process()


def test_threads_of_a_child_are_entries_of_the_parents_list(m32):
    """2.6.32 kernel/fork.c copy_process(): ``list_add_tail(&p->sibling, &p->real_parent->children)`` for every
    task, a thread too, whose real_parent is its creator's (CLONE_THREAD takes ``current->real_parent``).
    badness(): ``list_for_each_entry(child, &p->children, sibling) { if (child->mm != mm && child->mm)
    points += child->mm->total_vm/2 + 1; }``.  3's list: 4 (10 pages), 5, 6, 7 (5 and its two threads, 100000
    pages each): 10000 + (5 + 1) + 3 * (50000 + 1) = 160009; / 4 / 4 = 10000."""
    run(m32, "fork 1 --comm parent; mem 3 --vm 40000k; fork 3 --comm small; mem 4 --vm 40k; fork 3 --comm big;"
             "mem 5 --vm 400000k; thread 5; thread 5")
    assert [c.tid for c in m32.machine.task(3).children] == [4, 5, 6, 7]
    assert m32.read("3/oom_score") == "10000\n"
    # oom_kill_process(): ``list_for_each_entry(c, &p->children, sibling) { if (c->mm == p->mm) continue;
    # if (!oom_kill_task(c)) return 0; }``: the first entry with another mm, 4
    m32.echo("sysrq-trigger", "f")
    assert kill_lines(m32.read("fakeproc/dmesg")) == [
        "Out of memory: kill process 3 (parent) score 10000 or a child", "Killed process 4 (small)"]
    assert not m32.exists("4") and m32.exists("5")


def test_the_default_machine_init_counts_each_thread_of_its_children(core):
    """The default scenario under 2.6.32: init's list holds every process it forked and each thread of
    them; the kernel reads 40752 (issue #14, from a real 2.6.32's arithmetic on the same machine)."""
    assert core.read("1/oom_score") == "40752\n"


# --------------------------------------------------------- 2. a child of a non-leader thread, find_new_reaper()


def test_a_child_forked_by_a_thread_hangs_off_that_thread(m32):
    """``p->real_parent = current``: kid 5 is on thread 4's list, not on leader 3's, so badness(3) is its
    own 100000 pages / 16 = 6250 and oom_kill_process() finds no child on 3's list: 3 dies itself."""
    run(m32, "fork 1 --comm parent; mem 3 --vm 400000k; thread 3; fork 4 --comm kid; mem 5 --vm 40000k")
    kid = m32.machine.task(5)
    assert kid.real_parent.tid == 4 and kid.parent.tid == 3  # getppid() is the leader's tgid
    assert m32.read("3/oom_score") == "6250\n"
    out = m32.ctl("oom")
    assert kill_lines(out) == ["Out of memory: kill process 3 (parent) score 6250 or a child",
                               "Killed process 3 (parent)"]
    assert out.splitlines()[-1] == "killed: 3"
    # kernel/exit.c forget_original_parent(): 3's threads all exit, so find_new_reaper() finds none alive
    # and the kid goes to init
    assert kid.real_parent.tid == 1 and kid in m32.machine.task(1).children


def test_a_thread_that_exits_leaves_its_children_to_the_next_live_thread(m32):
    """find_new_reaper(): ``while_each_thread(father, thread) { if (!(thread->flags & PF_EXITING)) return
    thread; }``: from the thread after father in the group's list."""
    run(m32, "fork 1 --comm parent; thread 3; thread 3; fork 4 --comm kid")
    m32.ctl("exit", "4")
    assert m32.machine.task(6).real_parent.tid == 5
    assert [c.tid for c in m32.machine.task(5).children] == [6]
    m32.ctl("exit", "5")  # next after 5, wrapping round: the leader 3
    assert m32.machine.task(6).real_parent.tid == 3


def test_fork_names_a_thread_as_parent_and_ps_shows_its_process(m32):
    run(m32, "fork 1 --comm parent; thread 3")
    assert m32.new_pid("fork", "4", "--comm", "kid") == 5
    row = [r for r in m32.ctl("ps").splitlines() if r.endswith(" kid")][0]
    assert row.split()[:2] == ["5", "3"]  # PPID: the thread's process


# ------------------------------------------------------------------ 3. credentials across setuid and exec


def test_a_non_root_process_loses_its_capabilities_at_exec(m32):
    """security/commoncap.c cap_bprm_set_creds(): a non-root exec gets ``new->cap_permitted =
    (old->cap_inheritable & file->inheritable) | (file->permitted & bset)`` = 0 for a file without
    capabilities, so nothing is effective: 100000 pages undivided."""
    run(m32, "fork 1 --uid 1000; set 3 --caps sys_admin")
    assert m32.machine.task(3).caps != 0
    m32.ctl("exec", "3", "svc", "--vm", "400000k")
    assert m32.read("3/oom_score") == "100000\n"


def test_root_gets_the_bounding_set_back_at_exec(m32):
    """cap_bprm_set_creds(): for root (``uid == 0 || euid == 0``) ``cap_permitted = inheritable | bset``
    and euid 0 makes them effective: every capability, / 4 / 4: 6250."""
    run(m32, "fork 1; set 3 --caps none; exec 3 svc --vm 400000k")
    assert m32.read("3/oom_score") == "6250\n"


def test_a_root_process_that_drops_its_uids_loses_its_capabilities(m32):
    """cap_emulate_setxuid(): ``if ((old->uid == 0 || ...) && (new->uid != 0 && ...) && !keep_caps)
    cap_clear(new->cap_permitted); cap_clear(new->cap_effective)``."""
    run(m32, "fork 1; mem 3 --vm 400000k")
    assert m32.read("3/oom_score") == "6250\n"
    m32.ctl("set", "3", "--uid", "1000")
    assert m32.machine.task(3).caps == 0 and m32.read("3/oom_score") == "100000\n"


# --------------------------------------------------------------------------------- 4. 6.x in_vfork()


def test_6_x_in_vfork_reads_the_current_real_parent(core_factory):
    """include/linux/sched/mm.h in_vfork(): ``tsk->vfork_done && rcu_dereference(tsk->real_parent)->mm ==
    tsk->mm``.  3 exits; 4 (still vfork_done) goes to init, whose mm is not 4's: 4 is killable.
    oom_badness() = rss 50000 pages; totalpages 1048576 + 262144 = 1310720; proc_oom_score():
    (1000 + 50000 * 1000 / 1310720) * 2 / 3 = (1000 + 38) * 2 / 3 = 692."""
    mnt = core_factory("6.x", text=MINIMAL)
    run(mnt, "fork 1; mem 3 --vm 400000k --rss 200000k; vfork 3")
    assert mnt.read("4/oom_score") == "0\n"  # in vfork: oom_badness() LONG_MIN reads 0
    mnt.ctl("exit", "3")
    assert mnt.read("4/oom_score") == "692\n"
    mnt.echo("sysrq-trigger", "f")
    assert any(line.startswith("Out of memory: Killed process 4 ") for line in kill_lines(mnt.read("fakeproc/dmesg")))


# ------------------------------------------------------------------------ 5. 2.6.31: init's threads


def test_2_6_31_init_s_other_thread_is_a_candidate_and_killing_it_panics(core_factory):
    """2.6.31 select_bad_process(): ``do_each_thread(g, p) { ... if (is_global_init(p)) continue;`` with
    ``is_global_init(tsk)`` = ``task_pid(tsk)->numbers[0].nr == 1``... 2.6.31's is ``tsk->pid == 1``: init's
    thread 3 is not pid 1.  Its badness is init's 200 MiB (51200 pages) / 16 = 3200, above everything else;
    SIGKILL to init's group ends init: kernel/exit.c find_new_reaper() panics."""
    mnt = core_factory("2.6.31", text=MINIMAL.replace('vm = "20M"', 'vm = "200M"'))
    mnt.ctl("thread", "1")
    assert mnt.read("1/task/3/oom_score") == "3200\n"
    out = mnt.ctl("oom")
    assert kill_lines(out) == ["Out of memory: kill process 3 (init) score 3200 or a child", "Killed process 3 (init)",
                               "Kernel panic - not syncing: Attempted to kill init!"]
    assert mnt.machine.halt.reason == "Attempted to kill init!"


# ------------------------------------------------------------------------------------------ 6. SysRq-f


@pytest.mark.parametrize(("era", "header"), [
    # 2.6.32 drivers/char/sysrq.c: schedule_work(&moom_work); moom_callback() calls
    # out_of_memory(node_zonelist(0, GFP_KERNEL), GFP_KERNEL, 0, NULL): keventd's events/0, order 0
    ("2.6.32", "events/0 invoked oom-killer: gfp_mask=0xd0, order=0, oom_adj=0"),
    ("2.6.31", "events/0 invoked oom-killer: gfp_mask=0xd0, order=0, oomkilladj=0"),
    # 6.18: queue_work(system_unbound_wq...) moom_callback(): .order = -1 (is_sysrq_oom())
    ("6.x", "kworker/0:1 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=-1, oom_score_adj=0"),
])
def test_sysrq_f_runs_in_a_kernel_worker(core_factory, era, header):
    mnt = core_factory(era, text=MINIMAL)
    mnt.ctl("fork", "1")
    mnt.echo("sysrq-trigger", "f")
    lines = [line.split("] ", 1)[1] for line in mnt.read("fakeproc/dmesg").splitlines()]
    assert lines[1] == header


def test_oom_as_a_task_keeps_the_allocating_task_in_the_header(m32):
    run(m32, "fork 1 --comm hog; set 3 --nice 5")
    out = m32.ctl("oom", "--as", "3")
    assert out.splitlines()[0].split("] ", 1)[1] == "hog invoked oom-killer: gfp_mask=0x201da, order=0, oom_adj=0"


def test_6_x_sysrq_with_nothing_killable_is_ignored_and_does_not_panic(core_factory):
    """6.18 moom_callback(): ``if (!out_of_memory(&oc)) pr_info("OOM request ignored. No task eligible\\n")``;
    out_of_memory() panics on no victim only ``if (!is_sysrq_oom(oc) && !is_memcg_oom(oc))``."""
    mnt = core_factory("6.x", text=MINIMAL)
    mnt.echo("sysrq-trigger", "f")
    lines = [line.split("] ", 1)[1] for line in mnt.read("fakeproc/dmesg").splitlines()]
    assert lines[-2:] == ["Out of memory and no killable processes...", "sysrq: OOM request ignored. No task eligible"]
    assert mnt.machine.halt.reason is None
    mnt.ctl("fork", "1")  # the machine goes on


def test_6_x_an_oom_with_nothing_killable_panics(core_factory):
    """6.18 out_of_memory(): ``if (!oc->chosen) { dump_header(oc); pr_warn("Out of memory and no killable
    processes...\\n"); if (!is_sysrq_oom(oc) && !is_memcg_oom(oc)) panic("System is deadlocked on memory\\n");``"""
    mnt = core_factory("6.x", text=MINIMAL)
    out = mnt.ctl("oom")
    assert kill_lines(out)[-1] == "Kernel panic - not syncing: System is deadlocked on memory"


@pytest.mark.parametrize("era", ["2.6.32", "2.6.31"])
def test_2_6_x_sysrq_with_nothing_killable_panics(core_factory, era):
    """2.6.32 __out_of_memory(): ``if (!p) { read_unlock(&tasklist_lock); panic("Out of memory and no killable
    processes...\\n"); }``: SysRq-f takes the same path (spec §7.1)."""
    mnt = core_factory(era, text=MINIMAL)
    mnt.echo("sysrq-trigger", "f")
    assert mnt.read("fakeproc/dmesg").splitlines()[-1].endswith(
        "Kernel panic - not syncing: Out of memory and no killable processes...")


# ------------------------------------------------------------------------------- 9. panic and reboot


def test_a_panic_stops_the_machine_until_reboot(core_factory):
    mnt = core_factory("6.x", text=MINIMAL)
    mnt.ctl("oom")  # nothing killable: panic
    with pytest.raises(OSError) as e:
        mnt.echo("1/oom_score_adj", "5")
    assert e.value.errno == errno.EIO
    reply = mnt.ctl("fork", "1", check=False)
    assert "panicked" in reply and "fakeproc ctl reboot" in reply
    assert mnt.read("1/oom_score") == "0\n"  # reads answer as at the panic
    assert "Kernel panic" in mnt.ctl("dmesg") and " init" in mnt.ctl("ps")
    assert "Kernel panic" in mnt.ctl("dmesg")
    seq = mnt.machine.journal.seq
    assert mnt.ctl("reboot").startswith("rebooted")
    assert mnt.machine.halt.reason is None and "Kernel panic" not in mnt.read("fakeproc/dmesg")
    events = mnt.machine.journal.since(seq)
    assert events[0]["seq"] == seq + 1 and events[-1]["type"] == "reboot"
    assert mnt.new_pid("fork", "1") == 3


def test_reboot_is_refused_where_the_machine_stands_for_real_processes():
    from fakeproc.control import Control

    ctl = Control(Machine(ERAS["6.x"]))
    out, err = ctl.run_lines(None, [b"reboot"])
    assert err == errno.EOPNOTSUPP and b"cannot reboot" in out


def test_a_panicked_machine_saves_and_loads_stopped(core_factory):
    from fakeproc.machine.scenario import build_machine, dump_scenario

    mnt = core_factory("2.6.32", text=MINIMAL)
    mnt.echo("sysrq-trigger", "f")
    text = dump_scenario(mnt.machine)
    assert 'panic = "Out of memory and no killable processes..."' in text
    loaded = build_machine(text, ERAS["2.6.32"])
    with pytest.raises(Exception, match="panicked"):
        loaded.out_of_memory(Caller(0, 0, "x"))


def test_a_panic_during_a_tick_stops_the_clock_there(core_factory):
    """The allocator's OOM panics (6.x: nothing killable) a second in: the clock stays at the panic."""
    mnt = core_factory("6.x", text=MINIMAL.replace('ram = "4G"', 'ram = "64M"').replace('swap = "1G"', 'swap = "0"'))
    start = mnt.machine.uptime
    mnt.echo("1/oom_score_adj", "-1000")
    mnt.ctl("alloc", "1", "64M")
    mnt.ctl("tick", "1h", check=False)
    assert mnt.machine.halt.reason == "System is deadlocked on memory"
    assert start < mnt.machine.uptime < start + 2


def test_reboot_starts_a_machine_saved_after_a_panic(core_factory):
    from fakeproc.machine.scenario import dump_scenario

    mnt = core_factory("2.6.32", text=MINIMAL)
    mnt.echo("sysrq-trigger", "f")
    saved = core_factory("2.6.32", text=dump_scenario(mnt.machine))
    assert saved.machine.halt.reason is not None
    saved.ctl("reboot")
    assert saved.machine.halt.reason is None and saved.new_pid("fork", "1") == 3
