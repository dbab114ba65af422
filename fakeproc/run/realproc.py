"""Reading the host's real processes: every /proc parsing detail of run mode, in one place.

Named after the files they read, as psutil's ``_pslinux.py`` does.  psutil
gives what it parses well (the process table, uids, memory, thread times);
the rest (swap, page tables, effective capabilities, the system call a
vfork parent sleeps in, ``children``) is read here.  Every function raises
:class:`ProcessGone` when the process is not there any more.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass

import psutil

PROC = "/proc"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")

PF_KTHREAD = 0x00200000  # include/linux/sched.h
CLONE_VFORK = 0x00004000
# x86_64 system call numbers a vfork parent can sleep in (arch/x86/entry/syscalls/syscall_64.tbl)
SYS_CLONE, SYS_VFORK, SYS_CLONE3, SYS_KCMP = 56, 58, 435, 312
KCMP_VM = 1


class ProcessGone(Exception):
    """The real process (or thread) exited, or its pid now names another one."""


@dataclass(slots=True)
class Stat:
    """/proc/PID/stat: the fields run mode needs."""

    pid: int
    comm: str
    state: str
    ppid: int
    flags: int
    utime: int  # clock ticks (USER_HZ)
    stime: int
    nice: int
    starttime: int  # clock ticks since boot: with the pid, a process's identity

    @property
    def kthread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ESRCH, errno.EINVAL):  # EINVAL: some files while it exits
            raise ProcessGone(path) from e
        raise


def read_stat(pid: int, tid: int | None = None) -> Stat:
    """``/proc/PID/stat`` (or ``/proc/PID/task/TID/stat``); comm may hold spaces and parentheses."""
    path = f"{PROC}/{pid}/stat" if tid is None else f"{PROC}/{pid}/task/{tid}/stat"
    raw = _read(path).decode("utf-8", "replace")
    left, _, right = raw.rpartition(")")
    comm = left.partition("(")[2]
    f = right.split()
    # fields from 3 (state) on; the index is the man page's field number minus 3
    return Stat(pid if tid is None else tid, comm, f[0], int(f[1]), int(f[6]), int(f[11]), int(f[12]),
                int(f[16]), int(f[19]))


@dataclass(slots=True)
class Status:
    """/proc/PID/status: ids, capabilities and the memory counters of oom_badness()."""

    tgid: int
    uid: int
    gid: int
    cap_eff: int
    vm_size: int  # bytes
    rss_anon: int
    rss_file: int
    rss_shmem: int
    swap: int
    pte: int


def read_status(pid: int) -> Status:
    fields: dict[str, str] = {}
    for line in _read(f"{PROC}/{pid}/status").decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()

    def kb(name: str) -> int:
        v = fields.get(name)
        return int(v.split()[0]) * 1024 if v else 0  # kernel threads have no Vm* lines

    return Status(
        tgid=int(fields["Tgid"]),
        uid=int(fields["Uid"].split()[1]),  # effective
        gid=int(fields["Gid"].split()[1]),
        cap_eff=int(fields.get("CapEff", "0"), 16),
        vm_size=kb("VmSize"), rss_anon=kb("RssAnon"), rss_file=kb("RssFile"), rss_shmem=kb("RssShmem"),
        swap=kb("VmSwap"), pte=kb("VmPTE"),
    )


def read_oom_score_adj(pid: int) -> int:
    """The real kernel's value, for processes that existed before the model saw them."""
    return int(_read(f"{PROC}/{pid}/oom_score_adj"))


def read_tids(pid: int) -> list[int]:
    """``/proc/PID/task``: the thread ids, leader first."""
    try:
        tids = sorted(int(t) for t in os.listdir(f"{PROC}/{pid}/task"))
    except (FileNotFoundError, ProcessLookupError) as e:
        raise ProcessGone(pid) from e
    if pid in tids:
        tids.remove(pid)
        tids.insert(0, pid)
    return tids


def read_children(pid: int) -> list[int]:
    """``/proc/PID/task/*/children`` (CONFIG_PROC_CHILDREN): the process's children, by pid."""
    out: list[int] = []
    for tid in read_tids(pid):
        try:
            out += [int(c) for c in _read(f"{PROC}/{pid}/task/{tid}/children").split()]
        except ProcessGone:
            continue
    return out


def in_vfork_syscall(pid: int) -> bool:
    """Does a thread of ``pid`` sleep in vfork() or clone(CLONE_VFORK) right now?

    ``/proc/TID/syscall`` shows the number and arguments of the system call a
    blocked thread is in; a vfork parent waits in it until its child execs or
    exits (wait_for_vfork_done()).  clone3() keeps its flags in memory, read
    through ``/proc/PID/mem``.
    """
    try:
        tids = read_tids(pid)
    except ProcessGone:
        return False
    for tid in tids:
        try:
            words = _read(f"{PROC}/{pid}/task/{tid}/syscall").split()
        except (ProcessGone, PermissionError):
            continue
        if not words or not words[0].lstrip(b"-").isdigit():
            continue
        nr = int(words[0])
        if nr == SYS_VFORK:
            return True
        if nr == SYS_CLONE and len(words) > 1 and int(words[1], 16) & CLONE_VFORK:
            return True
        if nr == SYS_CLONE3 and len(words) > 1 and _clone3_flags(pid, int(words[1], 16)) & CLONE_VFORK:
            return True
    return False


def _clone3_flags(pid: int, addr: int) -> int:
    try:
        with open(f"{PROC}/{pid}/mem", "rb") as f:
            f.seek(addr)
            return struct.unpack("<Q", f.read(8))[0]
    except (OSError, struct.error, OverflowError):
        return 0


_libc = ctypes.CDLL(None, use_errno=True)


def same_mm(pid1: int, pid2: int) -> bool:
    """kcmp(KCMP_VM): do two real processes share one address space (vfork, CLONE_VM)?"""
    return _libc.syscall(SYS_KCMP, pid1, pid2, KCMP_VM, 0, 0) == 0


def read_uptime() -> float:
    return float(_read(f"{PROC}/uptime").split()[0])


def tgid_of(tid: int) -> int | None:
    """The process a thread id belongs to (FUSE reports the calling thread)."""
    try:
        return read_status(tid).tgid
    except (ProcessGone, KeyError, ValueError):
        return None


def mount_device(pid: int | str, mountpoint: str) -> str | None:
    """``major:minor`` of what is mounted at ``mountpoint`` in ``pid``'s mount namespace
    (``/proc/PID/mountinfo``; the last mount there wins, as it hides the others)."""
    found = None
    try:
        text = _read(f"{PROC}/{pid}/mountinfo").decode("utf-8", "replace")
    except (ProcessGone, OSError):  # EINVAL while the process exits
        return None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == mountpoint:
            found = fields[2]
    return found


def ram_and_swap() -> tuple[int, int]:
    return psutil.virtual_memory().total, psutil.swap_memory().total
