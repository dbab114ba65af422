"""What no caller may do to a mount or a run, through real mounts and real tools (issue 16).

The rules themselves (number ranges, the log's ring, scenario values) are tested in-process in
tests/core/test_limits.py and tests/core/test_control.py; here the kernel's own behaviour matters:
how it cuts a large write() into FUSE requests, how it interrupts a blocked read, what a race of
real processes does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import REPO, fakeproc, sh

HUGE = "9" * 400


def model_pids(mnt) -> set[int]:
    return {int(line.split()[0]) for line in mnt.ctl("ps").splitlines()[1:]}


# ------------------------------------------------ 16.2: the kernel cuts a large write into 128 KiB pieces

def test_cat_of_a_long_script_runs_every_line_once(mnt, tmp_path):
    n = 20000  # 20000 lines of ~22 bytes: 440 KB, four FUSE writes cut inside lines
    script = tmp_path / "script"
    script.write_text("".join(f"fork 1 --comm job{i}\n" for i in range(n)))
    before = model_pids(mnt)
    r = sh(f"cat {script} > {mnt / 'fakeproc/control'}")
    assert r.returncode == 0, r.stderr
    new = model_pids(mnt) - before
    assert len(new) == n


@pytest.mark.parametrize("misalign", [0, 1, 4095])
def test_one_large_write_keeps_every_reply(mnt, misalign):
    n = 8192
    data = "".join(f"fork 1 --comm j{i:05d}-{'x' * 20}\n" for i in range(n)).encode()
    # the buffer starts `misalign` bytes into a page: the kernel's first piece is shorter by as much
    buf = bytearray(misalign + len(data))
    buf[misalign:] = data
    fd = os.open(mnt / "fakeproc/control", os.O_RDWR)
    try:
        assert os.write(fd, memoryview(buf)[misalign:]) == len(data)
        reply = b""
        while chunk := os.read(fd, 1 << 16):
            reply += chunk
    finally:
        os.close(fd)
    pids = reply.split()
    assert len(pids) == n and len(set(pids)) == n


def test_a_megabyte_line_is_one_command(mnt):
    before = model_pids(mnt)
    fd = os.open(mnt / "fakeproc/control", os.O_RDWR)
    try:
        os.write(fd, b"fork 1 --comm " + b"A" * (1 << 20) + b"\n")
        pid = int(os.read(fd, 4096))
    finally:
        os.close(fd)
    assert model_pids(mnt) - before == {pid}
    assert mnt.read(f"{pid}/comm") == "A" * 15 + "\n"


# ------------------------------------------------ 16.3: replies belong to the open file that asked

def test_a_failed_write_reads_its_own_error(mnt):
    a = os.open(mnt / "fakeproc/control", os.O_RDWR)
    b = os.open(mnt / "fakeproc/control", os.O_RDWR)
    try:
        os.write(a, b"fork 1\n")
        with pytest.raises(OSError):
            os.write(b, b"exit \xff\n")
        assert os.pread(b, 200, 0).startswith(b"error: ")
        assert os.read(a, 100).strip().isdigit()
    finally:
        os.close(a)
        os.close(b)


# ------------------------------------------------ 16.4: numbers out of the kernel's ranges

def test_huge_numbers_are_refused_and_the_mount_goes_on(mnt):
    mnt.ctl("alloc", "500", "0")
    for words in (("tick", HUGE), ("cpu", "500", HUGE), ("clock", HUGE + "x"), ("fork", "1", "--uid", str(2**32))):
        r = fakeproc("ctl", "-m", str(mnt.path), *words, check=False)
        assert r.returncode != 0 and r.stderr.startswith("fakeproc") and "Traceback" not in r.stderr, r.stderr
        # and the daemon refuses them itself, whoever writes the line
        reply = sh(f"exec 3<>{mnt / 'fakeproc/control'}; echo '{' '.join(words)}' >&3; cat <&3", shell="bash")
        assert "Invalid argument" in reply.stderr and reply.stdout.startswith("error: "), reply
    mnt.ctl("tick", "1s")
    assert mnt.read("500/oom_score").strip().isdigit() and float(mnt.read("uptime").split()[0]) > 0


def test_a_control_argument_that_is_not_utf8_gets_a_message():
    r = subprocess.run([sys.executable, "-m", "fakeproc", "ctl", "-m", "/nonexistent", "set", "500", "--comm",
                        os.fsdecode(b"\xff\xfe")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.startswith("fakeproc"), r.stderr


# ------------------------------------------------ 16.5: a blocking passed-through read

def test_a_blocking_read_in_a_run_is_interruptible_and_blocks_no_one_else():
    """``cat /proc/kmsg`` blocks once the kernel's messages are read: ``timeout`` must be able to end it
    (FUSE_INTERRUPT) and other readers must go on meanwhile.  (Reading /proc/kmsg consumes the host's
    pending syslog messages, as any reader of it does.)"""
    script = ("(timeout 3 cat /proc/kmsg > /dev/null; echo kmsg $?) & sleep 0.5; "
              "cat /proc/self/oom_adj /proc/uptime > /dev/null && echo others-read; wait")
    r = subprocess.run([sys.executable, "-m", "fakeproc", "run", "--", "sh", "-c", script], capture_output=True,
                       text=True, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["others-read", "kmsg 124"]  # the others first; then timeout's SIGTERM


# ------------------------------------------------ 16.7: nothing outlives a run

RESPAWN = """trap '' TERM
while :; do sleep 30 & sleep 0.01; done
"""


def _with_marker(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_a_respawning_script_that_ignores_sigterm_leaves_nothing(tmp_path):
    script = tmp_path / f"respawn-{os.getpid()}.sh"
    script.write_text(RESPAWN)
    r = subprocess.run([sys.executable, "-m", "fakeproc", "run", "--", "sh", "-c", f"setsid sh {script} & sleep 1"],
                       capture_output=True, text=True, timeout=90, cwd="/")
    assert r.returncode == 0, r.stderr
    assert "process(es) behind" in r.stderr
    assert _with_marker(script.name) == []
    assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "fakeproc" in line]


def test_the_runs_cgroup_is_removed():
    """Where cgroup v2 is writable the run's processes live in a cgroup of their own, gone after the run."""
    from fakeproc.run import cgroup

    group = cgroup.create()
    if group is None:
        pytest.skip("no writable cgroup v2 hierarchy here: runs end their processes by sweeps alone")
    group.remove()
    parent = os.path.dirname(group.path)
    out = subprocess.run([sys.executable, "-m", "fakeproc", "run", "--", "sh", "-c", "cat /proc/self/cgroup"],
                         capture_output=True, text=True, timeout=60, cwd="/").stdout
    assert "fakeproc-run-" in out
    assert not [n for n in os.listdir(parent) if n.startswith("fakeproc-run-")]


# ------------------------------------------------ 16.8 and 16.9: files that are not regular

def test_save_refuses_what_is_not_a_regular_file(mnt, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (fifo, Path("/dev/null")):
        r = fakeproc("save", "-m", str(mnt.path), str(target), check=False)
        assert r.returncode != 0 and "regular file" in r.stderr, r.stderr
    assert os.path.exists("/dev/null") and os.major(os.stat("/dev/null").st_rdev) == 1


def test_mount_refuses_a_scenario_that_is_not_a_regular_file(tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()
    fifo, zero = tmp_path / "fifo", tmp_path / "zero"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    for scenario in (fifo, zero):
        t0 = time.monotonic()
        r = fakeproc("mount", str(mp), "--background", "--scenario", str(scenario), check=False)
        assert r.returncode != 0 and "regular file" in r.stderr, r.stderr
        assert time.monotonic() - t0 < 30  # refused, not read until memory runs out (the timeout says so too)


# ------------------------------------------------ 16.10: one mount per directory

def test_concurrent_mounts_on_one_directory_one_wins(tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "fakeproc", "mount", str(mp), "--background"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    try:
        assert sorted(rc for rc, _ in results) == [0, 1, 1], results
        assert all("already" in err or "another fakeproc mount" in err for rc, err in results if rc), results
        mounted = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if f" {mp} " in line]
        assert len(mounted) == 1
    finally:
        fakeproc("umount", str(mp), check=False)
        sh(f"fusermount -u -z {mp} 2>/dev/null; fusermount -u -z {mp} 2>/dev/null")


# ------------------------------------------------ 16.11: names shown safely

HOSTILE = "\x1b]0;owned\x07\x1b[2J"


def test_ps_escapes_a_name_set_with_prctl_in_a_run(tmp_path):
    setname = (f"import ctypes, sys, time; ctypes.CDLL(None).prctl(15, {HOSTILE.encode()!r}); "
               "open('/proc/self/oom_adj').read(); open(sys.argv[1], 'w').write('named'); time.sleep(30)")
    ready = tmp_path / "ready"
    script = (f'{sys.executable} -c "$SETNAME" {ready} & pid=$!; '
              f"while [ ! -s {ready} ]; do sleep 0.05; done; {sys.executable} -m fakeproc ps; kill $pid")
    r = subprocess.run([sys.executable, "-m", "fakeproc", "run", "--", "sh", "-c", script], capture_output=True,
                       text=True, timeout=60, cwd=REPO, env=dict(os.environ, SETNAME=setname))
    assert r.returncode == 0, r.stderr
    assert "?]0;owned??[2J" in r.stdout and "\x1b" not in r.stdout and "\x07" not in r.stdout, r.stdout


def test_ps_and_cat_on_a_mount_keep_the_bytes_and_escape_them_when_shown(mnt):
    mnt.ctl("set", "500", "--comm", HOSTILE)
    assert (mnt / "500/comm").read_bytes() == HOSTILE.encode()[:15] + b"\n"  # as the kernel keeps them
    out = fakeproc("ps", "-m", str(mnt.path)).stdout
    assert "?]0;owned??[2J" in out and "\x1b" not in out


def test_a_nul_in_a_scenario_name_ends_it(mount_factory, tmp_path):
    scenario = tmp_path / "nul.toml"
    scenario.write_text('[[process]]\npid = 1\ncomm = "init"\n\n[[process]]\npid = 600\nparent = 1\n'
                        'comm = "ab\\u0000cd"\n')
    m = mount_factory("--scenario", str(scenario))
    assert m.read("600/comm") == "ab\n"  # __get_task_comm(): the name ends at its NUL


def test_a_daemon_killed_mid_run_leaves_no_mount_behind(tmp_path):
    """SIGKILL of fakeproc run: its command goes with it (PR_SET_PDEATHSIG), and nothing is left on the host."""
    marker = f"{os.getpid() % 1000 + 60}.25"  # sleep's argument, unique enough to find the process by
    p = subprocess.Popen([sys.executable, "-m", "fakeproc", "run", "--", "sh", "-c", f"echo up; exec sleep {marker}"],
                         stdout=subprocess.PIPE, text=True, cwd="/")
    assert p.stdout is not None and p.stdout.readline() == "up\n"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    try:
        assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "fakeproc" in line]
        deadline = time.monotonic() + 10
        while _with_marker(f"sleep\0{marker}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _with_marker(f"sleep\0{marker}") == []
    finally:
        for pid in _with_marker(f"sleep\0{marker}"):
            os.kill(pid, signal.SIGKILL)
