"""The kernel objects the OOM rules talk about: task, signal_struct, mm_struct.

They are kept apart as in the kernel because the eras differ exactly in which
of them holds ``oom_adj`` and in who shares which object after fork, vfork,
clone of a thread and exec.
"""

from __future__ import annotations

from typing import NamedTuple

from ..kernel.caps import CAP_ALL

PAGE_SIZE = 4096
NODE0: frozenset[int] = frozenset({0})  # the default mems_allowed, one object shared by every task

#: ``Task.oom_until`` of a cached OOM score that must be computed again (see ``KillerMixin.touch``)
STALE = -1
#: ``Task.oom_until`` of a cached OOM score that no tick of the clock can change
NEVER = 1 << 62


class Mm:
    """mm_struct: an address space, shared by threads and by a vfork child."""

    __slots__ = ("total_vm", "rss_anon", "rss_file", "rss_shmem", "swap", "pgtables", "oom_adj", "users",
                 "multiprocess")

    def __init__(self, total_vm: int = 0, rss_anon: int = 0, rss_file: int = 0, rss_shmem: int = 0,
                 swap: int = 0, pgtables: int = 0, oom_adj: int = 0) -> None:
        self.total_vm = total_vm  # pages
        self.rss_anon = rss_anon  # pages
        self.rss_file = rss_file
        self.rss_shmem = rss_shmem
        self.swap = swap  # swap entries (pages)
        self.pgtables = pgtables  # bytes
        self.oom_adj = oom_adj  # 2.6.31-rc keeps oom_adj here
        self.users = 0  # tasks using it (mm_users)
        self.multiprocess = False  # MMF_MULTIPROCESS: shared by clone(CLONE_VM) without CLONE_VFORK

    def copy(self) -> Mm:
        """dup_mm() at fork: the child's address space starts as a copy."""
        return Mm(self.total_vm, self.rss_anon, self.rss_file, self.rss_shmem, self.swap,
                  self.pgtables, self.oom_adj)

    @property
    def rss(self) -> int:
        return self.rss_anon + self.rss_file + self.rss_shmem


class SignalStruct:
    """signal_struct: what the threads of one process (thread group) share."""

    __slots__ = ("oom_adj", "oom_score_adj", "oom_score_adj_min", "threads", "dead_cputime")

    def __init__(self, oom_adj: int = 0, oom_score_adj: int = 0, oom_score_adj_min: int = 0) -> None:
        self.oom_adj = oom_adj  # 2.6.32
        self.oom_score_adj = oom_score_adj  # 6.x
        self.oom_score_adj_min = oom_score_adj_min
        self.threads: list[Task] = []  # leader first
        self.dead_cputime = 0  # jiffies of threads that exited (thread_group_cputime)


class Task:
    """task_struct: one thread.  A process is its thread group, led by ``leader``."""

    __slots__ = (
        "tid", "tgid", "comm", "uid", "gid", "nice", "caps", "utime", "stime", "start_time",
        "mm", "signal", "parent", "children", "_vfork_parent", "vfork_children", "kthread", "oom_origin",
        "oom_adj", "mems", "oom_points", "oom_until", "oom_pre",
    )

    def __init__(self, tid: int, tgid: int, comm: str, uid: int, gid: int, signal: SignalStruct,
                 mm: Mm | None, parent: Task | None, start_time: float) -> None:
        self.tid = tid
        self.tgid = tgid
        self.comm = comm[:15]  # TASK_COMM_LEN - 1
        self.uid = uid
        self.gid = gid
        self.nice = 0
        self.caps = CAP_ALL if uid == 0 else 0  # effective capability set
        self.utime = 0  # jiffies
        self.stime = 0
        self.start_time = start_time  # seconds since boot
        self.mm = mm
        self.signal = signal
        self.parent = parent  # the parent process's leader
        self.children: list[Task] = []  # leaders of child processes, fork order
        self._vfork_parent: Task | None = None  # set from vfork() until exec or exit
        self.vfork_children = 0  # tasks whose vfork_parent this is (kept by the vfork_parent setter)
        self.kthread = False
        self.oom_origin = False  # PF_OOM_ORIGIN: running swapoff
        self.oom_adj = 0  # 2.6.30/2.6.31 keep oom_adj per thread
        self.mems: frozenset[int] = NODE0  # cpuset mems_allowed
        # The killer's cache of this candidate's score (None: not a candidate), valid while
        # int(uptime) < oom_until; anything that changes what the score reads sets it STALE.
        self.oom_points: int | None = None
        self.oom_until = STALE
        self.oom_pre: int | None = None  # legacy: what recomputes the score when oom_until is reached

    @property
    def is_leader(self) -> bool:
        return self.tid == self.tgid

    @property
    def vfork_parent(self) -> Task | None:
        """The thread that vfork()ed this task, from vfork() until exec or exit (else None)."""
        return self._vfork_parent

    @vfork_parent.setter
    def vfork_parent(self, parent: Task | None) -> None:
        # every change goes through here, so that ``vfork_children`` (wait_for_vfork_done()'s
        # question: is some task still vfork()ed by this one?) is answered without a scan
        old = self._vfork_parent
        if old is not None:
            old.vfork_children -= 1
        if parent is not None:
            parent.vfork_children += 1
        self._vfork_parent = parent

    @property
    def in_vfork(self) -> bool:
        """include/linux/sched/mm.h in_vfork(): a vfork child still sharing its parent's mm."""
        return self.vfork_parent is not None and self.vfork_parent.mm is self.mm

    @property
    def leader(self) -> Task:
        return self.signal.threads[0]

    def has_cap(self, cap: int) -> bool:
        return bool(self.caps >> cap & 1)

    def __repr__(self) -> str:
        return f"<Task {self.tid}/{self.tgid} {self.comm}>"


class Caller(NamedTuple):
    """Who is asking: a real process outside the model (or inside it, in run mode).

    ``comm`` and ``oom_adj`` are what the kernel would print for ``current``
    in an OOM report header.
    """

    pid: int
    uid: int
    comm: str
    oom_adj: int = 0
