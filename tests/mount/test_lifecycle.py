"""Mount, unmount, signals, dead daemons, bad scenarios, and the CLI's own errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from fakeproc.mounts import mount_state

from ..conftest import FAKEPROC, fakeproc
from .conftest import start_mount, stop_mount


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_foreground_mount_unmounts_cleanly_on_signal(tmp_path, sig):
    mp = tmp_path / "fg"
    p = subprocess.Popen(FAKEPROC + ["mount", str(mp)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (mp / "fakeproc/control").exists()), p.stderr
        assert (mp / "1/oom_adj").read_text() == "0\n"
        t0 = time.monotonic()
        p.send_signal(sig)
        assert p.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 1.0
        assert mount_state(str(mp)) == "free"
        err = p.stderr.read()
        assert "unmounted" in err and "Traceback" not in err
    finally:
        if p.poll() is None:
            p.kill()
            subprocess.run(["fusermount", "-u", "-z", str(mp)])


def test_a_killed_daemon_leaves_an_error_not_a_hang_and_is_cleared(mount_factory):
    mnt = mount_factory()
    pid = mnt.daemon_pid()
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: mount_state(str(mnt.path)) == "stale")
    with pytest.raises(OSError) as e:
        (mnt.path / "1/oom_adj").read_text()
    assert "Transport endpoint is not connected" in str(e.value)
    r = fakeproc("ctl", "-m", str(mnt.path), "ps", check=False)
    assert r.returncode != 0 and "fakeproc umount" in r.stderr
    # the next mount clears it, says so, and works
    r = fakeproc("mount", str(mnt.path), "--background", check=False)
    assert r.returncode == 0, r.stderr
    assert "cleared a dead mount" in r.stderr and "Transport endpoint is not connected" in r.stderr
    assert (mnt.path / "1/oom_adj").read_text() == "0\n"


def test_umount_clears_a_dead_mount_with_a_message(mount_factory):
    mnt = mount_factory()
    os.kill(mnt.daemon_pid(), signal.SIGKILL)
    assert wait_for(lambda: mount_state(str(mnt.path)) == "stale")
    r = fakeproc("umount", str(mnt.path), check=False)
    assert r.returncode == 0 and "cleared a dead mount" in r.stderr
    assert mount_state(str(mnt.path)) == "free"


def test_umount_stops_the_daemon(mount_factory):
    mnt = mount_factory()
    pid = mnt.daemon_pid()
    assert fakeproc("umount", str(mnt.path)).returncode == 0
    assert mount_state(str(mnt.path)) == "free"
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 5)


def test_mounting_twice_is_refused(mount_factory):
    mnt = mount_factory()
    r = fakeproc("mount", str(mnt.path), "--background", check=False)
    assert r.returncode != 0 and "already a fakeproc mount" in r.stderr


def test_umount_of_something_else_is_refused(tmp_path):
    r = fakeproc("umount", str(tmp_path), check=False)
    assert r.returncode != 0 and "not a fakeproc mount" in r.stderr


@pytest.mark.parametrize("text,message", [
    ("[machine]\nram = 'lots'\n", "not a size"),
    ("[[process]]\npid = 1\ncomm = 'init'\nfrobs = 3\n", "unknown key(s) ['frobs']"),
    ("[[process]]\npid = 5\ncomm = 'x'\n", "pid 1"),
    ("[[process]]\npid = 1\ncomm = 'init'\n[[process]]\npid = 2\nparent = 9\ncomm = 'x'\n", "parent 9 is not"),
    ("[[process]]\npid = 1\ncomm = 'init'\noom_adj = 20\n", "oom_adj must be"),
    ("not toml at all [", "Expected"),
])
def test_a_bad_scenario_is_reported_and_nothing_is_mounted(tmp_path, text, message):
    scenario = tmp_path / "bad.toml"
    scenario.write_text(text)
    mp = tmp_path / "mp"
    r = fakeproc("mount", str(mp), "--scenario", str(scenario), check=False)
    assert r.returncode != 0 and "bad scenario" in r.stderr and message in r.stderr
    assert mount_state(str(mp)) == "free"


def test_background_failure_is_reported(tmp_path):
    r = fakeproc("mount", str(tmp_path / "mp"), "--scenario", str(tmp_path / "missing.toml"), "--background",
                 check=False)
    assert r.returncode != 0 and "missing.toml" in r.stderr


def test_help_explains_every_option():
    out = fakeproc("mount", "--help").stdout
    for word in ("--kernel", "--privilege", "--scenario", "--background", "CAP_SYS_RESOURCE", "2.6.32"):
        assert word in out
    out = fakeproc("ctl", "--help").stdout
    for verb in ("fork", "vfork", "thread", "exec", "exit", "grow", "shrink", "tick", "oom", "dmesg", "ps"):
        assert verb in out
    assert "PPID" in fakeproc("ctl", "fork", "--help").stdout


def test_ctl_verbs_print_new_ids_last_and_errors_to_stderr(mnt):
    tid = int(mnt.ctl("thread", "500").split()[-1])
    assert (mnt.path / f"500/task/{tid}/oom_adj").read_text() == "0\n"
    assert "uptime 172830.00s" in mnt.ctl("tick", "30s")
    assert "500: vm" in mnt.ctl("shrink", "500", "1G")
    assert "is now job" in mnt.ctl("exec", "402", "job")
    r = fakeproc("ctl", "-m", str(mnt.path), "exit", "424242", check=False)
    assert r.returncode == 1 and r.stderr == "fakeproc: error: no such process: 424242\n" and r.stdout == ""
    r = fakeproc("ctl", "-m", str(mnt.path), "exit", "1", check=False)
    assert r.returncode == 1 and "init cannot exit" in r.stderr


def test_shell_only_control(mnt):
    """Everything is reachable without Python: write a line, read the reply on the same descriptor."""
    r = subprocess.run(["bash", "-c", f"exec 3<>{mnt.path}/fakeproc/control; echo 'fork 400' >&3; cat <&3"],
                       capture_output=True, text=True)
    pid = int(r.stdout.split()[-1])
    assert (mnt.path / f"{pid}/oom_adj").read_text() == "-17\n"
    r = subprocess.run(["bash", "-c", f"echo 'exit {pid}' > {mnt.path}/fakeproc/control; "
                                      f"cat {mnt.path}/fakeproc/control"], capture_output=True, text=True)
    assert r.stdout == f"exited: {pid}\n"


def test_mount_and_unmount_helpers_survive_a_second_round(tmp_path):
    mp = tmp_path / "again"
    mp.mkdir()
    for _ in range(2):
        m = start_mount(mp)
        assert (mp / "1/oom_adj").read_text() == "0\n"
        stop_mount(m)
        assert mount_state(str(mp)) == "free"


STORM = """
import errno, os, sys, time
path, value = sys.argv[1], sys.argv[2].encode()
done = 0
while True:
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, value)
        finally:
            os.close(fd)
        done += 1
    except OSError as e:
        print(done, errno.errorcode.get(e.errno, e.errno))
        break
"""


def test_sigkill_during_a_write_storm_gives_errors_not_hangs(mount_factory):
    mnt = mount_factory()
    writers = [subprocess.Popen([sys.executable, "-c", STORM, str(mnt.path / f"{pid}/oom_adj"), str(v)],
                                stdout=subprocess.PIPE, text=True)
               for pid, v in ((500, 3), (500, 5), (401, -4), (600, 7))]
    time.sleep(0.5)
    os.kill(mnt.daemon_pid(), signal.SIGKILL)
    for w in writers:
        out, _ = w.communicate(timeout=20)  # a hang fails here
        done, err = out.split()
        assert int(done) > 0 and err in ("ENOTCONN", "ECONNABORTED"), out
    assert wait_for(lambda: mount_state(str(mnt.path)) == "stale")
    r = fakeproc("mount", str(mnt.path), "--background", check=False)
    assert r.returncode == 0 and "cleared a dead mount" in r.stderr, r.stderr
    assert (mnt.path / "500/oom_adj").read_text() == "0\n"  # a fresh machine


def test_a_killed_run_leaves_nothing_that_hangs_and_its_link_goes_with_the_next_run(tmp_path):
    link = tmp_path / "run"
    # the command dies with fakeproc run (PR_SET_PDEATHSIG); a process it started in the background lives on
    p = subprocess.Popen(FAKEPROC + ["run", "--mountpoint", str(link), "--", "sh", "-c",
                                     "(while cat /proc/self/oom_adj >/dev/null; do :; done; echo dead) & "
                                     "echo ready; wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        time.sleep(0.3)
        p.kill()  # fakeproc run itself: its daemon dies
        assert p.stdout.readline() == "dead\n"  # the next read failed (ENOTCONN), it did not hang
        assert os.path.islink(link) and not os.path.exists(link)  # a dangling link, no mount anywhere here
        r = subprocess.run(FAKEPROC + ["run", "--mountpoint", str(link), "--", "cat", "/proc/self/oom_adj"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout == "0\n", r.stderr
        assert "removed the link of an earlier run" in r.stderr
        assert not os.path.lexists(link)
    finally:
        p.kill()
        p.wait()
