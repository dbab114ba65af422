"""The state of a mount point, and the ways to take a mount away.

A daemon killed with SIGKILL leaves its mount answering ENOTCONN
("Transport endpoint is not connected"); ``fusermount -u -z`` clears it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

FSTYPE = "fuse.fakeproc"


def unescape(field: str) -> str:
    """/proc/self/mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 0 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounted_fstype(mountpoint: str) -> str | None:
    """The filesystem type mounted exactly at ``mountpoint`` (the last one), or None."""
    target = os.path.abspath(mountpoint)
    found = None
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) > 4 and unescape(fields[4]) == target:
                    found = right.split()[0]
    except OSError:
        return None
    return found


def fakeproc_mountpoints() -> list[str]:
    """Every fakeproc mount point of this mount namespace."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split()[:1] == [FSTYPE]:
                    out.append(unescape(left.split()[4]))
    except OSError:
        pass
    return out


def mount_state(mountpoint: str) -> str:
    """One of ``missing``, ``stale``, ``fakeproc``, ``other`` (another fs mounted), ``free``."""
    try:
        os.stat(mountpoint)
    except OSError as e:
        if e.errno in (errno.ENOTCONN, errno.ECONNABORTED):  # the latter while the daemon dies
            return "stale"
        if e.errno == errno.ENOENT:
            return "missing"
        raise
    fstype = mounted_fstype(mountpoint)
    if fstype is None:
        return "free"
    return "fakeproc" if fstype == FSTYPE else "other"


def fusermount_unmount(mountpoint: str, lazy: bool = False) -> tuple[bool, str]:
    args = ["fusermount", "-u"] + (["-z"] if lazy else []) + [mountpoint]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        # without fusermount (root only): the umount2() system call itself
        r = subprocess.run(["umount"] + (["-l"] if lazy else []) + [mountpoint], capture_output=True, text=True)
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def clear_stale(mountpoint: str) -> bool:
    """Clear a dead daemon's mount; True if there was one."""
    if mount_state(mountpoint) != "stale":
        return False
    ok, msg = fusermount_unmount(mountpoint, lazy=True)
    if not ok:
        raise OSError(errno.EBUSY, f"cannot clear the dead mount at {mountpoint}: {msg}")
    return True


def unmount(mountpoint: str) -> None:
    """Unmount, lazily if the mount is busy (a shell inside it, an open file)."""
    ok, msg = fusermount_unmount(mountpoint)
    if not ok:
        log.warning("unmount of %s failed (%s); detaching it lazily", mountpoint, msg)
        ok, msg = fusermount_unmount(mountpoint, lazy=True)
        if not ok:
            raise OSError(errno.EBUSY, f"cannot unmount {mountpoint}: {msg}")


def claim(mountpoint: str) -> int:
    """Be the one mount starting at ``mountpoint``: an exclusive flock() on the directory, held (by the
    descriptor returned) for the daemon's life.  Two ``fakeproc mount``s that race for one directory
    both lock the directory beneath; one wins, the other is told.  One that comes after the mount is
    made opens the mount's root instead and is refused by the state check that follows."""
    try:
        fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise OSError(errno.ENOTDIR, f"{mountpoint} is not a directory (a mount point is one)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OSError(errno.EBUSY, f"another fakeproc mount is starting at {mountpoint}") from None
    if mount_state(mountpoint) == "fakeproc":
        os.close(fd)
        raise OSError(errno.EBUSY, f"{mountpoint} is already a fakeproc mount (fakeproc umount {mountpoint} first)")
    return fd


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
