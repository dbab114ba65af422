"""The OOM killer's choice on a small machine whose scores are worked out by hand (through the core)."""

from __future__ import annotations

import pytest

from ..harness import CoreMount

# HZ=100, uptime 1000 s: run_time = 1000 >> 10 = 0 and no cpu time, so a score
# is total_vm in pages (+ half of each own-mm child's + 1), then nice, caps, adj.
HAND_MACHINE = """
[machine]
ram = "1G"
hz = 100
uptime = "1000s"

[[process]]
pid = 1
comm = "init"
vm = "4M"

[[process]]
pid = 10
parent = 1
comm = "a"
uid = 1000
vm = "400k"          # 100 pages -> 100

[[process]]
pid = 11
parent = 1
comm = "b"
uid = 1000
vm = "400k"          # 100: ties with a, which comes first

[[process]]
pid = 12
parent = 1
comm = "c"
vm = "1200k"         # 300 pages, CAP_SYS_ADMIN quarters it -> 75
caps = ["CAP_SYS_ADMIN"]  # (a root default of all caps would add CAP_SYS_RAWIO: 18)

[[process]]
pid = 13
parent = 1
comm = "d"
uid = 1000
vm = "200k"          # 50 pages, nice > 0 doubles -> 100
nice = 5

[[process]]
pid = 20
parent = 1
comm = "parent"
uid = 1000
vm = "40k"           # 10 pages + 40 // 2 + 1 for its child -> 31

[[process]]
pid = 21
parent = 20
comm = "kid"
uid = 1000
vm = "160k"          # 40

[[process]]
pid = 30
parent = 1
comm = "prot"
uid = 1000
vm = "4M"            # 1024 pages, but OOM_DISABLE -> 0, never chosen
oom_adj = -17

[[process]]
pid = 31
parent = 1
comm = "adj"
uid = 1000
vm = "40k"           # 10 pages << 3 -> 80
oom_adj = 3
"""

SCORES = {"10": 100, "11": 100, "12": 75, "13": 100, "20": 31, "21": 40, "30": 0, "31": 80}


@pytest.fixture
def hand() -> CoreMount:
    return CoreMount(text=HAND_MACHINE)


def test_scores_match_the_hand_computation(hand):
    for pid, score in SCORES.items():
        assert hand.read(f"{pid}/oom_score") == f"{score}\n", pid


def test_kills_in_order_first_wins_ties_and_never_the_protected(hand):
    order = []
    for _ in range(7):
        last = hand.ctl("oom").splitlines()[-1]
        order.append(last.split(": ")[1])
    assert order == ["10", "11", "13", "31", "12", "21", "20"]
    out = hand.ctl("oom")
    assert "Out of memory and no killable processes..." in out
    assert out.splitlines()[-1] == "killed: nothing"
    assert sorted(hand.listdir(), key=lambda n: (not n.isdigit(), n))[:2] == ["1", "30"]


def test_log_lines_name_the_allocating_task(hand):
    out = hand.ctl("oom", "--as", "31")
    lines = [line.split("] ", 1)[1] for line in out.splitlines()[:-1]]
    # 2.6.32 oom_kill_process(): the header, cpuset_print_task_mems_allowed(current), dump_stack() and
    # show_mem() (summarised: the model has no stack and no zones); vm.oom_dump_tasks is 0 before 2.6.36
    assert lines == [
        "adj invoked oom-killer: gfp_mask=0x201da, order=0, oom_adj=3",
        "adj cpuset=/ mems_allowed=0",
        "fakeproc: dump_stack() of adj is not simulated (the kernel prints its call trace here)",
        "fakeproc: show_mem() summarised: RAM 1048576kB, free 1048576kB; swap 0kB, free 0kB",
        "Out of memory: kill process 10 (a) score 100 or a child",
        "Killed process 10 (a)",
    ]
    assert hand.read("fakeproc/dmesg").splitlines()[-6:] == out.splitlines()[:-1]


def test_sysrq_f_runs_the_killer_once_in_a_kernel_worker(hand):
    """2.6.32 sysrq_handle_moom() schedules moom_callback() on keventd: current is the worker events/0
    (no mm: its mems are the machine's nodes), not the writer (spec §7.1)."""
    hand.echo("sysrq-trigger", "f")
    log = hand.read("fakeproc/dmesg").splitlines()
    assert [line.split("] ", 1)[1] for line in log] == [
        "SysRq : Manual OOM execution",
        "events/0 invoked oom-killer: gfp_mask=0xd0, order=0, oom_adj=0",
        "events/0 cpuset=/ mems_allowed=0",
        "fakeproc: dump_stack() of events/0 is not simulated (the kernel prints its call trace here)",
        "fakeproc: show_mem() summarised: RAM 1048576kB, free 1048576kB; swap 0kB, free 0kB",
        "Out of memory: kill process 10 (a) score 100 or a child",
        "Killed process 10 (a)",
    ]
    assert not hand.exists("10")


def test_a_child_with_its_own_mm_dies_first(core):
    mnt = core
    big = mnt.new_pid("fork", "1", "--comm", "big")
    mnt.ctl("grow", str(big), "16G")
    protected = mnt.new_pid("fork", str(big), "--comm", "kid1")
    mnt.echo(f"{protected}/oom_adj", "-17")
    kid2 = mnt.new_pid("fork", str(big), "--comm", "kid2")
    out = mnt.ctl("oom")
    assert f"kill process {big} (big)" in out
    assert f"Killed process {kid2} (kid2)" in out and f"Killed process {big} " not in out
    assert mnt.exists(str(big)) and mnt.exists(str(protected))


def test_the_killed_process_vanishes_with_its_threads_and_children_are_reparented(core):
    mnt = core
    out = mnt.ctl("oom")
    assert "Killed process 500 (memhog)" in out
    assert not mnt.exists("500")
    kid = mnt.new_pid("fork", "600")
    mnt.ctl("exit", "600")
    assert not mnt.exists("601")
    ps = {int(r.split()[0]): r for r in mnt.ctl("ps").splitlines()[1:]}
    assert ps[kid].split()[1] == "1"


@pytest.mark.parametrize("era", ["2.6.31-rc", "2.6.31"])
def test_killing_a_vfork_child_of_init_panics_but_init_lives(era):
    from fakeproc.kernel.eras import ERAS
    from fakeproc.machine import Caller, Machine

    m = Machine(ERAS[era], uptime=3600)
    m.spawn("init", pid=1)
    child = m.fork(1, vfork=True)
    m.set_memory(1, total_vm=1000)
    m.store_adj(m.task(1), 0)
    r = m.out_of_memory(Caller(99, 0, "test"))
    assert [t.tid for t in r.killed] == [child.tid]
    assert 1 in m.tasks
    assert "Kernel panic - not syncing: Attempted to kill init!" in m.log.text()
