"""Each era's rules through the filesystem core: the same scripts, different kernels."""

from __future__ import annotations

import pytest

from ..harness import ME


def vfork_story(mnt, exec_child: bool) -> tuple[int, int, str]:
    """The seed's script: a big scheduler sets -17, vforks, the child sets 0 (and maybe execs)."""
    sched = mnt.new_pid("fork", "1", "--comm", "sched")
    mnt.ctl("grow", str(sched), "16G")  # the biggest process, even quartered twice for root's capabilities
    mnt.echo(f"{sched}/oom_adj", "-17")
    child = mnt.new_pid("vfork", str(sched))
    mnt.echo(f"{child}/oom_adj", "0")
    if exec_child:
        mnt.ctl("exec", str(child), "job")
    return sched, child, mnt.read(f"{sched}/oom_adj")


def test_2_6_31_rc_the_regression_the_vfork_child_unprotects_its_parent(core_factory):
    mnt = core_factory("2.6.31-rc")
    sched, child, value = vfork_story(mnt, exec_child=True)
    assert value == "0\n"  # the child's write went to the shared mm
    assert mnt.read(f"{child}/oom_adj") == "0\n"  # exec copied the old mm's value

    mnt2 = core_factory("2.6.31-rc")
    sched, child, value = vfork_story(mnt2, exec_child=False)
    assert value == "0\n"
    score = int(mnt2.read(f"{sched}/oom_score"))
    assert score == (4194304 + 5120) // 16  # 16G + init's 20M, in pages; CAP_SYS_ADMIN and CAP_SYS_RAWIO
    out = mnt2.ctl("oom")
    lines = [line.split("] ", 1)[1] for line in out.splitlines()[:-1]]
    assert [line for line in lines if line.startswith(("Out of memory", "Killed"))] == [
        f"Out of memory: kill process {sched} (sched) score {score} or a child", f"Killed process {sched} (sched)"]
    assert out.splitlines()[-1] == f"killed: {sched} {child}"  # down with its vfork child
    assert not mnt2.exists(str(sched)) and not mnt2.exists(str(child))


def test_2_6_32_the_fix_same_script(core_factory):
    mnt = core_factory("2.6.32")
    sched, child, value = vfork_story(mnt, exec_child=True)
    assert value == "-17\n"
    mnt2 = core_factory("2.6.32")
    sched, child, value = vfork_story(mnt2, exec_child=False)
    assert value == "-17\n"
    out = mnt2.ctl("oom")
    assert f"Killed process {child} (sched)" in out  # the vfork child alone
    assert out.splitlines()[-1] == f"killed: {child}"
    assert mnt2.exists(str(sched))


def test_2_6_31_values_are_per_thread(core_factory):
    mnt = core_factory("2.6.31")
    pid = mnt.new_pid("fork", "1")
    tid = mnt.new_pid("thread", str(pid))
    mnt.echo(f"{pid}/task/{tid}/oom_adj", "-5")
    assert mnt.read(f"{pid}/oom_adj") == "0\n"
    assert mnt.read(f"{pid}/task/{tid}/oom_adj") == "-5\n"
    # a new thread copies its creator's value; so does a forked child
    mnt.echo(f"{pid}/oom_adj", "3")
    assert mnt.read(f"{mnt.new_pid('thread', str(pid))}/oom_adj") == "3\n"
    assert mnt.read(f"{mnt.new_pid('fork', str(pid))}/oom_adj") == "3\n"
    # and each thread has its own score (its own cpu time)
    mnt.ctl("grow", str(pid), "1G")
    mnt.ctl("alloc", "500", "0")  # the default story's memhog would run memory out within this hour
    mnt.ctl("tick", "1h")
    mnt.ctl("cpu", str(tid), "1h")
    assert mnt.read(f"{pid}/task/{tid}/oom_score") != mnt.read(f"{pid}/oom_score")


def test_2_6_31_the_livelock_is_detected_and_the_daemon_stays_responsive(core_factory):
    mnt = core_factory("2.6.31")
    pid = mnt.new_pid("fork", "1", "--comm", "fat")
    mnt.ctl("grow", str(pid), "16G")  # the fat thread (the leader) stays at 0 ...
    tid = mnt.new_pid("thread", str(pid))
    mnt.echo(f"{pid}/task/{tid}/oom_adj", "-17")  # ... another is at -17
    out = mnt.ctl("oom")
    assert f"kill process {pid} (fat)" in out
    assert "livelock" in out and "retries forever" in out
    assert out.splitlines()[-1] == "killed: nothing"
    mnt.echo("sysrq-trigger", "f")
    assert mnt.read(f"{pid}/oom_adj") == "0\n"  # and it still answers
    assert mnt.read("fakeproc/dmesg").count("livelock") == 2


def test_6_x_files_mapping_and_deprecation(core_factory):
    mnt = core_factory("6.x")
    pid = mnt.new_pid("fork", "1")
    names = set(mnt.listdir(str(pid)))
    assert {"oom_adj", "oom_score", "oom_score_adj", "smaps_rollup"} <= names  # 2.6.36 and 4.14 files
    assert not {"oom_score_adj", "smaps_rollup"} & set(core_factory("2.6.32").listdir("500"))
    mnt.echo(f"{pid}/oom_adj", "5")
    assert (mnt.read(f"{pid}/oom_adj"), mnt.read(f"{pid}/oom_score_adj")) == ("4\n", "294\n")  # lossy
    mnt.echo(f"{pid}/oom_score_adj", "999")
    assert mnt.read(f"{pid}/oom_adj") == "15\n"  # 16 capped at 15
    mnt.echo(f"{pid}/oom_adj", "-17")
    assert mnt.read(f"{pid}/oom_score_adj") == "-1000\n"
    assert mnt.read(f"{pid}/oom_score") == "0\n"  # unkillable
    log = mnt.read("fakeproc/dmesg")
    assert log.count("is deprecated") == 1
    me = open(f"/proc/{ME}/comm").read().strip()
    assert f"): /proc/{pid}/oom_adj is deprecated, please use /proc/{pid}/oom_score_adj instead." in log
    assert log.split("] ", 1)[1].startswith(f"{me} ({ME}): ")  # the writer is named, not the target


def test_6_x_clone_vm_shares_writes_but_a_vfork_child_does_not(core_factory):
    mnt = core_factory("6.x")
    pid = mnt.new_pid("fork", "1")
    peer = mnt.new_pid("clone", str(pid))
    vchild = mnt.new_pid("vfork", str(pid))
    mnt.echo(f"{pid}/oom_score_adj", "300")
    assert mnt.read(f"{peer}/oom_score_adj") == "300\n"
    assert mnt.read(f"{vchild}/oom_score_adj") == "0\n"
    assert mnt.read(f"{vchild}/oom_score") == "0\n"  # in_vfork(): unkillable
    mnt.echo(f"{vchild}/oom_score_adj", "700")
    assert mnt.read(f"{pid}/oom_score_adj") == "300\n"


def test_6_x_killer_ties_go_to_the_last_and_mm_sharers_die(core_factory):
    scenario = ("""
[machine]
ram = "1000M"
[[process]]
pid = 1
comm = "init"
rss = "1M"
[[process]]
pid = 10
parent = 1
comm = "first"
rss = "100M"
[[process]]
pid = 11
parent = 1
comm = "second"
rss = "100M"
uid = 1000
[[process]]
pid = 12
parent = 11
comm = "peer"
clone_vm = true
""")
    mnt = core_factory("6.x", text=scenario)
    # 25600 pages of 256000: (1000 + 100) * 2 / 3 = 733 for both
    assert mnt.read("10/oom_score") == mnt.read("11/oom_score") == "733\n"
    out = mnt.ctl("oom")
    lines = [line.split("] ", 1)[1] for line in out.splitlines()[:-1]]
    killed = [line for line in lines if line.startswith("Out of memory")]
    assert killed[0] == ("Out of memory: Killed process 12 (peer) total-vm:102400kB, anon-rss:102400kB, "
                        "file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:0kB oom_score_adj:0")
    assert out.splitlines()[-1] == "killed: 12 11"  # the last of the ties, and its mm's other user
    assert lines[0].endswith(" invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), "
                             "order=0, oom_score_adj=0")


@pytest.mark.parametrize("era", ["2.6.31-rc", "2.6.31", "2.6.32", "6.x"])
def test_nothing_killable_is_reported_never_a_loop(core_factory, era):
    mnt = core_factory(era, text='[[process]]\npid = 1\ncomm = "init"\nvm = "1G"\nrss = "1G"\n'
                                  '[[process]]\npid = 2\ncomm = "kthreadd"\nkthread = true\n')
    out = mnt.ctl("oom")
    assert "Out of memory and no killable processes..." in out
    assert out.splitlines()[-1] == "killed: nothing"
