"""The kernel objects the OOM rules talk about: task, signal_struct, mm_struct.

They are kept apart as in the kernel because the eras differ exactly in which of them holds
``oom_adj`` and in who shares which object after fork, vfork, clone of a thread and exec.

The OOM killer caches each candidate's score on the task (``oom_points``, valid while the uptime is
below ``oom_until``; see ``killer.py``).  Every field a score reads is a :class:`Scored` attribute:
assigning it forgets the cached scores that read it, so no code can change a score's input and
leave a stale score behind.  Which scores read a field:

- a task's own fields: its own score, its thread-group leader's (2.6.32 sums the cpu time of every
  thread; the leader stands for its process) and its real parent's (legacy ``badness()`` adds half of
  the ``total_vm`` of each entry of the parent thread's children list, threads included, that does
  not share its mm; 2.6.32 scores the leader, so the real parent's leader too): :func:`stale`;
- a ``signal_struct``'s: its leader's (and so its parent's);
- an ``mm_struct``'s: those of every task using it (threads, a vfork child, ``clone(CLONE_VM)``
  processes: ``Mm.users``).

The hot selection loops read the slots behind these attributes (``_nice``...) directly.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, overload

from ..kernel.caps import CAP_ALL

PAGE_SIZE = 4096
NODE0: frozenset[int] = frozenset({0})  # the default mems_allowed, one object shared by every task

#: ``Task.oom_until`` of a cached OOM score that must be computed again
STALE = -1
#: ``Task.oom_until`` of a cached OOM score that no tick of the clock can change
NEVER = 1 << 62
#: TASK_COMM_LEN - 1: the bytes of a task's name (the kernel keeps 16 with the NUL)
COMM_LEN = 15


def task_comm(name: str | bytes) -> str:
    """A name as the kernel keeps it (__set_task_comm(): strscpy_pad() into 16 bytes): the bytes up to a
    NUL, at most 15 of them, even when that cuts a UTF-8 character.  Held as text whose undecodable bytes
    are surrogates (``surrogateescape``), so that the files give the very bytes back (:func:`comm_bytes`)."""
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    return raw.split(b"\0", 1)[0][:COMM_LEN].decode("utf-8", "surrogateescape")


def comm_bytes(comm: str) -> bytes:
    """The bytes of a task's name, as /proc/PID/comm and the kernel log give them."""
    return comm.encode("utf-8", "surrogateescape")

T = TypeVar("T")

#: A children list: a tuple while short (most tasks have none or a few: 48 bytes for one child, against a
#: dict's 184), a dict past CHILDREN_AS_TUPLE (an exit among a million children then costs one deletion).
#: Both keep the order and answer ``in``, ``len`` and iteration; only machine/table.py changes them.
Children = tuple["Task", ...] | dict["Task", None]


class Scored(Generic[T]):
    """An attribute a cached OOM score reads: stored in the slot ``_NAME``; setting it calls ``forget``
    on the object (which forgets the scores that read it).

    The class body declares it (and tells the type checker its type); once the class exists it is
    replaced by a plain ``property`` whose getter is ``operator.attrgetter`` of the slot: reading it
    costs a C call, not a Python one (the killer and the renderers read these fields a great deal).
    """

    __slots__ = ("forget",)

    def __init__(self, forget: Callable[[Any], None]) -> None:
        self.forget = forget

    def __set_name__(self, owner: type, name: str) -> None:
        put = owner.__dict__["_" + name].__set__  # the member descriptor __slots__ made
        forget = self.forget

        def set_(obj: object, value: object) -> None:
            put(obj, value)
            forget(obj)

        setattr(owner, name, property(attrgetter("_" + name), set_, doc=f"{name} (a score reads it)"))

    @overload
    def __get__(self, obj: None, owner: type) -> Scored[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object | None, owner: type) -> Any:  # the type checker's view; see the docstring
        raise AssertionError("replaced by a property when the class is made")

    def __set__(self, obj: object, value: T) -> None:
        raise AssertionError("replaced by a property when the class is made")


def stale(t: Task) -> None:
    """t's fields changed: forget the cached scores that read them (its own, its leader's, its real parent's
    and that thread's leader's)."""
    t.oom_until = STALE
    threads = t._signal.threads
    leader = threads[0] if threads else t
    leader.oom_until = STALE
    parent = t._parent
    if parent is not None:
        parent.oom_until = STALE
        pthreads = parent._signal.threads
        if pthreads:
            pthreads[0].oom_until = STALE


def _stale_users(mm: Mm) -> None:
    for t in mm.users:
        stale(t)


def _stale_leader(sig: SignalStruct) -> None:
    if sig.threads:
        stale(sig.threads[0])


class Mm:
    """mm_struct: an address space, shared by threads and by a vfork child."""

    __slots__ = ("_total_vm", "_rss_anon", "_rss_file", "_rss_shmem", "_swap", "_pgtables", "_oom_adj", "users",
                 "multiprocess")

    total_vm: Scored[int] = Scored(_stale_users)  # pages
    rss_anon: Scored[int] = Scored(_stale_users)  # pages
    rss_file: Scored[int] = Scored(_stale_users)
    rss_shmem: Scored[int] = Scored(_stale_users)
    swap: Scored[int] = Scored(_stale_users)  # swap entries (pages)
    pgtables: Scored[int] = Scored(_stale_users)  # bytes
    oom_adj: Scored[int] = Scored(_stale_users)  # 2.6.31-rc keeps oom_adj here

    def __init__(self, total_vm: int = 0, rss_anon: int = 0, rss_file: int = 0, rss_shmem: int = 0,
                 swap: int = 0, pgtables: int = 0, oom_adj: int = 0) -> None:
        self._total_vm = total_vm
        self._rss_anon = rss_anon
        self._rss_file = rss_file
        self._rss_shmem = rss_shmem
        self._swap = swap
        self._pgtables = pgtables
        self._oom_adj = oom_adj
        #: the tasks using it (mm_users), kept by the process table: threads, a vfork child, clone(CLONE_VM)
        #: processes (a tuple: one user, the usual case, costs 48 bytes; a list that grew to one, 88)
        self.users: tuple[Task, ...] = ()
        self.multiprocess = False  # MMF_MULTIPROCESS: shared by clone(CLONE_VM) without CLONE_VFORK

    def copy(self) -> Mm:
        """dup_mm() at fork: the child's address space starts as a copy."""
        return Mm(self._total_vm, self._rss_anon, self._rss_file, self._rss_shmem, self._swap, self._pgtables,
                  self._oom_adj)

    @property
    def rss(self) -> int:
        return self._rss_anon + self._rss_file + self._rss_shmem


class SignalStruct:
    """signal_struct: what the threads of one process (thread group) share."""

    __slots__ = ("_oom_adj", "_oom_score_adj", "oom_score_adj_min", "threads", "_dead_cputime")

    oom_adj: Scored[int] = Scored(_stale_leader)  # 2.6.32
    oom_score_adj: Scored[int] = Scored(_stale_leader)  # 6.x
    dead_cputime: Scored[int] = Scored(_stale_leader)  # jiffies of threads that exited (thread_group_cputime)

    def __init__(self, oom_adj: int = 0, oom_score_adj: int = 0, oom_score_adj_min: int = 0) -> None:
        self._oom_adj = oom_adj
        self._oom_score_adj = oom_score_adj
        self.oom_score_adj_min = oom_score_adj_min
        self.threads: list[Task] = []  # leader first; kept by the process table
        self._dead_cputime = 0


class Task:
    """task_struct: one thread.  A process is its thread group, led by ``leader``.

    Created and linked (thread lists, children, mm users) by the process table only.
    """

    __slots__ = (
        "tid", "tgid", "_comm", "uid", "gid", "_nice", "_caps", "_utime", "_stime", "_start_time",
        "_mm", "_signal", "_parent", "children", "_vfork_parent", "vfork_children", "_kthread", "_oom_origin",
        "_oom_adj", "_mems", "oom_points", "oom_until", "oom_pre",
    )

    nice: Scored[int] = Scored(stale)
    caps: Scored[int] = Scored(stale)  # effective capability set
    utime: Scored[int] = Scored(stale)  # jiffies
    stime: Scored[int] = Scored(stale)
    start_time: Scored[float] = Scored(stale)  # seconds since boot
    kthread: Scored[bool] = Scored(stale)
    oom_origin: Scored[bool] = Scored(stale)  # PF_OOM_ORIGIN: running swapoff
    oom_adj: Scored[int] = Scored(stale)  # 2.6.30/2.6.31 keep oom_adj per thread
    mems: Scored[frozenset[int]] = Scored(stale)  # cpuset mems_allowed

    def __init__(self, tid: int, tgid: int, comm: str, uid: int, gid: int, signal: SignalStruct,
                 mm: Mm | None, parent: Task | None, start_time: float) -> None:
        self.tid = tid
        self.tgid = tgid
        self._comm = task_comm(comm)
        self.uid = uid  # change through Machine.set_owner(): it is what stat of the task's /proc entries shows
        self.gid = gid
        self._nice = 0
        self._caps = CAP_ALL if uid == 0 else 0
        self._utime = 0
        self._stime = 0
        self._start_time = start_time
        self._mm = mm
        self._signal = signal
        self._parent = parent  # real_parent: the thread that forked it (None: init, kthreadd, an orphan)
        #: the tasks whose real_parent this is, threads included, in the order they were added (creation,
        #: then re-parenting): the kernel's p->children list; kept by the process table (see Children)
        self.children: Children = ()
        self._vfork_parent: Task | None = None  # set from vfork() until exec or exit
        self.vfork_children = 0  # tasks whose vfork_parent this is (kept by the vfork_parent setter)
        self._kthread = False
        self._oom_origin = False
        self._oom_adj = 0
        self._mems = NODE0
        # The killer's cache of this candidate's score (None: not a candidate), valid while
        # int(uptime) < oom_until; anything that changes what the score reads sets it STALE.
        self.oom_points: int | None = None
        self.oom_until = STALE
        self.oom_pre: int | None = None  # legacy: what recomputes the score when oom_until is reached

    def _set_comm(self, name: str) -> None:
        self._comm = task_comm(name)

    def _set_mm(self, mm: Mm | None) -> None:
        """A new address space (exec): the users of the old one change too (a vfork child sharing it is
        no longer in vfork in 6.x; a 2.6.31 sharer no longer refuses this task's kill)."""
        old = self._mm
        self._mm = mm
        stale(self)
        if old is not None:
            _stale_users(old)

    def _set_parent(self, parent: Task | None) -> None:
        old = self._parent
        if old is not None:
            stale(old)  # its children changed
        self._parent = parent
        stale(self)

    def _set_vfork_parent(self, parent: Task | None) -> None:
        # every change goes through here, so that ``vfork_children`` (wait_for_vfork_done()'s
        # question: is some task still vfork()ed by this one?) is answered without a scan
        old = self._vfork_parent
        if old is not None:
            old.vfork_children -= 1
        if parent is not None:
            parent.vfork_children += 1
        self._vfork_parent = parent
        stale(self)

    # Read through attrgetter (a C call: the killer and the renderers read these a great deal); the type
    # checker is told what they are.
    if TYPE_CHECKING:
        @property
        def comm(self) -> str: ...
        @comm.setter
        def comm(self, name: str) -> None: ...
        @property
        def signal(self) -> SignalStruct: ...
        @property
        def mm(self) -> Mm | None: ...
        @mm.setter
        def mm(self, mm: Mm | None) -> None: ...
        @property
        def real_parent(self) -> Task | None: ...
        @real_parent.setter
        def real_parent(self, parent: Task | None) -> None: ...
        @property
        def vfork_parent(self) -> Task | None: ...
        @vfork_parent.setter
        def vfork_parent(self, parent: Task | None) -> None: ...
    else:
        comm = property(attrgetter("_comm"), _set_comm, doc="The name, as the kernel keeps it (task_comm()).")
        signal = property(attrgetter("_signal"), doc="The thread group's signal_struct.")
        mm = property(attrgetter("_mm"), _set_mm, doc="The address space (None: a kernel thread).")
        real_parent = property(attrgetter("_parent"), _set_parent,
                               doc="The thread it hangs off (copy_process(): the forking thread, or for a "
                                   "thread its creator's real_parent; None: init, kthreadd, an orphan).")
        vfork_parent = property(attrgetter("_vfork_parent"), _set_vfork_parent,
                                doc="The thread that vfork()ed this task, from vfork() until exec or exit.")

    @property
    def parent(self) -> Task | None:
        """The parent process (its leader): what PPid shows, task_tgid_nr_ns(task->real_parent)."""
        rp = self._parent
        return rp._signal.threads[0] if rp is not None and rp._signal.threads else rp

    @property
    def is_leader(self) -> bool:
        return self.tid == self.tgid

    @property
    def in_vfork(self) -> bool:
        """include/linux/sched/mm.h in_vfork() (6.x): ``tsk->vfork_done && real_parent->mm == tsk->mm``.
        vfork_done is set from vfork() until exec or exit (``vfork_parent`` here); the mm compared is the
        *current* real parent's: a vfork child whose parent died and was re-parented to init is no longer
        in vfork, one re-parented to another thread of its parent still is."""
        rp = self._parent
        return self._vfork_parent is not None and rp is not None and rp._mm is self._mm

    @property
    def leader(self) -> Task:
        return self._signal.threads[0]

    def has_cap(self, cap: int) -> bool:
        return bool(self._caps >> cap & 1)

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
    #: the model's task, when current is one (an allocating task, a caller in run mode, a kernel worker of
    #: the machine): what oom_kill_allocating_task kills
    task: Task | None = None
