"""The mirror: real processes brought into the simulated machine the moment they matter.

``fakeproc run`` serves the OOM files of *real* processes from the model.  A
process enters the model the first time a request names it (or its child,
or when the OOM killer needs every candidate), with its real pid, parent,
uid, comm, capabilities, threads, memory and CPU time, and leaves it when
it exits.

Which value does a process get when it enters?  The model must answer as a
kernel of the chosen era would have, although fork() happened for real:

- A process that already existed when its parent entered the model cannot
  have inherited anything the model knows: it takes the real kernel's value
  (``/proc/PID/oom_score_adj`` of the host, converted to the era).
- A process started after its parent entered the model inherited from the
  parent *as the era says* (``Machine.fork``: vfork, CLONE_VM and plain
  fork differ in 2.6.31-rc and 6.x).  This is exact because, before any
  write changes a process's value, its existing children are brought in
  first (:meth:`Mirror.before_write`): a child forked before the write
  keeps the old value, one forked after gets the new one.

A real vfork() is seen through its effects: the parent sleeps in the vfork
system call (``/proc/PID/syscall``) and the two share one address space
(``kcmp(KCMP_VM)``); once they no longer share it, the child exec'd (or
exited), and the model runs exec() for it.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..kernel.eras import score_adj_to_legacy
from ..machine import Machine, MachineError, Task
from . import realproc as rp
from .procevents import Exit, Fork, ProcEvents
from .realproc import ProcessGone

if TYPE_CHECKING:
    from ..machine.killer import OomResult

log = logging.getLogger(__name__)

#: Memory, CPU time and threads are read again when a process is named, at most this often (seconds):
#: one `cat` is several FUSE requests.  Identity (pid + start time) is checked at every request.
REFRESH_AFTER = 0.05


@dataclass(slots=True)
class Known:
    """A mirrored process: its real identity and since when the model owns its value."""

    starttime: int  # clock ticks since boot (pid + starttime = one process)
    model_since: int  # clock ticks: children started from then on inherit from the model
    refreshed: float = 0.0  # time.monotonic() of the last refresh from the real process
    in_run: bool = True  # part of the run (its command, a descendant, or entered into its namespace)


@dataclass(slots=True)
class Inherited:
    """What a process got at fork time from a parent the model knew (or had noted), per the connector."""

    parent: int  # the tgid that forked it
    value: int  # the era's value (oom_adj, or 6.x's oom_score_adj) ...
    minimum: int  # ... and 6.x's oom_score_adj_min
    started: float  # seconds since boot (the fork event's timestamp)


def kernel_hz() -> int:
    """CONFIG_HZ of the running kernel (badness() shifts CPU time by it); 250 when unknown."""
    try:
        with open(f"/boot/config-{os.uname().release}") as f:
            for line in f:
                if line.startswith("CONFIG_HZ="):
                    return int(line.split("=")[1])
    except (OSError, ValueError):
        pass
    return 250


class Mirror:
    """Keeps the machine's processes in step with the host's real ones."""

    simulated_machine = False  # run mode: every real process, the host's machine-wide files

    def __init__(self, machine: Machine, kill: bool = False, run_root: int | None = None, scope: str = "run") -> None:
        """``scope``: which real processes are OOM candidates: ``run`` (the run's own, as a memory cgroup's
        OOM considers only its cgroup's tasks: a test's victim does not depend on what else the machine
        runs) or ``host`` (every process, the global OOM's view)."""
        self.machine = machine
        self.scope = scope
        self.kill = kill  # --kill: the model's victims really receive SIGKILL ...
        self.run_root = os.getpid() if run_root is None else run_root  # ... if they descend from this pid
        self.fake_device: str | None = None  # ... or see the fake as their /proc (nsenter'd into the run)
        self.known: dict[int, Known] = {}
        self.killed: dict[int, int] = {}  # pid -> starttime: victims of the model, alive or dying
        self.real_proc = rp.PROC
        #: the process events connector (run mode opens it) and what each fork passed on (procevents.py)
        self.events: ProcEvents | None = None
        self.inherited: dict[int, Inherited] = {}
        machine.observers.append(self)
        if scope == "run":
            machine.set_oom_domain(self._outside)

    # ------------------------------------------------------------ scope

    def simulated(self, pid: int) -> bool:
        return False

    def visible(self, pid: int) -> bool:
        return True

    def admitted(self, pid: int, st: rp.Stat) -> bool:
        """Does this real process belong in the model?  (Run mode: all of them.)"""
        return True

    def extra_pids(self) -> list[int]:
        """Real pids a simulated machine's root listing adds (shell mode)."""
        return []

    def adopter(self) -> Task | None:
        """The parent of an admitted process whose real parent is not admitted."""
        return None

    # ------------------------------------------------------------ the clock

    def _now(self) -> int:
        up = rp.read_uptime()
        self.machine.uptime = up
        return int(up * rp.CLK_TCK)

    # ----------------------------------------------------------------- entry

    def lookup(self, tid: int) -> Task | None:
        """The model's task for a real thread id, entered or refreshed now; None if there is none."""
        if self.simulated(tid):
            return self.machine.tasks[tid]
        try:
            st = rp.read_status(tid)
        except (ProcessGone, KeyError, ValueError):
            self._forget_pid(tid)
            return None
        leader = self.process(st.tgid)
        if leader is None or tid == st.tgid:
            return leader
        return self.machine.tasks.get(tid)

    def process(self, pid: int, refresh: bool = True) -> Task | None:
        """The model's process ``pid``, entering it (and its ancestors) if needed."""
        m = self.machine
        try:
            st = rp.read_stat(pid)
        except ProcessGone:
            self._forget_pid(pid)
            return None
        if self.killed.get(pid) == st.starttime:
            return None  # the model killed it; without --kill it lives on outside the model
        self.killed.pop(pid, None)
        t = m.tasks.get(pid)
        k = self.known.get(pid)
        if k is None and (self.simulated(pid) or not self.admitted(pid, st)):
            return None
        if t is not None and k is not None and k.starttime == st.starttime and t.is_leader:
            now = time.monotonic()
            if refresh and now - k.refreshed >= REFRESH_AFTER:
                self._refresh(t, st)
                k.refreshed = now
            return t
        if t is not None:  # pid reuse, or a process created by `ctl fork`: not this real one
            self._forget_pid(pid)
        self.drain()  # the forks that happened so far: what this process inherited
        try:
            return self._enter(pid, st)
        except ProcessGone:
            self._forget_pid(pid)
            return None

    def _enter(self, pid: int, st: rp.Stat) -> Task:
        m = self.machine
        parent = self.process(st.ppid, refresh=False) if st.ppid else None
        if parent is None:
            parent = self.adopter()
        status = rp.read_status(pid)
        now = self._now()
        pk = self.known.get(parent.tgid) if parent is not None else None
        inh = self.inherited.get(pid)
        if inh is not None and abs(inh.started * rp.CLK_TCK - st.starttime) > rp.CLK_TCK:
            inh = None  # a note about an earlier process of this pid
        if inh is not None and (parent is None or inh.parent != parent.tgid) and not st.kthread:
            # forked by a process that has exited since (or that it left): the value it had then, not the
            # adopter's (a daemon that detached keeps what its parent had set)
            t = m.spawn(st.comm, pid=pid, parent=parent, uid=status.uid, gid=status.gid)
            m.store_adj(t, inh.value, inh.minimum)
            since = st.starttime
            log.debug("mirror: %d (%s) entered with %d, inherited from %d at fork", pid, st.comm, inh.value,
                      inh.parent)
        elif (parent is not None and pk is not None and parent.mm is not None and not st.kthread
                and st.starttime >= pk.model_since):
            shares = rp.same_mm(parent.tgid, pid)
            vfork = shares and rp.in_vfork_syscall(parent.tgid)
            t = m.fork(parent.tid, pid=pid, comm=st.comm, uid=status.uid, gid=status.gid, vfork=vfork,
                       share_vm=shares and not vfork)
            since = st.starttime
            log.debug("mirror: %d (%s) forked from %d%s", pid, st.comm, parent.tgid, " by vfork" if vfork else "")
        else:
            t = m.spawn(st.comm, pid=pid, parent=parent, uid=status.uid, gid=status.gid, kthread=st.kthread)
            v = rp.read_oom_score_adj(pid) if not st.kthread else 0
            m.store_adj(t, v if m.era.has_score_adj else score_adj_to_legacy(v), min(v, 0))
            since = now
            log.debug("mirror: %d (%s) entered with the real value %d", pid, st.comm, v)
        m.set_thread(t, start=st.starttime / rp.CLK_TCK)
        self.known[pid] = Known(st.starttime, since, time.monotonic(), self.scope == "host" or self._in_run(pid))
        self._refresh(t, st, status)
        return t

    # --------------------------------------------------------------- refresh

    def _refresh(self, t: Task, st: rp.Stat, status: rp.Status | None = None) -> None:
        """Bring memory, CPU time, ids, threads and vfork state up to date."""
        status = status or rp.read_status(t.tgid)
        self._now()
        m = self.machine
        m.set_thread(t, comm=st.comm)
        for th in t.signal.threads:
            if (th.uid, th.gid) != (status.uid, status.gid):
                m.set_owner(th, status.uid, status.gid)
            m.set_thread(th, caps=status.cap_eff, nice=st.nice)
        self._memory(t, status)
        self._threads(t, st)
        # vfork children that no longer share the mm exec'd (or exited): exec() in the model
        for c in list(t.children):
            if c.in_vfork and not rp.same_mm(t.tgid, c.tgid):
                self._vfork_done(c)
        vp = t.vfork_parent
        if vp is not None and t.in_vfork and not rp.same_mm(vp.tgid, t.tgid):
            self._vfork_done(t)

    def _memory(self, t: Task, status: rp.Status) -> None:
        if t.mm is None:
            return
        page = rp.PAGE_SIZE
        self.machine.memory.set_counters(t, total_vm=status.vm_size // page, rss_anon=status.rss_anon // page,
                                         rss_file=status.rss_file // page, rss_shmem=status.rss_shmem // page,
                                         swap=status.swap // page, pgtables=status.pte)

    def _threads(self, t: Task, st: rp.Stat) -> None:
        m = self.machine
        try:
            tids = rp.read_tids(t.tgid)
        except ProcessGone:
            return
        have = {th.tid for th in t.signal.threads}
        for th in list(t.signal.threads[1:]):
            if th.tid not in tids:
                m.exit(th.tid)
        for tid in tids:
            if tid not in have:
                other = m.tasks.get(tid)
                if other is not None:
                    self._forget_pid(other.tgid)
                m.clone_thread(t.tgid, tid=tid)
        scale = m.hz / rp.CLK_TCK
        if m.era.per_process:  # thread_group_cputime(): the process's total is enough
            m.set_process_times(t, int(st.utime * scale), int(st.stime * scale))
            return
        for th in t.signal.threads:  # 2.6.31*: badness() of each thread reads its own time
            try:
                ts = rp.read_stat(t.tgid, th.tid)
            except ProcessGone:
                continue
            m.set_thread(th, utime=int(ts.utime * scale), stime=int(ts.stime * scale))

    def _vfork_done(self, c: Task) -> None:
        log.debug("mirror: vfork child %d no longer shares its vfork parent's mm: exec()", c.tgid)
        self.machine.exec(c.tgid, c.comm)
        try:
            self._memory(c, rp.read_status(c.tgid))
        except (ProcessGone, KeyError):
            pass

    # ---------------------------------------------------------------- writes

    def before_access(self, tid: int, writing: bool) -> None:
        """Called by the filesystem before a model file of ``tid`` is read or written."""
        if self.simulated(tid):
            return  # shell mode: a process of the scenario; no real process (nor its children) to bring in
        t = self.lookup(tid)
        if t is None:
            raise MachineError(errno.ESRCH, f"{tid} is gone")
        leader = t.leader
        # children: their own mm counts in legacy badness(); before a write they must keep the old value
        try:
            kids = rp.read_children(leader.tgid)
        except ProcessGone:
            kids = []
        for pid in kids:
            c = self.process(pid, refresh=False)
            if c is not None and not writing:
                try:
                    self._memory(c, rp.read_status(pid))
                except (ProcessGone, KeyError):
                    pass

    # -------------------------------------------------------------- sweeping

    # ------------------------------------------------------------ fork events

    def drain(self) -> None:
        """Take in the forks and exits the connector reported since the last call."""
        if self.events is None:
            return
        for ev in self.events.read():
            if isinstance(ev, Fork):
                self.on_fork(ev.parent_tgid, ev.child_pid, ev.timestamp_ns / 1e9)
            elif isinstance(ev, Exit):
                self.inherited.pop(ev.pid, None)

    def on_fork(self, parent: int, child: int, started: float) -> None:
        """copy_process() copied the parent's value into the child: note it, if the model has the parent (or
        noted what the parent itself inherited)."""
        m = self.machine
        t = m.tasks.get(parent) if parent in self.known else None
        if t is not None and t.is_leader:
            self.inherited[child] = Inherited(parent, m.get_adj(t), t.signal.oom_score_adj_min, started)
        elif parent in self.inherited:
            noted = self.inherited[parent]
            self.inherited[child] = Inherited(parent, noted.value, noted.minimum, started)

    def sweep(self) -> list[int]:
        """Drop the processes that exited (or whose pid now names another process)."""
        self.drain()
        gone = []
        for pid, k in list(self.known.items()):
            try:
                same = rp.read_stat(pid).starttime == k.starttime
            except ProcessGone:
                same = False
            if not same:
                self._forget_pid(pid)
                gone.append(pid)
        for pid, start in list(self.killed.items()):
            try:
                if rp.read_stat(pid).starttime == start:
                    continue
            except ProcessGone:
                pass
            del self.killed[pid]
        return gone

    def enter_all(self) -> None:
        """Bring in every real process the OOM killer considers (scope ``run``: the run's; ``host``: all)."""
        for name in os.listdir(self.real_proc):
            if name.isdigit():
                pid = int(name)
                if self.scope == "host" or pid in self.known or self._in_run(pid):
                    self.process(pid)
        self.sweep()

    def _outside(self, t: Task) -> str | None:
        """The OOM domain of scope ``run``: why ``t`` is not a candidate (None: it is one of the run's)."""
        k = self.known.get(t.tgid)
        return None if k is not None and k.in_run else "not part of this run (--oom-scope run)"

    def _forget_pid(self, pid: int) -> None:
        m = self.machine
        if self.simulated(pid):
            return  # shell mode: a process of the scenario, not a real one that went away
        self.known.pop(pid, None)
        t = m.tasks.get(pid)
        if t is None:
            return
        if t.is_leader and t.tgid == 1:
            return  # init stays (the real one cannot exit either)
        try:
            m.exit(t.tgid if t.is_leader else t.tid)
        except MachineError:
            pass

    # ------------------------------------------------- Machine observer hooks

    def before_oom(self) -> None:
        self.enter_all()

    def after_oom(self, result: OomResult) -> None:
        for pid in sorted({t.tgid for t in result.killed}):
            k = self.known.pop(pid, None)
            if k is None:
                continue
            self.killed[pid] = k.starttime
            if self.kill and not self._in_run(pid):
                log.warning("OOM killer (model): killed %d in the model only: it is not part of this run, "
                            "so --kill does not touch it", pid)
            elif self.kill:
                try:
                    if rp.read_stat(pid).starttime == k.starttime:
                        os.kill(pid, signal.SIGKILL)
                        log.warning("OOM killer (model): SIGKILL sent to %d", pid)
                except (ProcessGone, ProcessLookupError):
                    pass
            else:
                log.warning("OOM killer (model): killed %d in the model; it keeps running (no --kill)", pid)

    def _in_run(self, pid: int) -> bool:
        """Is ``pid`` part of this run: the command or a descendant (orphans come back to the run),
        or a process whose /proc is this fake (entered with nsenter)?"""
        if self.fake_device is not None and rp.mount_device(pid, "/proc") == self.fake_device:
            return True
        seen = 0
        while pid > 1 and seen < 4096:
            try:
                pid = rp.read_stat(pid).ppid
            except ProcessGone:
                return False
            if pid == self.run_root:
                return True
            seen += 1
        return False

    # ------------------------------------------------------- /proc/self links

    def self_link(self, tid: int, thread: bool) -> str:
        tgid = rp.tgid_of(tid) or tid
        return f"{tgid}/task/{tid}" if thread else str(tgid)
