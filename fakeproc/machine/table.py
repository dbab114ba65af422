"""The process table: tasks, their thread groups, address spaces and parents; fork, vfork, clone, exec, exit.

The only code that links tasks together (thread lists, children lists, mm users) and that creates
or releases them.  Every rule here is era-independent: where a kernel keeps ``oom_adj`` and what an
exec copies of it is the OOM files' business (``oomfiles.py``), which task the killer chooses the
killer's.  Changes are recorded in the journal; a task released or given a new owner is reported to
``watchers`` (the raw FUSE backend lets the kernel cache the names and attributes of /proc entries,
and takes them back when told).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from itertools import chain

from ..kernel.caps import CAP_ALL
from ..kernel.limits import PID_MAX_DEFAULT, PID_MAX_LIMIT, RESERVED_PIDS, UID_MAX
from .clock import Clock
from .errors import MachineError
from .journal import Journal
from .task import PAGE_SIZE, Mm, SignalStruct, Task, stale

#: An exec'd program starts with this address space unless told otherwise.
EXEC_DEFAULT_VM = 4 << 20
EXEC_DEFAULT_RSS = 1 << 20

#: ``watcher(task, gone)``: the task was released (gone) or its owner changed
Watcher = Callable[[Task, bool], None]


class ProcessTable:
    def __init__(self, clock: Clock, journal: Journal) -> None:
        self.clock = clock
        self.journal = journal
        self.tasks: dict[int, Task] = {}  # every live thread, by tid
        self.processes: dict[int, Task] = {}  # thread-group leaders, in creation order
        self.next_pid = 1  # where the next allocation looks first (pid_ns->last_pid + 1)
        self.pid_max = PID_MAX_DEFAULT  # /proc/sys/kernel/pid_max
        self.watchers: list[Watcher] = []

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
        """The leaders in creation order (for_each_process()), safe against changes while iterating."""
        return iter(list(self.processes.values()))

    def sharers(self, mm: Mm) -> list[Task]:
        """The processes (leaders) with a thread on ``mm``, in creation order."""
        groups = {t.tgid for t in mm.users}
        if len(groups) <= 1:  # the usual case: the threads of one process
            return [self.processes[g] for g in groups if g in self.processes]
        return [p for p in self.processes.values() if p.tgid in groups]

    # ----------------------------------------------------------------- create

    def set_pid_max(self, pid_max: int) -> None:
        if not RESERVED_PIDS < pid_max <= PID_MAX_LIMIT:
            raise MachineError(errno.EINVAL, f"pid_max must be {RESERVED_PIDS + 1}..{PID_MAX_LIMIT}")
        self.pid_max = pid_max

    def alloc_pid(self, pid: int | None) -> int:
        """A given pid (a scenario's, a real process's), or the next free one as alloc_pid() finds it:
        idr_alloc_cyclic() from the last one given out up to pid_max, then again from RESERVED_PIDS (300);
        none free is EAGAIN."""
        if pid is not None:
            if not 1 <= pid < self.pid_max:
                raise MachineError(errno.EINVAL, f"pid {pid} is out of range (1..{self.pid_max - 1}: pid_max)")
            if pid in self.tasks:
                raise MachineError(errno.EEXIST, f"pid {pid} is in use")
            self.next_pid = max(self.next_pid, pid + 1)
            return pid
        low = RESERVED_PIDS if self.next_pid > RESERVED_PIDS else 1
        tasks = self.tasks
        for candidate in chain(range(self.next_pid, self.pid_max), range(low, min(self.next_pid, self.pid_max))):
            if candidate not in tasks:
                self.next_pid = candidate + 1
                return candidate
        raise MachineError(errno.EAGAIN, f"no free pid below pid_max ({self.pid_max})")

    def _attach(self, t: Task) -> None:
        self.tasks[t.tid] = t
        sig = t.signal
        if sig.threads:
            sig.threads.append(t)
        else:
            sig.threads = [t]  # a list of exactly one (append() would reserve four slots)
        if t.mm is not None:
            t.mm.users += (t,)
        if t.is_leader:
            self.processes[t.tid] = t
        if t.real_parent is not None:
            # copy_process(): list_add_tail(&p->sibling, &p->real_parent->children), for every new task,
            # a thread too (2.6.31.3 and 2.6.32 kernel/fork.c; spec §5.1)
            adopt(t.real_parent, t)
        stale(t)  # a new candidate; its leader has a new thread, its real parent a new child

    def spawn(self, comm: str, *, pid: int | None = None, parent: Task | None = None, uid: int = 0,
              gid: int | None = None, mm: Mm | None = None, kthread: bool = False) -> Task:
        """Create a process from nothing (scenario loading; the first process; run mode's real ones).
        ``parent`` is the thread it hangs off (its real_parent)."""
        check_ids(uid, gid)
        pid = self.alloc_pid(pid)
        t = Task(pid, pid, comm, uid, uid if gid is None else gid, SignalStruct(), None if kthread else (mm or Mm()),
                 parent, self.clock.uptime)
        t.kthread = kthread
        self._attach(t)
        return t

    def fork(self, ppid: int, *, uid: int | None = None, gid: int | None = None, comm: str | None = None,
             vfork: bool = False, share_vm: bool = False, pid: int | None = None) -> Task:
        """copy_process() for fork(), vfork() or clone(CLONE_VM) by the thread ``ppid`` (a process's pid
        is its leader's tid).  The child's real_parent is that thread, not its leader: a child forked by
        another thread hangs off that thread (2.6.32 kernel/fork.c: ``p->real_parent = current``).

        ``uid`` lets the child drop to another user straight away (fork then setuid(), as a daemon
        does); a root child that leaves uid 0 loses its capabilities, as setuid() does.  ``share_vm``:
        clone(CLONE_VM) without CLONE_VFORK, a separate process on the same mm (flagged MMF_MULTIPROCESS
        by 6.x's copy_oom_score_adj()).
        """
        check_ids(uid, gid)
        parent_thread = self.task(ppid)
        parent = parent_thread.leader
        if (vfork or share_vm) and parent_thread.mm is None:
            raise MachineError(errno.EINVAL, f"{ppid} is a kernel thread: it has no mm to share")
        pid = self.alloc_pid(pid)
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
                     parent_thread, self.clock.uptime)
        _inherit(child, parent_thread)
        if vfork:
            child.vfork_parent = parent_thread
        if uid is not None and uid != child.uid:
            child.caps = setuid_caps(child.uid, uid, child.caps)
            child.uid = uid
        if gid is not None:
            child.gid = gid
        elif uid is not None:
            child.gid = uid
        self._attach(child)
        self.journal.note("vfork" if vfork else "clone" if share_vm else "fork", pid=pid, ppid=parent.tgid,
                          comm=child.comm, uid=child.uid)
        return child

    def clone_thread(self, pid: int, *, tid: int | None = None) -> Task:
        """clone(CLONE_THREAD | CLONE_VM | CLONE_SIGHAND) by thread ``pid``: a new thread of its process.
        Its real_parent is its creator's real_parent (``CLONE_PARENT|CLONE_THREAD``), and it is added to
        that thread's children list like any new task: a process's threads sit beside it there."""
        creator = self.task(pid)
        leader = creator.leader
        tid = self.alloc_pid(tid)
        t = Task(tid, leader.tgid, creator.comm, creator.uid, creator.gid, leader.signal, creator.mm,
                 creator.real_parent, self.clock.uptime)
        _inherit(t, creator)
        self._attach(t)
        self.journal.note("thread", tid=tid, pid=leader.tgid)
        return t

    def exec(self, pid: int, comm: str, *, vm: int = EXEC_DEFAULT_VM, rss: int = EXEC_DEFAULT_RSS) -> Task:
        """execve() by process ``pid``: other threads die, a new mm replaces the old.

        The value in the old mm is copied into the new one (2.6.31-rc's exec_mmap() path); task and
        signal values are simply kept.
        """
        t = self.process(pid)
        if t.kthread:
            raise MachineError(errno.EINVAL, f"{pid} is a kernel thread")
        others = t.signal.threads[1:]
        exiting = set(others)  # de_thread(): the other threads are killed; their children go to t
        for other in list(others):
            self._release(other, exiting)
        old = t.mm
        new = Mm(total_vm=vm // PAGE_SIZE, rss_anon=rss // PAGE_SIZE, oom_adj=old.oom_adj if old else 0)
        if old is not None:
            old.users = _without(old.users, t)
        new.users = (t,)
        t.mm = new
        t.comm = comm
        t.caps = exec_caps(t.uid)
        t.vfork_parent = None  # mm_release(): the vfork parent wakes up
        self.journal.note("exec", pid=t.tgid, comm=t.comm, vm=vm, rss=rss)
        return t

    # ----------------------------------------------------------------- release

    def exit(self, tid: int) -> list[Task]:
        """exit_group() of a process (given its pid), or exit() of one non-leader thread."""
        t = self.task(tid)
        if t.is_leader and t.tgid == 1:
            raise MachineError(errno.EPERM, "init cannot exit (the kernel would panic)")
        if not t.is_leader:
            self._release(t)
            self.journal.note("exit", pid=t.tgid, tids=[t.tid])
            return [t]
        gone = self.exit_group(t)
        self.journal.note("exit", pid=t.tgid, tids=[th.tid for th in gone])
        return gone

    def exit_group(self, leader: Task) -> list[Task]:
        """Every thread of the group leaves the table (a kill, or exit_group()); the threads, leader first.

        Each thread's children are re-parented as it exits (forget_original_parent()); every thread of
        the group is exiting, so they all go to init, the leader's first, then each thread's in the
        thread list's order (the kernel's threads exit concurrently; this is one order they can take)."""
        gone = list(leader.signal.threads)
        exiting = set(gone)
        for th in gone:
            self._release(th, exiting)
        return gone

    def find_new_reaper(self, father: Task, exiting: set[Task] | frozenset[Task] = frozenset()) -> Task | None:
        """2.6.32 kernel/exit.c find_new_reaper(): ``while_each_thread(father, thread)`` from the thread after
        ``father`` in its group's list, the first that is not PF_EXITING; else the child reaper, init.
        (6.x's find_alive_thread() starts at the leader instead; any live thread of the group shares the
        mm, which is all that 6.x's in_vfork() reads of the new parent.)"""
        threads = father.signal.threads
        if father in threads:
            i = threads.index(father)
            for th in threads[i + 1:] + threads[:i]:
                if th not in exiting:
                    return th
        return self.processes.get(1)

    def _release(self, t: Task, exiting: set[Task] | frozenset[Task] = frozenset()) -> None:
        """release_task() of one thread.  Its children go first to a new reaper (exit_notify() ->
        forget_original_parent(): each entry of its list, in order, ``list_move_tail`` to the reaper's);
        then it leaves its real parent's list (__unhash_process(): ``list_del_init(&p->sibling)``)."""
        children = t.children
        if children:
            reaper = self.find_new_reaper(t, exiting | {t})
            for c in list(children):
                c.real_parent = reaper
                if reaper is not None:
                    adopt(reaper, c)
            t.children = ()
        sig = t.signal
        sig.threads.remove(t)
        sig.dead_cputime += t.utime + t.stime
        del self.tasks[t.tid]
        if t.mm is not None:
            t.mm.users = _without(t.mm.users, t)
        t.vfork_parent = None
        rp = t.real_parent
        if rp is not None:
            disown(rp, t)
        if t.is_leader:
            del self.processes[t.tid]
        stale(t)  # its leader's dead_cputime, its real parent's children
        for watch in self.watchers:
            watch(t, True)

    # ----------------------------------------------------------------- credentials

    def set_owner(self, t: Task, uid: int | None = None, gid: int | None = None) -> None:
        """A thread's credentials: the owner of its /proc entries (and what privilege checks read)."""
        check_ids(uid, gid)
        if uid is not None:
            t.uid = uid
        if gid is not None:
            t.gid = gid
        for watch in self.watchers:
            watch(t, False)


def exec_caps(uid: int) -> int:
    """The effective capabilities after execve() of a file without file capabilities (spec §5.2,
    security/commoncap.c cap_bprm_set_creds(), the same in 2.6.31 and 6.x): root (uid or euid 0; the
    model keeps one uid) gets ``inheritable | bounding set`` permitted and, its euid being 0, as
    effective: every capability; anyone else loses them all (6.x: keeps its ambient set, which the
    model does not have)."""
    return CAP_ALL if uid == 0 else 0


def setuid_caps(old_uid: int, new_uid: int, caps: int) -> int:
    """security/commoncap.c cap_emulate_setxuid(): leaving uid 0 clears the effective set (without
    PR_SET_KEEPCAPS the permitted set too: either way nothing is effective); coming back to uid 0 makes
    the permitted set effective again, which the model, keeping only the effective set, leaves as it is."""
    if old_uid == 0 and new_uid != 0:
        return 0
    return caps


def check_ids(uid: int | None, gid: int | None) -> None:
    """uid_t and gid_t: 0..2**32-2 ((uid_t)-1 is no id)."""
    for kind, v in (("uid", uid), ("gid", gid)):
        if v is not None and not 0 <= v <= UID_MAX:
            raise MachineError(errno.EINVAL, f"{kind} {v} is out of range (0..{UID_MAX})")


#: a children list longer than this is a dict (task.Children)
CHILDREN_AS_TUPLE = 8


def adopt(parent: Task, child: Task) -> None:
    """``list_add_tail(&child->sibling, &parent->children)``."""
    children = parent.children
    if isinstance(children, dict):
        children[child] = None
    elif len(children) < CHILDREN_AS_TUPLE:
        parent.children = (*children, child)
    else:
        parent.children = dict.fromkeys((*children, child))


def disown(parent: Task, child: Task) -> None:
    """``list_del_init(&child->sibling)``."""
    children = parent.children
    if isinstance(children, dict):
        children.pop(child, None)
    elif child in children:
        parent.children = tuple(c for c in children if c is not child)


def set_children(parent: Task, children: list[Task]) -> None:
    """The whole list at once, in this order (a scenario's ``children`` key)."""
    parent.children = tuple(children) if len(children) <= CHILDREN_AS_TUPLE else dict.fromkeys(children)


def _without(users: tuple[Task, ...], t: Task) -> tuple[Task, ...]:
    return tuple(u for u in users if u is not t)


def _inherit(child: Task, creator: Task) -> None:
    """What copy_process() copies from the creating thread besides ids and the address space."""
    child.nice = creator.nice
    child.caps = creator.caps
    child.kthread = creator.kthread
    child.oom_adj = creator.oom_adj  # the per-thread value of 2.6.30/2.6.31
    child.mems = creator.mems
