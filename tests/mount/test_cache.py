"""The raw backend lets the kernel cache the model's names and attributes, and takes them back.

fakeproc/fs/rawfuse.py answers a LOOKUP or GETATTR of the model's own nodes (pid and thread
directories, their files, the files at the root) with a validity of FAKEPROC_FUSE_CACHE seconds,
so that a repeated ``cat PID/oom_score`` costs OPEN, READ and RELEASE only.  Whenever the machine
releases a task or changes its owner it tells the kernel to drop what it cached, before the write
that caused it returns.  These tests hold both halves: the requests a repeated read causes (from
the daemon's --verbose log), and that nothing cached is ever seen after the change, by the
writer or by another process.  (File contents are never cached: every open is direct I/O.)
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys

import pytest

from ..conftest import sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the raw backend mounts with mount(2): root only")


def requests_since(log, mark: int) -> list[tuple[str, str]]:
    """(op, path) of each request the --verbose log shows after byte ``mark``."""
    text = log.read_bytes()[mark:].decode(errors="replace")
    return re.findall(r"request (\w+) \('([^']*)',\)", text)


def read_n(path: str, n: int) -> None:
    for _ in range(n):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.read(fd, 100)
        finally:
            os.close(fd)


@pytest.mark.parametrize("cache", ["1", "0"])
def test_a_repeated_read_asks_only_open_read_release(mount_factory, monkeypatch, cache):
    monkeypatch.setenv("FAKEPROC_FUSE_CACHE", cache)
    m = mount_factory("--fuse-backend", "raw", "-v")
    pid = m.new_pid("fork", "1")
    path = str(m / f"{pid}/oom_score")
    read_n(path, 1)  # the path's first walk looks every name up
    mark = m.log.stat().st_size
    read_n(path, 5)
    # (the root's own GETATTR comes every 10 ms; a RELEASE is sent after close() returns, so the
    # first read's may come after the mark and the last one's after the count)
    reqs = [(op, p) for op, p in requests_since(m.log, mark) if p != "/" and op != "release"]
    ops = sorted({op for op, _ in reqs})
    if cache == "1":
        assert reqs == [("open", f"/{pid}/oom_score"), ("read", f"/{pid}/oom_score")] * 5, reqs
    else:  # FAKEPROC_FUSE_CACHE=0: each walk looks up the pid and the file again, as libfuse does
        assert ops == ["lookup", "open", "read"], reqs
        assert [p for op, p in reqs if op == "lookup"] == [f"/{pid}", f"/{pid}/oom_score"] * 5, reqs


def seen(path: str) -> object:
    """What stat() of ``path`` shows (uid) or its errno name, in this process."""
    try:
        return os.stat(path).st_uid
    except OSError as e:
        return errno.errorcode[e.errno]


def seen_by_another_process(paths: list[str]) -> list[object]:
    code = ("import errno, os, sys\n"
            "def f(p):\n"
            "    try: return os.stat(p).st_uid\n"
            "    except OSError as e: return errno.errorcode[e.errno]\n"
            "print([f(p) for p in sys.argv[1:]])")
    r = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, check=True)
    return eval(r.stdout)  # a list of ints and errno names


def cached_paths(m, pid: int, tid: int) -> list[str]:
    """The names a thread's files go by; stat() each so that the kernel caches them all."""
    paths = [f"{m.path}/{p}" for p in (f"{pid}", f"{pid}/oom_score", f"{pid}/task", f"{pid}/task/{tid}",
                                       f"{pid}/task/{tid}/oom_adj", f"{tid}", f"{tid}/oom_score")]
    for p in paths:
        os.stat(p)
    return paths


@pytest.mark.parametrize("how", ["ctl exit", "echo exit > control", "sysrq f", "ctl oom"])
def test_a_released_process_is_gone_when_the_write_returns(mnt, how):
    pid = mnt.new_pid("fork", "1", "--comm", "victim")
    (mnt / f"{pid}/oom_adj").write_text("15")  # the OOM killer's choice
    tid = mnt.new_pid("thread", str(pid))
    paths = cached_paths(mnt, pid, tid)
    assert seen_by_another_process(paths) == [os.stat(paths[0]).st_uid] * len(paths)
    if how == "ctl exit":
        mnt.ctl("exit", str(pid))
    elif how == "echo exit > control":
        assert sh(f"echo exit {pid} > {mnt.path}/fakeproc/control").returncode == 0
    elif how == "sysrq f":
        assert sh(f"echo f > {mnt.path}/sysrq-trigger").returncode == 0
    else:
        assert f"Killed process {pid} " in mnt.ctl("oom")
    assert [seen(p) for p in paths] == ["ENOENT"] * len(paths)
    assert seen_by_another_process(paths) == ["ENOENT"] * len(paths)


def test_an_exited_thread_is_gone_its_process_stays(mnt):
    pid = mnt.new_pid("fork", "1")
    tid = mnt.new_pid("thread", str(pid))
    paths = cached_paths(mnt, pid, tid)
    mnt.ctl("exit", str(tid))
    gone = {f"{mnt.path}/{pid}/task/{tid}", f"{mnt.path}/{pid}/task/{tid}/oom_adj", f"{mnt.path}/{tid}",
            f"{mnt.path}/{tid}/oom_score"}
    uid = os.stat(paths[0]).st_uid
    want = ["ENOENT" if p in gone else uid for p in paths]
    assert [seen(p) for p in paths] == want
    assert seen_by_another_process(paths) == want
    assert sorted(os.listdir(f"{mnt.path}/{pid}/task")) == [str(pid)]


def test_a_new_owner_is_seen_at_once_by_every_name_and_open_file(mnt):
    pid = mnt.new_pid("fork", "1", "--uid", "1000")
    tid = mnt.new_pid("thread", str(pid))
    paths = cached_paths(mnt, pid, tid)
    fd = os.open(paths[1], os.O_RDONLY)
    try:
        assert {seen(p) for p in paths} == {1000} and os.fstat(fd).st_uid == 1000
        mnt.ctl("set", str(pid), "--uid", "1234", "--gid", "99")
        assert [seen(p) for p in paths] == [1234] * len(paths)
        assert seen_by_another_process(paths) == [1234] * len(paths)
        assert os.fstat(fd).st_uid == 1234 and os.stat(paths[1]).st_gid == 99
        # and the kernel's permission check follows: uid 1000 can no longer write the file
        r = sh(f"echo 3 > {paths[0]}/oom_adj", user=1000)
        assert r.returncode != 0 and "Permission denied" in r.stderr
    finally:
        os.close(fd)


def test_a_shell_inside_an_exited_pid_directory(mnt):
    pid = mnt.new_pid("fork", "1")
    r = sh(f"cd {mnt.path}/{pid} && cat oom_score >/dev/null && {sys.executable} -m fakeproc "
           f"ctl -m {mnt.path} exit {pid} && cat oom_score; echo status $?")
    assert "No such file or directory" in r.stderr and r.stdout.strip().endswith("status 1"), (r.stdout, r.stderr)



def test_the_names_kept_are_bounded(mount_factory, monkeypatch):
    """Past FAKEPROC_FUSE_CACHE_MAX names the oldest are dropped (the kernel keeps an unused dentry
    until memory runs short otherwise): the kernel asks for them again, the newest it still keeps."""
    monkeypatch.setenv("FAKEPROC_FUSE_CACHE_MAX", "10")
    m = mount_factory("--fuse-backend", "raw", "-v")
    pids = [m.new_pid("fork", "1") for _ in range(30)]
    first, last = pids[0], pids[-1]
    # a shell sits in the first pid's directory meanwhile: its name gets dropped under it
    shell = subprocess.Popen(["sh", "-c", "read line; cat oom_score"], cwd=m / str(first), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for pid in pids:
            read_n(str(m / f"{pid}/oom_score"), 1)
        mark = m.log.stat().st_size
        read_n(str(m / f"{last}/oom_score"), 1)
        read_n(str(m / f"{first}/oom_score"), 1)
        lookups = [p for op, p in requests_since(m.log, mark) if op == "lookup"]
        assert f"/{first}/oom_score" in lookups and not any(p.startswith(f"/{last}") for p in lookups), lookups
        out, err = shell.communicate("go\n", timeout=30)
    finally:
        shell.kill()
    assert out == m.read(f"{first}/oom_score") and not err, (out, err)
