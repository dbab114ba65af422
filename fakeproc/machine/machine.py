"""The simulated machine: process table, clock, OOM-file semantics, OOM killer.

Every rule that differs between kernels is read from ``self.era``
(:class:`fakeproc.kernel.eras.Era`); the code here is the part the eras share.
The machine is not thread-safe by itself: its owner (the daemon) serialises
calls with one lock.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator

from ..kernel.badness import OOM_DISABLE, LegacyInputs, legacy_badness
from ..kernel.caps import CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_SYS_RESOURCE
from ..kernel.eras import AdjHome, Era, check_oom_adj_range
from ..kernel.strtol import kernel_buffer
from .klog import KernelLog
from .task import PAGE_SIZE, Caller, Mm, SignalStruct, Task

#: gfp masks printed in the report header (2.6.32 values).
GFP_KERNEL = 0xD0  # SysRq-f: moom_callback() calls out_of_memory(..., GFP_KERNEL, 0)
GFP_HIGHUSER_MOVABLE = 0x201DA  # a user page fault, what `fakeproc ctl oom` simulates

#: An exec'd program starts with this address space unless told otherwise.
EXEC_DEFAULT_VM = 4 << 20
EXEC_DEFAULT_RSS = 1 << 20


class MachineError(Exception):
    """A request the kernel would refuse: carries the errno to answer with."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err


def _as_signed_long(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


class Machine:
    """A simulated Linux machine, as far as the OOM killer can see it."""

    def __init__(self, era: Era, ram: int = 4 << 30, swap: int = 0, hz: int = 250,
                 uptime: float = 0.0) -> None:
        self.era = era
        self.ram_pages = ram // PAGE_SIZE
        self.swap_pages = swap // PAGE_SIZE
        self.hz = hz
        self.uptime = uptime  # seconds since boot, moved only by tick()
        self.tasks: dict[int, Task] = {}  # every live thread, by tid
        self.processes: dict[int, Task] = {}  # thread-group leaders, in creation order
        self.next_pid = 1
        self.log = KernelLog()

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
        return self.log.printk(self.uptime, text)

    # ------------------------------------------------------- where oom_adj is

    def get_oom_adj(self, t: Task) -> int:
        home = self.era.adj_home
        if home is AdjHome.SIGNAL:
            return t.signal.oom_adj
        if home is AdjHome.MM:
            return t.mm.oom_adj if t.mm is not None else OOM_DISABLE
        return t.oom_adj

    def _set_oom_adj(self, t: Task, v: int) -> None:
        home = self.era.adj_home
        if home is AdjHome.SIGNAL:
            t.signal.oom_adj = v
        elif home is AdjHome.MM:
            if t.mm is None:
                raise MachineError(errno.EINVAL, f"{t.tid} has no mm")
            t.mm.oom_adj = v
        else:
            t.oom_adj = v

    def store_oom_adj(self, t: Task, v: int) -> None:
        """Set a process's value with no permission check (scenario loading)."""
        for th in t.signal.threads if self.era.adj_home is AdjHome.TASK else (t,):
            self._set_oom_adj(th, v)

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
        t.signal.threads.append(t)
        if t.mm is not None:
            t.mm.users += 1
        if t.is_leader:
            self.processes[t.tid] = t
            if t.parent is not None:
                t.parent.children.append(t)

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
             vfork: bool = False, pid: int | None = None) -> Task:
        """copy_process() for fork() or vfork() by the process ``ppid``.

        ``uid`` lets the child drop to another user straight away (fork then
        setuid(), as a daemon does); a root child that leaves uid 0 loses its
        capabilities, as setuid() does.
        """
        parent_thread = self.task(ppid)
        parent = parent_thread.leader
        if vfork and parent_thread.mm is None:
            raise MachineError(errno.EINVAL, f"{ppid} is a kernel thread: it cannot vfork")
        pid = self._alloc_pid(pid)
        old = parent.signal
        sig = SignalStruct(old.oom_adj, old.oom_score_adj, old.oom_score_adj_min)
        if parent_thread.mm is None:
            mm = None
        elif vfork:
            mm = parent_thread.mm  # CLONE_VM | CLONE_VFORK: the very same mm
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
            old.users -= 1
        new.users += 1
        t.mm = new
        t.comm = comm[:15]
        t.vfork_parent = None  # mm_release(): the vfork parent wakes up
        return t

    def exit(self, tid: int) -> list[Task]:
        """exit_group() of a process (given its pid), or exit() of one non-leader thread."""
        t = self.task(tid)
        if t.is_leader and t.tgid == 1:
            raise MachineError(errno.EPERM, "init cannot exit (the kernel would panic)")
        if not t.is_leader:
            self._release_thread(t)
            return [t]
        return self._exit_group(t)

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
            if t.parent is not None and t in t.parent.children:
                t.parent.children.remove(t)
            reaper = self.processes.get(1)
            for c in t.children:  # forget_original_parent(): init adopts them
                c.parent = reaper
                if reaper is not None:
                    reaper.children.append(c)
            t.children = []

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
        return mm

    def tick(self, seconds: float) -> float:
        if seconds < 0:
            raise MachineError(errno.EINVAL, "the clock does not go back")
        self.uptime += seconds
        return self.uptime

    def charge_cpu(self, tid: int, seconds: float, system: bool = False) -> Task:
        t = self.task(tid)
        j = int(seconds * self.hz)
        if j < 0:
            raise MachineError(errno.EINVAL, "cpu time cannot be negative")
        if system:
            t.stime += j
        else:
            t.utime += j
        return t

    # ------------------------------------------------------------- the files

    def read_oom_adj(self, tid: int) -> bytes:
        """fs/proc/base.c oom_adjust_read(): ``"%d\\n"``."""
        return b"%d\n" % self.get_oom_adj(self.task(tid))

    def read_oom_score(self, tid: int, current_mems: frozenset[int] | None = None) -> bytes:
        """fs/proc/base.c proc_oom_score(): badness() of the leader (2.6.32) or of the thread."""
        t = self.task(tid)
        who = t.leader if self.era.per_process else t
        return b"%d\n" % self.badness(who, current_mems)

    def write_oom_adj(self, tid: int, data: bytes, privileged: Callable[[], bool]) -> int:
        """fs/proc/base.c oom_adjust_write(): parse, range, task, permission, store.

        ``privileged`` answers capable(CAP_SYS_RESOURCE) for the writer; it is
        only called when the kernel would call it (a lowering write).
        """
        buf, count = kernel_buffer(data)
        parsed = check_oom_adj_range(self.era.parse_oom_adj(buf))
        if parsed.value is None:
            raise MachineError(parsed.error, "invalid oom_adj")
        t = self.tasks.get(tid)
        if t is None:
            raise MachineError(errno.ESRCH, f"process {tid} is gone")
        if parsed.value < self.get_oom_adj(t) and not privileged():
            raise MachineError(errno.EACCES, "lowering oom_adj needs CAP_SYS_RESOURCE")
        self._set_oom_adj(t, parsed.value)
        if parsed.error:
            raise MachineError(parsed.error, "nothing parsed (0 stored)")
        return count if parsed.count is None else parsed.count

    # ------------------------------------------------------------ the scores

    def badness_inputs(self, p: Task, current_mems: frozenset[int] | None = None) -> LegacyInputs:
        mm = p.mm
        if self.era.per_process:
            cpu = p.signal.dead_cputime + sum(th.utime + th.stime for th in p.signal.threads)
        else:
            cpu = p.utime + p.stime
        return LegacyInputs(
            oom_adj=self.get_oom_adj(p),
            has_mm=mm is not None,
            total_vm=mm.total_vm if mm is not None else 0,
            oom_origin=p.oom_origin,
            children_vm=tuple(c.mm.total_vm for c in p.children if c.mm is not None and c.mm is not mm),
            cpu_jiffies=cpu,
            uptime_s=int(self.uptime),
            start_time_s=int(p.start_time),
            nice=p.nice,
            cap_admin_or_resource=p.has_cap(CAP_SYS_ADMIN) or p.has_cap(CAP_SYS_RESOURCE),
            cap_rawio=p.has_cap(CAP_SYS_RAWIO),
            mems_intersect=current_mems is None or bool(p.mems & current_mems),
            hz=self.hz,
        )

    def badness(self, p: Task, current_mems: frozenset[int] | None = None) -> int:
        return legacy_badness(self.badness_inputs(p, current_mems), adj_first=self.era.badness_adj_first)

    # -------------------------------------------------------- the OOM killer

    def _candidates(self) -> Iterator[Task]:
        """for_each_process() (leaders) or do_each_thread() (every thread)."""
        if self.era.per_process:
            return self.iter_processes()
        return iter([th for p in self.iter_processes() for th in list(p.signal.threads)])

    def select_bad_process(self, current_mems: frozenset[int] | None = None) -> tuple[Task, int] | None:
        """mm/oom_kill.c select_bad_process(): the first eligible, then strictly greater."""
        chosen: Task | None = None
        best = 0
        for p in self._candidates():
            if p.mm is None or p.tgid == 1:  # kernel threads, exited mm; the init task
                continue
            if self.get_oom_adj(p) == OOM_DISABLE:
                continue
            points = self.badness(p, current_mems)
            if chosen is None or points > best or (self.era.ties_replace and points == best):
                chosen, best = p, points
        return None if chosen is None else (chosen, best)

    def _oom_kill_task(self, p: Task, killed: list[Task]) -> bool:
        """oom_kill_task(): False (the kernel's 1) when ``p`` may not be killed."""
        if p.mm is None or self.get_oom_adj(p) == OOM_DISABLE:
            return False
        self.printk(f"Killed process {p.tgid} ({p.comm})")
        mm = p.mm
        killed.extend(self._exit_group(p.leader))
        if self.era.kill_mm_sharers:
            for q in list(self.processes.values()):
                if q.mm is mm:
                    killed.extend(self._exit_group(q))
        return True

    def out_of_memory(self, current: Caller, gfp_mask: int = GFP_HIGHUSER_MOVABLE, order: int = 0,
                      current_mems: frozenset[int] | None = None,
                      message: str = "Out of memory") -> list[Task]:
        """__out_of_memory(): select, report, kill (a child first); return who died.

        When the kernel would retry forever (a chosen task it then refuses to
        kill, selected again), fakeproc stops after the second identical choice
        and logs the livelock instead of hanging.
        """
        killed: list[Task] = []
        refused: set[int] = set()
        while True:
            sel = self.select_bad_process(current_mems)
            if sel is None:
                self.printk("Kernel panic - not syncing: Out of memory and no killable processes...")
                self.printk("fakeproc: the real kernel would have stopped here; the simulation goes on")
                return killed
            p, points = sel
            self.printk(f"{current.comm} invoked oom-killer: gfp_mask=0x{gfp_mask:x}, order={order}, "
                        f"{self.era.header_adj_word}={current.oom_adj}")
            self.printk(f"{message}: kill process {p.tgid} ({p.comm}) score {_as_signed_long(points)} "
                        "or a child")
            if self.era.child_first:
                for c in list(p.children):
                    if c.mm is p.mm:
                        continue
                    if self._oom_kill_task(c, killed):
                        return killed
            if self._oom_kill_task(p, killed):
                return killed
            if p.tid in refused:
                self.printk(f"fakeproc: livelock: the kernel would select {p.tid} ({p.comm}) and refuse to "
                            "kill it forever; stopping the simulated retry loop")
                return killed
            refused.add(p.tid)

    # ---------------------------------------------------------------- report

    def describe(self, p: Task) -> dict[str, object]:
        """One row of ``fakeproc ps``."""
        mm = p.mm
        flags = []
        if p.kthread:
            flags.append("kthread")
        if p.vfork_parent is not None:
            flags.append(f"vfork-child-of-{p.vfork_parent.tgid}")
        if p.oom_origin:
            flags.append("swapoff")
        return {
            "pid": p.tgid,
            "ppid": p.parent.tgid if p.parent is not None else 0,
            "uid": p.uid,
            "threads": len(p.signal.threads),
            "oom_adj": self.get_oom_adj(p),
            "oom_score": int(self.read_oom_score(p.tid)),
            "vm_kib": mm.total_vm * PAGE_SIZE // 1024 if mm else 0,
            "rss_kib": mm.rss * PAGE_SIZE // 1024 if mm else 0,
            "comm": p.comm,
            "flags": ",".join(flags),
        }


