"""The kernel's types and ranges for every number a user can give the machine.

A pid is an ``int`` below ``pid_max``; a uid a ``uid_t`` (unsigned 32 bits, with ``(uid_t)-1`` meaning
"no change"); a page count an ``unsigned long``; CPU time and the clock are ``unsigned long`` jiffies;
memory nodes are below ``MAX_NUMNODES``.  The machine refuses anything outside them (EINVAL, with a
message), so that no input can make a number the kernel could not hold, and no float can become
infinite or not a number.
"""

from __future__ import annotations

import math

ULONG_MAX = (1 << 64) - 1
LONG_MAX = (1 << 63) - 1
#: include/linux/threads.h: the default pid_max, the most a 64-bit kernel allows, and the pids a
#: wrapping allocation skips (alloc_pid() starts again at RESERVED_PIDS)
PID_MAX_DEFAULT = 0x8000
PID_MAX_LIMIT = 4 * 1024 * 1024
RESERVED_PIDS = 300
#: uid_t and gid_t are unsigned 32 bits; (uid_t)-1 is "no change" to setresuid() and never an id
UID_MAX = (1 << 32) - 2
#: include/linux/sched/prio.h
NICE_MIN, NICE_MAX = -20, 19
#: CONFIG_NODES_SHIFT=10 (x86_64 distribution kernels): memory node ids below this
MAX_NUMNODES = 1024
#: CONFIG_NR_CPUS of a distribution x86_64 kernel: the most CPUs a machine may have
NR_CPUS = 8192
#: kernel/capability.c: CAP_LAST_CAP of 6.x is 40
CAP_BITS = 41


def max_threads(ram_pages: int, version: tuple[int, ...]) -> int:
    """kernel/fork.c: the default ``threads-max`` for this much RAM: the RAM / (8 * THREAD_SIZE), at least
    20 (MIN_THREADS).  THREAD_SIZE on x86_64 is 8 KiB up to 3.14, 16 KiB since (commit 6538b8ea886e,
    "x86_64: expand kernel stack to 16K"); 2.6.32's fork_init() and 6.x's set_max_threads() agree on the rest."""
    thread_size = 8192 if version < (3, 15) else 16384
    return max(20, ram_pages * 4096 // (8 * thread_size))


def ulong_pages(nbytes: int, page_size: int = 4096) -> bool:
    """Does a size in bytes fit an ``unsigned long`` count of pages?"""
    return 0 <= nbytes and nbytes // page_size <= ULONG_MAX


def max_uptime(hz: int) -> float:
    """The longest uptime whose jiffies fit an ``unsigned long`` (jiffies_64 at CONFIG_HZ)."""
    return ULONG_MAX // hz


def finite(x: float) -> bool:
    """Not infinite, not NaN (an int of any size is finite: math.isfinite() would overflow on it)."""
    return isinstance(x, int) or math.isfinite(x)


def as_ulong(v: int) -> int:
    """C's unsigned long arithmetic: modulo 2**64."""
    return v & ULONG_MAX


def as_long(v: int) -> int:
    """C's (two's complement) long arithmetic: the value modulo 2**64, as a signed number."""
    v &= ULONG_MAX
    return v - (1 << 64) if v > LONG_MAX else v
