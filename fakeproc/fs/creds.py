"""Acting as the caller: a server thread takes a client's credentials for one passed-through operation.

Run mode passes most of ``/proc`` through to the host's.  The daemon is root with every capability;
if it opened, read or wrote host files with its own credentials, a caller without privilege would
get what only root may have (``kallsyms`` addresses, ``/proc/kmsg``, a write to
``sys/kernel/kptr_restrict``, the processes ``hidepid`` hides).  So every passed-through operation
runs with the caller's: its filesystem uid and gid (the FUSE request header carries them), its
supplementary groups (``/proc/TID/status``) and its effective capabilities (``capget(2)`` of the
calling thread), and the host kernel checks them as it checks any process.

The switch is per thread, with the raw system calls: ``setfsuid``, ``setfsgid``, ``setgroups`` and
``capset`` act on the calling thread only (glibc's ``setgroups()`` wrapper changes every thread of
the process; the raw system call does not), so other server threads keep their own.  The order
matters: a non-zero fsuid clears the filesystem capabilities from the effective set
(``cap_task_fix_setuid()``), so the caller's set is put in place after it; going back to fsuid 0
raises them again from the permitted set, which is kept whole throughout.

A caller whose credentials equal the daemon's (root with the same effective set, in groups that
make no difference to it) needs no switch.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from collections.abc import Iterator
from typing import NamedTuple

# x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl)
SYS_SETGROUPS, SYS_SETFSUID, SYS_SETFSGID, SYS_CAPGET, SYS_CAPSET = 116, 122, 123, 125, 126
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CapPair = _CapData * 2


class Credentials(NamedTuple):
    """What the kernel checks of a process when it opens, reads or writes a procfs file."""

    fsuid: int
    fsgid: int
    groups: tuple[int, ...]
    effective: int  # capability bits
    permitted: int
    inheritable: int


def capget(tid: int = 0) -> tuple[int, int, int] | None:
    """(effective, permitted, inheritable) of thread ``tid`` (0: the calling thread); None if it is gone."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, tid)
    data = _CapPair()
    if _libc.syscall(SYS_CAPGET, ctypes.byref(hdr), ctypes.byref(data)) != 0:
        return None
    lo, hi = data[0], data[1]
    return (lo.effective | hi.effective << 32, lo.permitted | hi.permitted << 32,
            lo.inheritable | hi.inheritable << 32)


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _CapPair()
    for i in (0, 1):
        data[i].effective = effective >> (32 * i) & 0xFFFFFFFF
        data[i].permitted = permitted >> (32 * i) & 0xFFFFFFFF
        data[i].inheritable = inheritable >> (32 * i) & 0xFFFFFFFF
    if _libc.syscall(SYS_CAPSET, ctypes.byref(hdr), ctypes.byref(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"capset: {os.strerror(e)}")


def _setgroups(groups: tuple[int, ...]) -> None:
    arr = (ctypes.c_uint32 * max(1, len(groups)))(*groups)
    if _libc.syscall(SYS_SETGROUPS, len(groups), arr) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setgroups: {os.strerror(e)}")


def read_groups(tid: int, proc: str = "/proc") -> tuple[int, ...] | None:
    """The supplementary groups of thread ``tid`` (``Groups:`` of its status); None if it is gone."""
    try:
        with open(f"{proc}/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Groups:"):
                    return tuple(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        return None
    return ()


_own = threading.local()


def own_credentials() -> Credentials:
    """The calling thread's credentials as they were first asked for (what ``acting_as`` restores)."""
    mine = getattr(_own, "creds", None)
    if mine is None:
        caps = capget(0)
        assert caps is not None
        mine = _own.creds = Credentials(os.geteuid(), os.getegid(), tuple(os.getgroups()), *caps)
    return mine


def caller_credentials(uid: int, gid: int, tid: int, proc: str = "/proc") -> Credentials | None:
    """The credentials of the calling thread ``tid`` of a FUSE request (``uid``/``gid`` from its header:
    the fsuid and fsgid); None if the thread is gone (the request is answered ESRCH-like by the caller)."""
    caps = capget(tid)
    if caps is None:
        return None
    mine = own_credentials()
    if uid == mine.fsuid and gid == mine.fsgid and caps[0] == mine.effective:
        return mine  # root with the daemon's own power: its groups change nothing the kernel checks
    groups = read_groups(tid, proc)
    if groups is None:
        return None
    return Credentials(uid, gid, groups, caps[0], caps[1], caps[2])


@contextlib.contextmanager
def acting_as(creds: Credentials | None) -> Iterator[None]:
    """Run the body with ``creds`` on this thread (filesystem ids, groups, effective capabilities).

    ``None`` (the caller vanished) fails with ESRCH before anything is done.
    """
    if creds is None:
        raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))
    mine = own_credentials()
    if creds is mine or creds == mine:
        yield
        return
    _setgroups(creds.groups)
    _libc.syscall(SYS_SETFSGID, creds.fsgid)
    _libc.syscall(SYS_SETFSUID, creds.fsuid)
    try:
        # effective must stay within this thread's permitted set; that one is kept whole so that
        # the way back needs no privilege the thread gave away
        _capset(creds.effective & mine.permitted, mine.permitted, mine.inheritable)
        yield
    finally:
        _libc.syscall(SYS_SETFSUID, mine.fsuid)
        _libc.syscall(SYS_SETFSGID, mine.fsgid)
        _capset(mine.effective, mine.permitted, mine.inheritable)
        _setgroups(mine.groups)
