"""The seed's story under 2.6.32, as a shell and `fakeproc ctl` tell it, through the filesystem core."""

from __future__ import annotations


def test_scheduler_keeps_minus_17_through_vfork_and_is_never_killed(core):
    mnt = core
    sched = mnt.new_pid("fork", "1", "--comm", "sched")
    mnt.ctl("grow", str(sched), "3G")  # the biggest process on the machine
    mnt.echo(f"{sched}/oom_adj", "-17")
    child = mnt.new_pid("vfork", str(sched))
    assert mnt.read(f"{child}/oom_adj") == "-17\n"  # the vfork child starts with a copy
    mnt.echo(f"{child}/oom_adj", "0")
    assert mnt.read(f"{sched}/oom_adj") == "-17\n"  # ... not the parent's value
    mnt.ctl("exec", str(child), "job")
    assert mnt.read(f"{sched}/oom_adj") == "-17\n"
    assert mnt.read(f"{child}/oom_adj") == "0\n"
    assert mnt.read(f"{sched}/oom_score") == "0\n"

    victims = []
    for _ in range(6):  # kill everything killable, one OOM at a time
        out = mnt.ctl("oom")
        victims.append(out.splitlines()[-1])
        assert f"kill process {sched} " not in out and f"Killed process {sched} " not in out
    assert str(sched) in mnt.ctl("ps").split()
    assert "Killed process" in mnt.read("fakeproc/dmesg")
    assert f"killed: {child}" in victims or f"Killed process {child} (job)" in mnt.read("fakeproc/dmesg")


def test_vfork_child_before_exec_dies_alone(core):
    mnt = core
    """2.6.32 never kills the vfork parent with its child (the rc kernel did)."""
    sched = mnt.new_pid("fork", "1", "--comm", "sched")
    mnt.ctl("grow", str(sched), "8G")
    child = mnt.new_pid("vfork", str(sched))
    for pid in ("500", "600", "401", "700"):
        mnt.ctl("exit", pid)
    out = mnt.ctl("oom")
    # sched is chosen (biggest, 0), and its child with its own mm is tried first:
    # the vfork child shares sched's mm, so it is skipped and sched itself dies.
    assert f"kill process {sched} (sched)" in out
    assert f"Killed process {sched} (sched)" in out
    assert str(child) in mnt.ctl("ps").split()
