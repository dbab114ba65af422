"""The simulated machine: process table, lifecycle, memory, clock.

What the OOM files do lives in ``oomfiles.py`` and the killer in
``killer.py``; :class:`Machine` combines the three.  Every rule that differs
between kernels is read from ``self.era`` (:class:`fakeproc.kernel.eras.Era`).
The machine is not thread-safe by itself: its owner (the daemon) serialises
calls with one lock.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator

from ..kernel.badness import OOM_DISABLE
from ..kernel.eras import AdjHome, Era, score_adj_to_legacy
from ..units import format_size
from .errors import MachineError
from .journal import Journal
from .killer import KillerMixin, OomObserver
from .klog import KernelLog
from .oomfiles import OomFilesMixin
from .pressure import Allocator, PressureMixin
from .task import PAGE_SIZE, Mm, SignalStruct, Task

#: An exec'd program starts with this address space unless told otherwise.
EXEC_DEFAULT_VM = 4 << 20
EXEC_DEFAULT_RSS = 1 << 20


class Machine(OomFilesMixin, KillerMixin, PressureMixin):
    """A simulated Linux machine, as far as the OOM killer can see it."""

    def __init__(self, era: Era, ram: int = 4 << 30, swap: int = 0, hz: int = 250,
                 uptime: float = 0.0) -> None:
        self.era = era
        self.ram_pages = ram // PAGE_SIZE
        self.swap_pages = swap // PAGE_SIZE
        self.hz = hz
        self.uptime = uptime  # seconds since boot, moved only by tick()
        self.clock_scale = 0.0  # 0: stepped (tick only); 1: real time; N: N simulated seconds per real one
        self.allocators: dict[int, Allocator] = {}  # pid -> allocation rate (pressure.py)
        self.tasks: dict[int, Task] = {}  # every live thread, by tid
        self.processes: dict[int, Task] = {}  # thread-group leaders, in creation order
        self.next_pid = 1
        self.log = KernelLog()
        self.journal = Journal()  # the change stream (fakeproc log --json)
        self.deprecation_warned = False  # 6.x pr_warn_once() of the legacy oom_adj file
        self.observers: list[OomObserver] = []  # told before and after each OOM kill (run mode)
        #: told ``(task, gone)`` when a task is released (gone=True) or its owner changes: what
        #: ``stat`` shows of its /proc entries.  The raw FUSE backend lets the kernel cache those
        #: names and attributes, and takes them back when told (fakeproc.fs.rawfuse).
        self.entry_watchers: list[Callable[[Task, bool], None]] = []
        # select_bad_process()'s cache (killer.py): what the cached scores were computed for,
        # the cpuset and the uptime of the last selection, and the mms changed since whose users
        # are not known
        self._oom_key: tuple[object, ...] | None = None
        self._oom_mems: frozenset[int] | None = None
        self._oom_uptime = 0
        self._oom_dirty_mms: set[Mm] = set()

    # ----------------------------------------------------------------- lookup

    def task(self, tid: int) -> Task:
        t = self.tasks.get(tid)
        if t is None:
            raise MachineError(errno.ESRCH, f"no such process: {tid}")
        return t

    def process(self, pid: int) -> Task:
        """The leader of process ``pid`` (a thread id names its process too)."""
        return self.task(pid).leader

    def iter_processes(self) -> Iterator[Task]:
        return iter(list(self.processes.values()))

    def printk(self, text: str) -> str:
        self.journal.record(self.uptime, "kernel", text=text)
        return self.log.printk(self.uptime, text)

    def note(self, kind: str, **fields: object) -> None:
        """Add a change to the journal, stamped with the simulated clock."""
        self.journal.record(self.uptime, kind, **fields)

    @property
    def totalpages(self) -> int:
        """RAM pages + swap pages: what 6.x oom_badness() scales oom_score_adj by."""
        return self.ram_pages + self.swap_pages

    # ------------------------------------------------------- where the value is

    def get_adj(self, t: Task) -> int:
        """The era's own value: oom_adj (-17..15), or oom_score_adj (-1000..1000) in 6.x."""
        home = self.era.adj_home
        if home is AdjHome.SIGNAL:
            return t.signal.oom_adj
        if home is AdjHome.SIGNAL_SCORE_ADJ:
            return t.signal.oom_score_adj
        if home is AdjHome.MM:
            return t.mm.oom_adj if t.mm is not None else OOM_DISABLE
        return t.oom_adj

    def get_oom_adj(self, t: Task) -> int:
        """What ``oom_adj`` reads: the value, or 6.x's lossy legacy view of oom_score_adj."""
        if self.era.adj_home is AdjHome.SIGNAL_SCORE_ADJ:
            return score_adj_to_legacy(t.signal.oom_score_adj)
        return self.get_adj(t)

    def _set_adj(self, t: Task, v: int) -> None:
        home = self.era.adj_home
        if home is AdjHome.SIGNAL:
            t.signal.oom_adj = v
        elif home is AdjHome.SIGNAL_SCORE_ADJ:
            t.signal.oom_score_adj = v
        elif home is AdjHome.MM:
            if t.mm is None:
                raise MachineError(errno.EINVAL, f"{t.tid} has no mm")
            t.mm.oom_adj = v
            self.touch_mm(t.mm, t)  # every task on this mm (threads, a vfork child) has the value
            return
        else:
            t.oom_adj = v
        self.touch(t)  # a signal_struct value is read through the leader, the only candidate

    def store_adj(self, t: Task, v: int, adj_min: int | None = None) -> None:
        """Set a process's value with no permission check (scenario loading)."""
        for th in t.signal.threads if self.era.adj_home is AdjHome.TASK else (t,):
            self._set_adj(th, v)
        if adj_min is not None:
            t.signal.oom_score_adj_min = adj_min

    # ------------------------------------------------------ process lifecycle

    def _alloc_pid(self, pid: int | None) -> int:
        if pid is None:
            pid = self.next_pid
        elif pid in self.tasks:
            raise MachineError(errno.EEXIST, f"pid {pid} is in use")
        self.next_pid = max(self.next_pid, pid + 1)
        return pid

    def _attach(self, t: Task) -> None:
        self.tasks[t.tid] = t
        if t.signal.threads:
            t.signal.threads.append(t)
        else:
            t.signal.threads = [t]  # a list of exactly one (append() would reserve four slots)
        if t.mm is not None:
            t.mm.users += 1
        if t.is_leader:
            self.processes[t.tid] = t
            if t.parent is not None:
                t.parent.children.append(t)
        self.touch(t)  # a new candidate; its leader has a new thread, its parent a new child

    def spawn(self, comm: str, *, pid: int | None = None, parent: Task | None = None, uid: int = 0,
              gid: int | None = None, mm: Mm | None = None, kthread: bool = False) -> Task:
        """Create a process from nothing (scenario loading; the first process)."""
        pid = self._alloc_pid(pid)
        t = Task(pid, pid, comm, uid, uid if gid is None else gid, SignalStruct(), None if kthread else (mm or Mm()),
                 parent, self.uptime)
        t.kthread = kthread
        self._attach(t)
        return t

    def fork(self, ppid: int, *, uid: int | None = None, gid: int | None = None, comm: str | None = None,
             vfork: bool = False, share_vm: bool = False, pid: int | None = None) -> Task:
        """copy_process() for fork(), vfork() or clone(CLONE_VM) by the process ``ppid``.

        ``uid`` lets the child drop to another user straight away (fork then
        setuid(), as a daemon does); a root child that leaves uid 0 loses its
        capabilities, as setuid() does.  ``share_vm``: clone(CLONE_VM) without
        CLONE_VFORK, a separate process on the same mm (flagged
        MMF_MULTIPROCESS by 6.x's copy_oom_score_adj()).
        """
        parent_thread = self.task(ppid)
        parent = parent_thread.leader
        if (vfork or share_vm) and parent_thread.mm is None:
            raise MachineError(errno.EINVAL, f"{ppid} is a kernel thread: it has no mm to share")
        pid = self._alloc_pid(pid)
        old = parent.signal
        sig = SignalStruct(old.oom_adj, old.oom_score_adj, old.oom_score_adj_min)
        if parent_thread.mm is None:
            mm = None
        elif vfork or share_vm:
            mm = parent_thread.mm  # CLONE_VM: the very same mm
            if share_vm:
                mm.multiprocess = True
        else:
            mm = parent_thread.mm.copy()  # carries mm->oom_adj along (2.6.31-rc)
        child = Task(pid, pid, comm or parent_thread.comm, parent_thread.uid, parent_thread.gid, sig, mm,
                     parent, self.uptime)
        child.nice = parent_thread.nice
        child.caps = parent_thread.caps
        child.kthread = parent_thread.kthread
        child.oom_adj = parent_thread.oom_adj  # per-thread value of 2.6.30/2.6.31
        child.mems = parent_thread.mems
        if vfork:
            child.vfork_parent = parent_thread
        if uid is not None and uid != child.uid:
            child.uid = uid
            if uid != 0:
                child.caps = 0
        if gid is not None:
            child.gid = gid
        elif uid is not None:
            child.gid = uid
        self._attach(child)
        self.note("vfork" if vfork else "clone" if share_vm else "fork", pid=pid, ppid=parent.tgid,
                  comm=child.comm, uid=child.uid)
        return child

    def clone_thread(self, pid: int, *, tid: int | None = None) -> Task:
        """clone(CLONE_THREAD | CLONE_VM | CLONE_SIGHAND): a new thread in process ``pid``."""
        creator = self.task(pid)
        leader = creator.leader
        tid = self._alloc_pid(tid)
        t = Task(tid, leader.tgid, creator.comm, creator.uid, creator.gid, leader.signal, creator.mm,
                 leader.parent, self.uptime)
        t.nice = creator.nice
        t.caps = creator.caps
        t.kthread = creator.kthread
        t.oom_adj = creator.oom_adj
        t.mems = creator.mems
        self._attach(t)
        self.note("thread", tid=tid, pid=leader.tgid)
        return t

    def exec(self, pid: int, comm: str, *, vm: int = EXEC_DEFAULT_VM, rss: int = EXEC_DEFAULT_RSS) -> Task:
        """execve() by process ``pid``: other threads die, a new mm replaces the old.

        The value in the old mm is copied into the new one (2.6.31-rc's
        exec_mmap() path); task and signal values are simply kept.
        """
        t = self.process(pid)
        if t.kthread:
            raise MachineError(errno.EINVAL, f"{pid} is a kernel thread")
        for other in list(t.signal.threads[1:]):
            self._release_thread(other)
        old = t.mm
        new = Mm(total_vm=vm // PAGE_SIZE, rss_anon=rss // PAGE_SIZE, oom_adj=old.oom_adj if old else 0)
        if old is not None:
            self.touch_mm(old, t)  # a vfork child sharing it is no longer in_vfork() (6.x)
            old.users -= 1
        new.users += 1
        t.mm = new
        t.comm = comm[:15]
        t.vfork_parent = None  # mm_release(): the vfork parent wakes up
        self.touch(t)
        self.allocators.pop(t.tgid, None)  # a new program: the old one's allocation stops
        self.note("exec", pid=t.tgid, comm=t.comm, vm=vm, rss=rss)
        return t

    def exit(self, tid: int) -> list[Task]:
        """exit_group() of a process (given its pid), or exit() of one non-leader thread."""
        t = self.task(tid)
        if t.is_leader and t.tgid == 1:
            raise MachineError(errno.EPERM, "init cannot exit (the kernel would panic)")
        if not t.is_leader:
            self._release_thread(t)
            self.note("exit", pid=t.tgid, tids=[t.tid])
            return [t]
        gone = self._exit_group(t)
        self.note("exit", pid=t.tgid, tids=[th.tid for th in gone])
        return gone

    def _exit_group(self, leader: Task) -> list[Task]:
        gone = list(leader.signal.threads)
        for th in reversed(gone):
            self._release_thread(th)
        return gone

    def _release_thread(self, t: Task) -> None:
        sig = t.signal
        sig.threads.remove(t)
        sig.dead_cputime += t.utime + t.stime
        del self.tasks[t.tid]
        if t.mm is not None:
            t.mm.users -= 1
        t.vfork_parent = None
        if t.is_leader:
            del self.processes[t.tid]
            self.allocators.pop(t.tid, None)
            if t.parent is not None and t in t.parent.children:
                t.parent.children.remove(t)
            reaper = self.processes.get(1)
            for c in t.children:  # forget_original_parent(): init adopts them
                c.parent = reaper
                if reaper is not None:
                    reaper.children.append(c)
                    self.touch(c)  # its new parent's score counts it
            t.children = []
        self.touch(t)  # its leader's dead_cputime, its parent's children
        for watch in self.entry_watchers:
            watch(t, True)

    def set_owner(self, t: Task, uid: int | None = None, gid: int | None = None) -> None:
        """A thread's credentials: the owner of its /proc entries (and what privilege checks read)."""
        if uid is not None:
            t.uid = uid
        if gid is not None:
            t.gid = gid
        for watch in self.entry_watchers:
            watch(t, False)

    # ----------------------------------------------------------------- state

    def set_memory(self, pid: int, **pages: int) -> Mm:
        """Set fields of a process's mm (total_vm, rss_anon, rss_file, rss_shmem, swap in pages)."""
        t = self.process(pid)
        if t.mm is None:
            raise MachineError(errno.EINVAL, f"{pid} has no address space (kernel thread)")
        for k, v in pages.items():
            if v < 0:
                raise MachineError(errno.EINVAL, f"{k} cannot be negative")
            setattr(t.mm, k, v)
        self.touch_mm(t.mm, t)
        self._note_memory(t)
        return t.mm

    def grow(self, pid: int, nbytes: int) -> Mm:
        """The process maps and touches ``nbytes`` more (negative: unmaps)."""
        t = self.process(pid)
        mm = t.mm
        if mm is None:
            raise MachineError(errno.EINVAL, f"{pid} has no address space (kernel thread)")
        d = nbytes // PAGE_SIZE if nbytes >= 0 else -(-nbytes // PAGE_SIZE)
        if mm.total_vm + d < 0:
            raise MachineError(errno.EINVAL, f"{pid} maps only {mm.total_vm * PAGE_SIZE} bytes")
        mm.total_vm += d
        mm.rss_anon = max(0, min(mm.rss_anon + d, mm.total_vm - mm.rss_file - mm.rss_shmem))
        self.touch_mm(mm, t)
        self._note_memory(t)
        return mm

    def _note_memory(self, t: Task) -> None:
        mm = t.mm
        assert mm is not None
        self.note("memory", pid=t.tgid, vm=mm.total_vm * PAGE_SIZE, rss=mm.rss * PAGE_SIZE,
                  swap=mm.swap * PAGE_SIZE)

    def charge_cpu(self, tid: int, seconds: float, system: bool = False) -> Task:
        t = self.task(tid)
        j = int(seconds * self.hz)
        if j < 0:
            raise MachineError(errno.EINVAL, "cpu time cannot be negative")
        if system:
            t.stime += j
        else:
            t.utime += j
        self.touch(t)
        self.note("cpu", tid=tid, utime=t.utime, stime=t.stime)
        return t

    # ---------------------------------------------------------------- report

    def describe(self, p: Task) -> dict[str, object]:
        """One row of ``fakeproc ps``."""
        mm = p.mm
        flags = []
        if p.kthread:
            flags.append("kthread")
        if p.vfork_parent is not None:
            flags.append(f"vfork-child-of-{p.vfork_parent.tgid}")
        elif mm is not None and mm.multiprocess:
            flags.append("clone-vm")
        if p.oom_origin:
            flags.append("swapoff")
        rate = self.alloc_rate(p.tgid)
        if rate:
            flags.append(f"alloc:{format_size(round(rate))}/s")
        return {
            "pid": p.tgid,
            "ppid": p.parent.tgid if p.parent is not None else 0,
            "uid": p.uid,
            "threads": len(p.signal.threads),
            "oom_adj": self.get_oom_adj(p),
            "oom_score_adj": p.signal.oom_score_adj if self.era.has_score_adj else None,
            "oom_score": int(self.read_oom_score(p.tid)),
            "vm_kib": mm.total_vm * PAGE_SIZE // 1024 if mm else 0,
            "rss_kib": mm.rss * PAGE_SIZE // 1024 if mm else 0,
            "comm": p.comm,
            "flags": ",".join(flags),
        }


