"""The simulated machine: its parts, and the one API that changes them.

A :class:`Machine` is composed of a clock, a change stream (journal) and a kernel log, a process table
(``table.py``), its memory (``memory.py``), an OOM killer that reads the table (``killer.py``), the
OOM files' rules (``oomfiles.py``) and the allocators that put it under pressure (``pressure.py``).
Each part imports only those below it.  Front ends and the filesystem change the machine through
the methods here; every rule that differs between kernels is read from ``self.era``
(:class:`fakeproc.kernel.eras.Era`).  The machine is not thread-safe by itself: its owner (the
daemon) serialises calls with one lock.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator

from ..kernel.eras import Era
from ..kernel.limits import CAP_BITS, NICE_MAX, NICE_MIN, ULONG_MAX, finite, max_uptime
from ..kernel.sysctl import dointvec_read, dointvec_write
from ..units import format_size
from .clock import Clock
from .errors import MachineError
from .halt import Halt
from .journal import Journal
from .killer import OomKiller, OomObserver, OomResult
from .klog import KernelLog
from .memory import Memory
from .oomfiles import OomFiles, Writer
from .pressure import Pressure
from .sysctls import VmSysctls
from .table import EXEC_DEFAULT_RSS, EXEC_DEFAULT_VM, ProcessTable, Watcher, check_ids, setuid_caps
from .task import PAGE_SIZE, Caller, Mm, Task


class Machine:
    """A simulated Linux machine, as far as the OOM killer can see it."""

    def __init__(self, era: Era, ram: int = 4 << 30, swap: int = 0, hz: int = 250, uptime: float = 0.0) -> None:
        self.era = era
        self.clock = Clock(uptime, hz)
        self.journal = Journal(self.clock)  # the change stream (fakeproc log --json)
        self.log = KernelLog(self.clock, self.journal)
        self.table = ProcessTable(self.clock, self.journal)
        self.memory = Memory(self.table, ram, swap)
        self.sysctl = VmSysctls(era)  # /proc/sys/vm: the killer's knobs
        self.halt = Halt(self.clock, self.log, self.journal)  # a panic stops the machine
        self.killer = OomKiller(era, self.table, self.memory, self.clock, self.log, self.journal, self.sysctl,
                                self.halt)
        self.files = OomFiles(era, self.table, self.killer, self.log, self.journal)
        self.pressure = Pressure(self.table, self.memory, self.killer, self.clock, self.journal)
        #: CPUs the machine shows (/proc/stat, cpuinfo, Cpus_allowed): 1 by default; ``fakeproc shell`` gives it
        #: the CPUs its programs may run on, so that nproc, sysconf() and the machine's files agree
        self.cpus = 1
        self.cpus_given = False  # a scenario said how many (then the shell keeps them)

    # ----------------------------------------------------------------- state

    @property
    def uptime(self) -> float:
        return self.clock.uptime

    @uptime.setter
    def uptime(self, seconds: float) -> None:
        self.clock.uptime = seconds

    @property
    def hz(self) -> int:
        return self.clock.hz

    @property
    def clock_scale(self) -> float:
        return self.clock.scale

    @clock_scale.setter
    def clock_scale(self, scale: float) -> None:
        self.clock.scale = scale

    @property
    def tasks(self) -> dict[int, Task]:
        """Every live thread by tid (read it; change it through the methods below)."""
        return self.table.tasks

    @property
    def processes(self) -> dict[int, Task]:
        """The thread-group leaders in creation order (read it; change it through the methods below)."""
        return self.table.processes

    @property
    def next_pid(self) -> int:
        return self.table.next_pid

    @next_pid.setter
    def next_pid(self, pid: int) -> None:
        self.table.next_pid = pid

    @property
    def ram_pages(self) -> int:
        return self.memory.ram_pages

    @property
    def swap_pages(self) -> int:
        return self.memory.swap_pages

    @property
    def totalpages(self) -> int:
        return self.memory.totalpages

    @property
    def deprecation_warned(self) -> bool:
        return self.files.deprecation_warned

    @deprecation_warned.setter
    def deprecation_warned(self, warned: bool) -> None:
        self.files.deprecation_warned = warned

    @property
    def observers(self) -> list[OomObserver]:
        """Told before and after each OOM kill (run mode's mirror)."""
        return self.killer.observers

    @property
    def entry_watchers(self) -> list[Watcher]:
        """Told ``(task, gone)`` when a task is released or its owner changes (the raw FUSE backend)."""
        return self.table.watchers

    def set_oom_domain(self, outside: Callable[[Task], str | None] | None) -> None:
        """Only the tasks of a domain are OOM candidates (OomKiller.set_domain); None: all of them."""
        self.killer.set_domain(outside)

    def succeed(self, old: Machine) -> None:
        """Take over from ``old`` after a reboot: the machine runs (a scenario saved after a panic boots like any
        other), the change stream goes on numbered where it stopped (a follower of ``fakeproc log`` misses
        nothing), the filesystem's watchers follow (told that every old task is gone, so no kernel cache keeps
        them), and the reboot is the first change."""
        self.halt.reason = None
        base = old.journal.seq
        for ev in self.journal.events:
            ev["seq"] += base
        self.journal.seq += base
        mine = self.pressure.released
        outside = [w for w in old.table.watchers if w != old.pressure.released]
        self.table.watchers[:] = [mine, *outside]
        for t in list(old.tasks.values()):
            for watch in outside:
                watch(t, True)
        self.journal.note("reboot", kernel=self.era.name, processes=len(self.processes),
                          after=old.halt.reason)

    # ----------------------------------------------------------------- lookup

    def task(self, tid: int) -> Task:
        return self.table.task(tid)

    def process(self, pid: int) -> Task:
        return self.table.process(pid)

    def iter_processes(self) -> Iterator[Task]:
        return self.table.iter_processes()

    def printk(self, text: str) -> str:
        return self.log.printk(text)

    def note(self, kind: str, **fields: object) -> None:
        self.journal.note(kind, **fields)

    def get_adj(self, t: Task) -> int:
        """The era's own value: oom_adj (-17..15), or oom_score_adj (-1000..1000) in 6.x."""
        return self.killer.adj(t)

    def get_oom_adj(self, t: Task) -> int:
        return self.files.get_oom_adj(t)

    def store_adj(self, t: Task, v: int, adj_min: int | None = None) -> None:
        self.files.store_adj(t, v, adj_min)

    def caller_of(self, t: Task) -> Caller:
        """``current`` for an OOM report when ``t`` allocates or asks."""
        return Caller(t.tgid, t.uid, t.comm, self.killer.adj(t), t)

    # ------------------------------------------------------ process lifecycle

    def spawn(self, comm: str, *, pid: int | None = None, parent: Task | None = None, uid: int = 0,
              gid: int | None = None, mm: Mm | None = None, kthread: bool = False) -> Task:
        return self.table.spawn(comm, pid=pid, parent=parent, uid=uid, gid=gid, mm=mm, kthread=kthread)

    def fork(self, ppid: int, *, uid: int | None = None, gid: int | None = None, comm: str | None = None,
             vfork: bool = False, share_vm: bool = False, pid: int | None = None) -> Task:
        return self.table.fork(ppid, uid=uid, gid=gid, comm=comm, vfork=vfork, share_vm=share_vm, pid=pid)

    def clone_thread(self, pid: int, *, tid: int | None = None) -> Task:
        return self.table.clone_thread(pid, tid=tid)

    def exec(self, pid: int, comm: str, *, vm: int = EXEC_DEFAULT_VM, rss: int = EXEC_DEFAULT_RSS) -> Task:
        if not 0 <= rss <= vm or vm // PAGE_SIZE > ULONG_MAX:
            raise MachineError(errno.EINVAL, "exec needs 0 <= rss <= vm, and vm in an unsigned long of pages")
        t = self.table.exec(pid, comm, vm=vm, rss=rss)
        self.pressure.stop(t.tgid)  # a new program: the old one's allocation stops
        return t

    def exit(self, tid: int) -> list[Task]:
        return self.table.exit(tid)

    def set_owner(self, t: Task, uid: int | None = None, gid: int | None = None) -> None:
        self.table.set_owner(t, uid, gid)

    def set_attrs(self, pid: int, *, nice: int | None = None, uid: int | None = None, gid: int | None = None,
                  comm: str | None = None, caps: int | None = None, swapoff: bool | None = None,
                  start: float | None = None) -> Task:
        """Other attributes of process ``pid`` (``fakeproc ctl set``): nice, owner and capabilities of every
        thread; the leader's comm, PF_OOM_ORIGIN and start time.  Checked first, then changed."""
        t = self.table.process(pid)
        if nice is not None and not NICE_MIN <= nice <= NICE_MAX:
            raise MachineError(errno.EINVAL, f"nice must be {NICE_MIN}..{NICE_MAX}")
        if start is not None and not 0 <= start <= self.clock.uptime:
            raise MachineError(errno.EINVAL, "a process starts between boot and now")
        if caps is not None and not 0 <= caps < 1 << CAP_BITS:
            raise MachineError(errno.EINVAL, f"capabilities are {CAP_BITS} bits")
        check_ids(uid, gid)
        for th in t.signal.threads:
            if nice is not None:
                th.nice = nice
            if uid is not None:
                th.caps = setuid_caps(th.uid, uid, th.caps)  # setresuid(): a root process gives up its caps
            if uid is not None or gid is not None:
                self.table.set_owner(th, uid, gid)
            if caps is not None:
                th.caps = caps  # capset(), after the uid change when both are given
        if comm is not None:
            t.comm = comm  # cut as the kernel cuts it (Task.comm)
        if swapoff is not None:
            t.oom_origin = swapoff
        if start is not None:
            t.start_time = start
        return t

    def set_thread(self, t: Task, *, comm: str | None = None, nice: int | None = None, caps: int | None = None,
                   start: float | None = None, utime: int | None = None, stime: int | None = None) -> None:
        """What one thread is, as run mode reads it from a real one (no change event: a real process's
        fields follow the host, they are not changes made to the machine)."""
        if comm is not None:
            t.comm = comm  # cut as the kernel cuts it (Task.comm)
        if nice is not None:
            t.nice = nice
        if caps is not None:
            t.caps = caps
        if start is not None:
            t.start_time = start
        if utime is not None:
            t.utime = utime
        if stime is not None:
            t.stime = stime

    def set_process_times(self, t: Task, utime: int, stime: int) -> None:
        """A process's CPU time as one total (thread_group_cputime()), kept on its leader; its other threads
        and the exited ones count nothing of their own."""
        leader = t.leader
        for th in leader.signal.threads[1:]:
            th.utime = th.stime = 0
        leader.signal.dead_cputime = 0
        leader.utime, leader.stime = utime, stime

    # ----------------------------------------------------------------- memory

    def set_memory(self, pid: int, **pages: int) -> Mm:
        """Set counters of a process's mm (total_vm, rss_anon, rss_file, rss_shmem, swap in pages;
        pgtables in bytes)."""
        t = self.table.process(pid)
        mm = self.memory.mm_of(t)
        after = {k: pages.get(k, getattr(mm, k)) for k in ("total_vm", "rss_anon", "rss_file", "rss_shmem")}
        if after["rss_anon"] + after["rss_file"] + after["rss_shmem"] > after["total_vm"]:
            raise MachineError(errno.EINVAL, "resident memory (rss + file + shmem) cannot exceed vm: what is "
                                             "resident is mapped")
        mm = self.memory.set_counters(t, **pages)
        self._note_memory(t, mm)
        return mm

    def grow(self, pid: int, nbytes: int) -> Mm:
        """The process maps and touches ``nbytes`` more (negative: unmaps)."""
        t = self.table.process(pid)
        mm = self.memory.grow(t, nbytes)
        self._note_memory(t, mm)
        return mm

    def _note_memory(self, t: Task, mm: Mm) -> None:
        self.journal.note("memory", pid=t.tgid, vm=mm.total_vm * PAGE_SIZE, rss=mm.rss * PAGE_SIZE,
                          swap=mm.swap * PAGE_SIZE)

    def address_spaces(self) -> Iterator[Mm]:
        return self.memory.address_spaces()

    def free_pages(self) -> tuple[int, int]:
        return self.memory.free_pages()

    def charge_cpu(self, tid: int, seconds: float, system: bool = False) -> Task:
        t = self.table.task(tid)
        if not finite(seconds) or seconds < 0:
            raise MachineError(errno.EINVAL, "cpu time is a finite number of seconds, not negative")
        j = int(seconds * self.clock.hz)
        if (t.stime if system else t.utime) + j > ULONG_MAX:
            raise MachineError(errno.EINVAL, "cpu time would pass an unsigned long of jiffies")
        if system:
            t.stime += j
        else:
            t.utime += j
        self.journal.note("cpu", tid=tid, utime=t.utime, stime=t.stime)
        return t

    def set_alloc_rate(self, pid: int, nbytes_per_s: float) -> Task:
        t = self.table.process(pid)
        if not finite(nbytes_per_s) or nbytes_per_s > ULONG_MAX:
            raise MachineError(errno.EINVAL, f"an allocation rate is at most {ULONG_MAX} bytes a second")
        self.pressure.set_rate(t, nbytes_per_s)
        return t

    def alloc_rate(self, pid: int) -> float:
        return self.pressure.rate(pid)

    # ----------------------------------------------------------------- clock

    def tick(self, seconds: float) -> float:
        """Move the clock by ``seconds``; allocators allocate, and the killer runs when memory runs out."""
        self.halt.check()
        if seconds < 0:
            raise MachineError(errno.EINVAL, "the clock does not go back")
        if not finite(seconds) or self.clock.uptime + seconds > max_uptime(self.clock.hz):
            raise MachineError(errno.EINVAL, f"the uptime would pass jiffies_64 at HZ={self.clock.hz} "
                                             f"({max_uptime(self.clock.hz):.0f} s)")
        self.pressure.run_clock(seconds)
        return self.clock.uptime

    def run_clock(self, seconds: float) -> list[OomResult]:
        """A running clock's step (the ticker): nothing moves on a machine that panicked."""
        if self.halt.reason is not None:
            return []
        return self.pressure.run_clock(seconds)

    # ----------------------------------------------------------------- OOM files

    # ``who``: a task's id, or (an open file's) the task itself, which answers ESRCH once it has exited

    def read_oom_adj(self, who: int | Task) -> bytes:
        return self.files.read_oom_adj(who)

    def read_oom_score_adj(self, who: int | Task) -> bytes:
        return self.files.read_oom_score_adj(who)

    def read_oom_score(self, who: int | Task, current_mems: frozenset[int] | None = None) -> bytes:
        return self.files.read_oom_score(who, current_mems)

    def write_oom_adj(self, who: int | Task, data: bytes, writer: Writer) -> int:
        self.halt.check()
        return self.files.write_oom_adj(who, data, writer)

    def write_oom_score_adj(self, who: int | Task, data: bytes, writer: Writer) -> int:
        self.halt.check()
        return self.files.write_oom_score_adj(who, data, writer)

    def write_comm(self, who: int | Task, data: bytes, writer: Writer) -> int:
        self.halt.check()
        return self.files.write_comm(who, data, writer)

    # ----------------------------------------------------------------- /proc/sys/vm

    def read_sysctl(self, name: str, pos: int, size: int) -> bytes:
        """A read of /proc/sys/vm/NAME: ``"%d\n"`` at position 0, nothing after (proc_dointvec)."""
        return dointvec_read(self.era.version, self.sysctl[name], pos, size)

    def write_sysctl(self, name: str, data: bytes, pos: int) -> int:
        """A write() of /proc/sys/vm/NAME at file position ``pos``, parsed by the era's proc_dointvec or
        proc_dointvec_minmax: the count it returns, or MachineError with its errno."""
        self.halt.check()
        r = dointvec_write(self.era.version, data, pos, self.sysctl.limits(name))
        if r.error:
            raise MachineError(r.error, f"vm.{name}: {errno.errorcode.get(r.error, r.error)}")
        if r.value is not None:
            self._store_sysctl(name, r.value)
        return r.consumed

    def set_sysctl(self, name: str, value: int) -> None:
        """A value given as a number (a scenario, a control line): the era's range, then stored."""
        self.sysctl.check(name, value)
        self._store_sysctl(name, value)

    def _store_sysctl(self, name: str, value: int) -> None:
        old = self.sysctl.values[name]
        self.sysctl.values[name] = value
        self.journal.note("sysctl", name=f"vm.{name}", value=value, old=old)

    # ----------------------------------------------------------------- the killer

    def select_bad_process(self, current_mems: frozenset[int] | None = None) -> tuple[Task, int] | None:
        return self.killer.select(current_mems)

    def select_bad_process_reference(self, current_mems: frozenset[int] | None = None) -> tuple[Task, int] | None:
        return self.killer.select_reference(current_mems)

    def badness(self, p: Task, current_mems: frozenset[int] | None = None) -> int:
        return self.killer.badness(p, current_mems)

    def modern_badness(self, t: Task) -> int | None:
        return self.killer.modern_badness(t)

    def out_of_memory(self, current: Caller, sysrq: bool = False,
                      current_mems: frozenset[int] | None = None) -> OomResult:
        return self.killer.out_of_memory(current, sysrq, current_mems)

    def sysrq(self, key: bytes, current: Caller) -> None:
        self.killer.sysrq(key, current)

    def forget_scores(self) -> None:
        """Forget every cached OOM score (the era, HZ or memory changed wholesale)."""
        self.killer.forget_all()

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
            "oom_score": self.files.oom_score(p),
            "vm_kib": mm.total_vm * PAGE_SIZE // 1024 if mm else 0,
            "rss_kib": mm.rss * PAGE_SIZE // 1024 if mm else 0,
            "comm": p.comm,
            "flags": ",".join(flags),
        }
