"""Saving a mounted machine and mounting it again (tests/core/test_save.py: the round trip itself).

(b) through real mounts: `fakeproc save`, then a new mount of the saved file;
(c) `fakeproc mount --save-on-exit FILE`: a clean unmount saves, and the file mounts again.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from fakeproc.kernel.eras import ERAS
from fakeproc.machine.scenario import load_scenario

from ..conftest import fakeproc, sh
from .conftest import Mount

hypothesis = pytest.importorskip("hypothesis")

ERA_LIST = list(ERAS)


# --------------------------------------------------------------------------------------------------
# (b) through real mounts: `fakeproc save`, and a new mount of the saved file


def oom_files(mnt: Mount) -> dict[str, str]:
    """Every PID/oom_* and PID/task/TID/oom_* file of a mount, with what it reads."""
    out = {}
    for pid in sorted(int(n) for n in os.listdir(mnt.path) if n.isdigit()):
        dirs = [f"{pid}"] + [f"{pid}/task/{tid}" for tid in sorted(os.listdir(mnt.path / f"{pid}/task"), key=int)]
        for d in dirs:
            for name in sorted(os.listdir(mnt.path / d)):
                if name.startswith("oom_"):
                    out[f"{d}/{name}"] = mnt.read(f"{d}/{name}")
    return out


def ps_json(mnt: Mount) -> list[dict[str, object]]:
    return [json.loads(line) for line in fakeproc("ps", "-m", str(mnt.path), "--json").stdout.splitlines()]


def change_the_machine(mnt: Mount, era: str) -> None:
    """Shell writes and control verbs: forks, vfork, threads, CPU, memory, the clock, values, a kill."""
    p = str(mnt.path)
    sched = mnt.new_pid("fork", "1", "--comm", "sched")
    mnt.ctl("grow", str(sched), "1G")
    assert sh(f"echo -17 > {p}/{sched}/oom_adj").returncode == 0
    child = mnt.new_pid("vfork", str(sched), "--comm", "job")
    assert sh(f"echo 3 > {p}/{child}/oom_adj").returncode == 0
    tid = mnt.new_pid("thread", "600")
    assert sh(f"echo -5 > {p}/600/task/{tid}/oom_adj").returncode == 0  # 2.6.31: this thread only
    mnt.ctl("cpu", str(tid), "90s")
    mnt.ctl("cpu", "601", "1m", "--system")
    mnt.ctl("exit", "602")  # its CPU time stays in the process's total
    mnt.ctl("tick", "1h30m")
    mnt.ctl("mem", "401", "--pgtables", "6000", "--swap", "1M", "--file-rss", "64k")
    mnt.ctl("set", "700", "--nice", "3", "--caps", "sys_admin,kill", "--comm", "dns")
    mnt.ctl("clone", "700", "--comm", "dns-peer")
    if era == "6.x":
        assert sh(f"echo 250 > {p}/401/oom_score_adj").returncode == 0
    mnt.ctl("exit", "400")  # 401 and the vfork child go to init; the child still shares 400's old mm
    mnt.ctl("oom")  # kills someone and writes the kernel log


@pytest.mark.parametrize("era", ERA_LIST)
def test_save_and_mount_the_file_again(mount_factory, tmp_path, era):
    a = mount_factory("--kernel", era, name="a")
    change_the_machine(a, era)
    r = fakeproc("save", "-m", str(a.path), "saved.toml", cwd=tmp_path)  # a relative FILE is made absolute
    assert r.stdout.startswith("saved ") and str(tmp_path / "saved.toml") in r.stdout
    saved = tmp_path / "saved.toml"
    b = mount_factory("--scenario", str(saved), name="b")  # no --kernel: the era it was saved under
    assert f"kernel: {era}\n" in b.ctl("info")
    assert ps_json(b) == ps_json(a)
    files = oom_files(a)
    assert files == oom_files(b)
    assert len(files) > 20 and (era != "6.x" or any(k.endswith("oom_score_adj") for k in files))
    assert b.read("fakeproc/dmesg") == a.read("fakeproc/dmesg")
    b.ctl("save", str(tmp_path / "again.toml"))
    assert (tmp_path / "again.toml").read_text() == saved.read_text()
    # both go on alike
    assert a.ctl("oom") == b.ctl("oom")
    assert a.new_pid("fork", "1") == b.new_pid("fork", "1")
    assert oom_files(a) == oom_files(b)


def test_save_errors_are_errnos(mnt, tmp_path):
    r = fakeproc("ctl", "-m", str(mnt.path), "save", "relative.toml", check=False)
    assert r.returncode == 1 and "absolute path" in r.stderr
    r = fakeproc("save", "-m", str(mnt.path), str(mnt.path / "inside.toml"), check=False)
    assert r.returncode == 1 and "inside this mount" in r.stderr
    r = fakeproc("save", "-m", str(mnt.path), str(tmp_path / "no/such/dir/x.toml"), check=False)
    assert r.returncode == 1 and "No such file or directory" in r.stderr
    with pytest.raises(OSError) as e:  # the same through the control file: the errno
        (mnt.path / "fakeproc/control").write_text(f"save {tmp_path}\n")
    assert e.value.errno in (21, 16)  # EISDIR (rename onto a directory) or EBUSY
    target = tmp_path / "kept.toml"
    target.write_text("old")
    target.chmod(0o600)
    mnt.ctl("save", str(target))
    assert target.stat().st_mode & 0o777 == 0o600 and "[[process]]" in target.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


# --------------------------------------------------------------------------------------------------
# (c) --save-on-exit


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("how", ["umount", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_save_on_exit(mount_factory, tmp_path, how):
    state = tmp_path / "state.toml"
    mnt = mount_factory("--kernel", "6.x", "--save-on-exit", str(state))
    assert f"save_on_exit: {state}" in mnt.ctl("info")
    assert sh(f"echo -17 > {mnt.path}/500/oom_adj").returncode == 0
    pid = mnt.new_pid("fork", "1", "--comm", "late")
    daemon = mnt.daemon_pid()
    if how == "umount":
        assert fakeproc("umount", str(mnt.path)).returncode == 0  # returns once the daemon has exited
    else:
        os.kill(daemon, getattr(signal, how))
        assert wait_gone(daemon)
    if how == "SIGKILL":  # accepted: a killed daemon saves nothing
        assert not state.exists()
        return
    assert state.exists() and f"saved the machine (10 processes) to {state}" in mnt.log.read_text()
    m = load_scenario(state, ERAS["6.x"])
    assert m.read_oom_score_adj(500) == b"-1000\n" and m.read_oom_adj(500) == b"-17\n" and pid in m.processes
    again = mount_factory("--scenario", str(state), name="again")
    assert again.read("500/oom_score_adj") == "-1000\n" and again.read(f"{pid}/oom_adj") == "0\n"
    assert "deprecated" in again.read("fakeproc/dmesg")  # the log came along
