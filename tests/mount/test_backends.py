"""The two FUSE backends (raw /dev/fuse and fusepy over libfuse 2) give the same answers.

The whole suite runs with either one (FAKEPROC_FUSE=raw|fusepy); this module mounts both side by
side and asks them the same questions: every file system call a caller can make, its result or its
errno, and the sequence of values a write then a read from another process sees.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys

import pytest

from ..conftest import sh

BACKENDS = ("raw", "fusepy")


def outcome(fn, *args):
    try:
        r = fn(*args)
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
    return r


@pytest.fixture
def both(mount_factory):
    return {b: mount_factory("--fuse-backend", b, name=b) for b in BACKENDS}


def test_each_backend_is_the_one_asked_for(both):
    for backend, m in both.items():
        assert f"FUSE backend {backend}" in m.log.read_text(), backend


def facts(root: str, pid: int) -> dict[str, object]:
    """What a caller sees of a mount, with the daemon's own answers (no inode numbers)."""
    p = f"{root}/{pid}"

    def st(path):
        s = os.lstat(path)
        return (stat.filemode(s.st_mode), s.st_nlink, s.st_uid, s.st_gid, s.st_size)

    def write(path, data, flags=os.O_WRONLY):
        fd = os.open(path, flags)
        try:
            return os.write(fd, data)
        finally:
            os.close(fd)

    def read(path, size=4096, offset=0):
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    out: dict[str, object] = {}
    out["root listing"] = sorted(os.listdir(root))
    out["pid listing"] = sorted(os.listdir(p))
    out["task listing"] = sorted(os.listdir(f"{p}/task"))
    for name in ("", "/", "/task", "/oom_adj", "/oom_score", f"/task/{pid}/oom_adj"):
        out[f"stat {name}"] = outcome(st, p + name)
    out["stat root"] = outcome(st, root)
    out["stat control"] = outcome(st, f"{root}/fakeproc/control")
    out["read oom_score"] = outcome(read, f"{p}/oom_score")
    out["read oom_adj at 1, 1 byte"] = outcome(read, f"{p}/oom_adj", 1, 1)
    out["write 5"] = outcome(write, f"{p}/oom_adj", b"5\n")
    out["read after write"] = outcome(read, f"{p}/oom_adj")
    out["write O_TRUNC 3"] = outcome(write, f"{p}/oom_adj", b"3", os.O_WRONLY | os.O_TRUNC)
    out["read after O_TRUNC write"] = outcome(read, f"{p}/oom_adj")
    out["write garbage"] = outcome(write, f"{p}/oom_adj", b"abc")
    out["write 20 bytes"] = outcome(write, f"{p}/oom_adj", b"1" * 20)
    out["write to oom_score"] = outcome(write, f"{p}/oom_score", b"1")
    out["open a directory for writing"] = outcome(os.open, p, os.O_WRONLY)
    out["missing pid"] = outcome(os.lstat, f"{root}/999999")
    out["missing file"] = outcome(os.lstat, f"{p}/nothing")
    out["mkdir"] = outcome(os.mkdir, f"{p}/d")
    out["create"] = outcome(os.open, f"{p}/new", os.O_WRONLY | os.O_CREAT, 0o644)
    out["mknod"] = outcome(os.mknod, f"{p}/fifo", 0o600 | stat.S_IFIFO)
    out["symlink"] = outcome(os.symlink, "x", f"{p}/link")
    out["link"] = outcome(os.link, f"{p}/oom_adj", f"{p}/hard")
    out["unlink"] = outcome(os.unlink, f"{p}/oom_adj")
    out["rmdir"] = outcome(os.rmdir, f"{p}/task")
    out["rename onto existing"] = outcome(os.rename, f"{p}/oom_adj", f"{p}/oom_score")
    out["rename to missing"] = outcome(os.rename, f"{p}/oom_adj", f"{p}/other")
    out["chmod"] = outcome(os.chmod, f"{p}/oom_adj", 0o600)
    out["chown"] = outcome(os.chown, f"{p}/oom_adj", 0, 0)
    out["chown pid dir"] = outcome(os.chown, p, 0, 0)
    out["utime"] = outcome(os.utime, f"{p}/oom_adj", (1, 1))
    out["utime pid dir"] = outcome(os.utime, p, (1, 1))
    out["truncate"] = outcome(os.truncate, f"{p}/oom_adj", 0)
    out["truncate to 5"] = outcome(os.truncate, f"{p}/oom_adj", 5)
    out["listxattr"] = outcome(os.listxattr, f"{p}/oom_adj")
    out["getxattr"] = outcome(os.getxattr, f"{p}/oom_adj", "user.x")
    out["setxattr"] = outcome(os.setxattr, f"{p}/oom_adj", "user.x", b"1")
    out["removexattr"] = outcome(os.removexattr, f"{p}/oom_adj", "user.x")
    out["readlink of a file"] = outcome(os.readlink, f"{p}/oom_adj")
    out["access W_OK"] = outcome(os.access, f"{p}/oom_score", os.W_OK)
    vfs = os.statvfs(root)
    out["statvfs"] = (vfs.f_bsize, vfs.f_frsize, vfs.f_namemax, vfs.f_blocks, vfs.f_files)
    return out


def test_both_backends_answer_alike(both):
    seen = {}
    for backend, m in both.items():
        pid = m.new_pid("fork", "1")
        seen[backend] = facts(str(m.path), pid)
    raw, fusepy = seen["raw"], seen["fusepy"]
    assert raw.keys() == fusepy.keys()
    diff = {k: (raw[k], fusepy[k]) for k in raw if raw[k] != fusepy[k]}
    assert not diff, diff


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_as_another_user_alike(both):
    """The kernel's permission checks (default_permissions) and the caller's uid in the request header."""
    seen = {}
    for backend, m in both.items():
        pid = m.new_pid("fork", "1")
        script = (f"import os\n"
                  f"def o(f):\n"
                  f"    try: return f()\n"
                  f"    except OSError as e: return e.errno\n"
                  f"def op(path, flags):\n"
                  f"    return o(lambda: os.close(os.open(path, flags)) or 'opened')\n"
                  f"print(op('{m.path}/{pid}/oom_adj', os.O_WRONLY), op('{m.path}/{pid}/oom_score', os.O_RDONLY),"
                  f" op('{m.path}/fakeproc/control', os.O_RDONLY), op('{m.path}/sysrq-trigger', os.O_WRONLY),"
                  f" o(lambda: open('{m.path}/{pid}/oom_adj').read().strip()))\n")
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                            sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        seen[backend] = (r.returncode, r.stdout, r.stderr)
    assert seen["raw"] == seen["fusepy"]
    eacces = str(errno.EACCES)
    assert seen["raw"][1].split() == [eacces, "opened", eacces, eacces, "0"], seen["raw"]


def test_a_write_is_seen_at_once_by_another_process(both):
    for backend, m in both.items():
        pid = m.new_pid("fork", "1")
        f = f"{m.path}/{pid}/oom_adj"
        for v in (1, -3, 7, 0):
            assert sh(f"echo {v} > {f}").returncode == 0, backend
            assert sh(f"cat {f}").stdout == f"{v}\n", backend


def control(m, line: str) -> str:
    fd = os.open(f"{m.path}/fakeproc/control", os.O_RDWR)
    try:
        os.write(fd, line.encode() + b"\n")
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def test_a_listing_longer_than_one_readdir(both):
    for backend, m in both.items():
        for _ in range(300):
            control(m, "fork 1")
        names = os.listdir(m.path)
        assert len(names) == len(set(names)) and len(names) > 300, backend
    assert sorted(os.listdir(both["raw"].path)) == sorted(os.listdir(both["fusepy"].path))
