"""The OOM killer's sysctls (``sys/vm``) and the reports read after an OOM (issue #14 items 7 and 8;
spec §7.2).  Values by hand from the kernel lines quoted; the machine is test_process_tree's MINIMAL
(init: 20 MiB mapped = 5120 pages, 40 KiB resident = 10 pages; 4 GiB RAM, 1 GiB swap).

The parsers themselves (every write vector, each era) are tests/core/test_sysctl_parser.py; the real
kernel's answers, measured under ``unshare -n``, tests/mount/test_sysctl_kernel.py.
"""

from __future__ import annotations

import errno

import pytest

from fakeproc.kernel.eras import ERAS
from fakeproc.machine.scenario import ScenarioError, build_machine, dump_scenario

from .test_process_tree import MINIMAL, kill_lines, run

NAMES = ["oom_dump_tasks", "oom_kill_allocating_task", "overcommit_memory", "overcommit_ratio", "panic_on_oom"]


def log_lines(mnt) -> list[str]:
    return [line.split("] ", 1)[1] for line in mnt.read("fakeproc/dmesg").splitlines()]


@pytest.mark.parametrize(("era", "dump"), [("2.6.31", "0"), ("2.6.32", "0"), ("6.x", "1")])
def test_the_files_and_their_boot_values(core_factory, era, dump):
    """kernel/sysctl.c vm_table: mode 0644; sysctl_oom_dump_tasks is 0 until 2.6.36 made it 1;
    sysctl_overcommit_ratio 50; the others 0."""
    mnt = core_factory(era, text=MINIMAL)
    assert sorted(mnt.listdir("sys/vm")) == NAMES
    assert {n: mnt.read(f"sys/vm/{n}") for n in NAMES} == {
        "oom_dump_tasks": f"{dump}\n", "oom_kill_allocating_task": "0\n", "overcommit_memory": "0\n",
        "overcommit_ratio": "50\n", "panic_on_oom": "0\n"}
    assert mnt.stat("sys/vm/panic_on_oom").mode & 0o7777 == 0o644


@pytest.mark.parametrize(("era", "answer"), [("2.6.32", 2), ("6.x", "EINVAL")])
def test_panic_on_oom_takes_any_int_until_2_6_39(core_factory, era, answer):
    """2.6.32: ``.proc_handler = proc_dointvec`` (any int); 2.6.39+: proc_dointvec_minmax with
    ``.extra1 = &zero, .extra2 = &two``: 3 is EINVAL and the value stays."""
    mnt = core_factory(era, text=MINIMAL)
    assert mnt.write("sys/vm/panic_on_oom", b"3\n") == [answer]
    assert mnt.read("sys/vm/panic_on_oom") == ("3\n" if answer == 2 else "0\n")
    assert mnt.write("sys/vm/overcommit_ratio", b"-7\n") == [3]  # proc_dointvec in both
    assert mnt.read("sys/vm/overcommit_ratio") == "-7\n"


def test_2_6_32_panic_on_oom(core_factory):
    """2.6.32 out_of_memory(): ``if (sysctl_panic_on_oom == 2) panic("out of memory. Compulsory panic_on_oom
    is selected.\\n");`` then for CONSTRAINT_NONE ``if (sysctl_panic_on_oom) panic("out of memory. panic_on_oom
    is selected\\n");``; CONSTRAINT_CPUSET falls through to __out_of_memory().  Nothing is printed first."""
    two = core_factory("2.6.32", text=MINIMAL)
    run(two, "fork 1; sysctl panic_on_oom 2")
    assert kill_lines(two.ctl("oom")) == ["Kernel panic - not syncing: out of memory. Compulsory panic_on_oom is "
                                          "selected."]
    one = core_factory("2.6.32", text=MINIMAL)
    run(one, "fork 1; fork 1; sysctl panic_on_oom 1")
    one.machine.task(4).mems = frozenset({1})  # a second node: a task on node 0 only allocates constrained
    out = one.ctl("oom", "--as", "3")
    assert "Kernel panic" not in out and kill_lines(out)[-1].startswith("Killed process")
    assert kill_lines(one.ctl("oom"))[-1] == "Kernel panic - not syncing: out of memory. panic_on_oom is selected"


def test_2_6_32_sysrq_panics_with_panic_on_oom(core_factory):
    mnt = core_factory("2.6.32", text=MINIMAL)
    run(mnt, "fork 1; sysctl panic_on_oom 1")
    mnt.echo("sysrq-trigger", "f")
    assert log_lines(mnt)[-1] == "Kernel panic - not syncing: out of memory. panic_on_oom is selected"


def test_6_x_panic_on_oom(core_factory):
    """6.18 check_panic_on_oom(): 1 only for CONSTRAINT_NONE, 2 always; ``if (is_sysrq_oom(oc)) return;``;
    then dump_header() and ``panic("Out of memory: %s panic_on_oom is enabled\\n", sysctl_panic_on_oom == 2 ?
    "compulsory" : "system-wide")``."""
    mnt = core_factory("6.x", text=MINIMAL)
    run(mnt, "fork 1; sysctl panic_on_oom 2")
    mnt.echo("sysrq-trigger", "f")  # SysRq-f kills anyway
    assert any(line.startswith("Out of memory: Killed process 3 ") for line in log_lines(mnt))
    run(mnt, "fork 1; sysctl panic_on_oom 1")
    out = mnt.ctl("oom")
    assert " invoked oom-killer: " in out  # dump_header() first
    assert kill_lines(out)[-1] == "Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled"


def test_6_x_oom_kill_allocating_task(core_factory):
    """6.18 out_of_memory(): ``if (... sysctl_oom_kill_allocating_task && current->mm &&
    !oom_unkillable_task(current) && oom_cpuset_eligible(current, oc) && current->signal->oom_score_adj !=
    OOM_SCORE_ADJ_MIN) { oc->chosen = current; oom_kill_process(oc, "Out of memory
    (oom_kill_allocating_task)"); }``: the small allocating task dies, not the big one; at -1000 the
    scan runs instead."""
    mnt = core_factory("6.x", text=MINIMAL)
    run(mnt, "fork 1 --comm small; fork 1 --comm big; mem 4 --vm 400M --rss 400M; fork 1 --comm shy;"
             "sysctl oom_kill_allocating_task 1")
    out = mnt.ctl("oom", "--as", "3")
    assert [line for line in kill_lines(out) if "Killed" in line][0].startswith(
        "Out of memory (oom_kill_allocating_task): Killed process 3 (small)")
    mnt.echo("5/oom_score_adj", "-1000")
    out = mnt.ctl("oom", "--as", "5")
    assert [line for line in kill_lines(out) if "Killed" in line][0].startswith("Out of memory: Killed process 4 (big)")


def test_2_6_32_oom_kill_allocating_task_falls_back_when_refused(core_factory):
    """2.6.32: ``if (sysctl_oom_kill_allocating_task) if (!oom_kill_process(current, gfp_mask, order, 0, NULL,
    "Out of memory (oom_kill_allocating_task)")) return;``: oom_kill_task() refuses a process at -17 (returns
    1), so the report names it with score 0 and then __out_of_memory() chooses."""
    mnt = core_factory("2.6.32", text=MINIMAL)
    run(mnt, "fork 1 --comm small; fork 1 --comm big; mem 4 --vm 400M; sysctl oom_kill_allocating_task 1")
    assert kill_lines(mnt.ctl("oom", "--as", "3")) == [
        "Out of memory (oom_kill_allocating_task): kill process 3 (small) score 0 or a child",
        "Killed process 3 (small)"]
    mnt.echo("4/oom_adj", "-17")
    run(mnt, "fork 1 --comm other")
    assert kill_lines(mnt.ctl("oom", "--as", "4")) == [
        "Out of memory (oom_kill_allocating_task): kill process 4 (big) score 0 or a child",
        "Out of memory: kill process 5 (other) score 320 or a child", "Killed process 5 (other)"]


def test_2_6_32_task_dump(core_factory):
    """2.6.32 dump_tasks(): ``printk(KERN_INFO "[ pid ]   uid  tgid total_vm      rss cpu oom_adj name\\n");``
    then per leader with an mm ``"[%5d] %5d %5d %8lu %8lu %3d     %3d %s\\n"`` (pid, uid, tgid, total_vm,
    get_mm_rss(), task_cpu(), signal->oom_adj, comm); init included, kthreadd (no mm) not."""
    mnt = core_factory("2.6.32", text=MINIMAL)
    run(mnt, "fork 1 --uid 1000 --comm job; mem 3 --vm 400M --rss 100M; sysctl oom_dump_tasks 1")
    mnt.echo("3/oom_adj", "4")
    lines = [line.split("] ", 1)[1] if line.startswith("[ ") and "]" in line[2:] else line
             for line in mnt.ctl("oom").splitlines()]
    i = next(i for i, line in enumerate(lines) if "uid  tgid" in line)
    assert lines[i:i + 3] == [
        "[ pid ]   uid  tgid total_vm      rss cpu oom_adj name",
        "[    1]     0     1     5120       10   0       0 init",
        "[    3]  1000     3   102400    25600   0       4 job",
    ]
    assert lines[i + 3].startswith("Out of memory: kill process 3 (job)")


def test_6_x_task_dump_summary_and_reaper(core_factory):
    """6.18 dump_tasks(): ``"Tasks state (memory values in pages):\\n"``, the header, then per process but
    init and kernel threads ``"[%7d] %5d %5d %8lu %8lu %8lu %8lu %9lu %8ld %8lu         %5hd %s\\n"``;
    dump_oom_victim()'s ``oom-kill:constraint=%s,nodemask=%*pbl`` + ``,cpuset=/,mems_allowed=0`` +
    ``,global_oom,task_memcg=/,task=%s,pid=%d,uid=%d``; __oom_kill_process()'s Killed line; the reaper's
    ``oom_reaper: reaped process %d (%s), now anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB``."""
    mnt = core_factory("6.x", text=MINIMAL)
    run(mnt, "fork 1 --uid 1000 --comm job; mem 3 --vm 400M --rss 100M --file-rss 8M --shmem-rss 4M --pgtables 1M")
    mnt.echo("3/oom_score_adj", "300")
    lines = [line.split("] ", 1)[1] for line in mnt.ctl("oom").splitlines()[:-1]]
    i = lines.index("Tasks state (memory values in pages):")
    assert lines[i + 1:] == [
        "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents "
        "oom_score_adj name",
        "[      3]  1000     3   102400    28672    25600     2048      1024  1048576        0           300 job",
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,"
        "task=job,pid=3,uid=1000",
        "Out of memory: Killed process 3 (job) total-vm:409600kB, anon-rss:102400kB, file-rss:8192kB, "
        "shmem-rss:4096kB, UID:1000 pgtables:1024kB oom_score_adj:300",
        "oom_reaper: reaped process 3 (job), now anon-rss:0kB, file-rss:0kB, shmem-rss:4096kB",
    ]


def test_overcommit_ratio_sets_commit_limit(core_factory):
    """mm/util.c vm_commit_limit(): ``allowed = totalram_pages() * sysctl_overcommit_ratio / 100;
    allowed += total_swap_pages``: 1048576 * 50 / 100 + 262144 = 786432 pages; at 100, 1310720."""
    mnt = core_factory("6.x", text=MINIMAL)

    def limit() -> str:
        return next(line for line in mnt.read("meminfo").splitlines() if line.startswith("CommitLimit:")).split()[1]

    assert limit() == "3145728"
    mnt.echo("sys/vm/overcommit_ratio", "100")
    assert limit() == "5242880"


def test_scenarios_set_sysctls_and_save_keeps_them():
    era = ERAS["6.x"]
    m = build_machine(MINIMAL.replace('swap = "1G"', 'swap = "1G"\npanic_on_oom = 2\noom_dump_tasks = 0'), era)
    assert (m.sysctl["panic_on_oom"], m.sysctl["oom_dump_tasks"]) == (2, 0)
    text = dump_scenario(m)
    assert "panic_on_oom = 2" in text and "oom_dump_tasks = 0" in text and "overcommit_ratio" not in text
    assert build_machine(text, era).sysctl.values == m.sysctl.values
    with pytest.raises(ScenarioError, match="panic_on_oom must be 0..2"):
        build_machine(MINIMAL.replace('swap = "1G"', 'swap = "1G"\npanic_on_oom = 3'), era)
    assert build_machine(MINIMAL.replace('swap = "1G"', 'swap = "1G"\npanic_on_oom = 3'),
                         ERAS["2.6.32"]).sysctl["panic_on_oom"] == 3


def test_ctl_sysctl_reads_and_checks(core_factory):
    mnt = core_factory("6.x", text=MINIMAL)
    assert "vm.oom_dump_tasks = 1\n" in mnt.ctl("sysctl")
    assert mnt.ctl("sysctl", "vm.panic_on_oom", "1") == "vm.panic_on_oom = 1\n"
    assert "must be 0..2" in mnt.ctl("sysctl", "panic_on_oom", "5", check=False)
    assert "no such sysctl" in mnt.ctl("sysctl", "swappiness", check=False)
    assert mnt.read("sys/vm/panic_on_oom") == "1\n"
    mnt.ctl("oom")
    with pytest.raises(OSError) as e:  # panicked: the files refuse writes too
        mnt.echo("sys/vm/panic_on_oom", "0")
    assert e.value.errno == errno.EIO
